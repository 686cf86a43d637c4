package blkbpf

import (
	"fmt"
	"math"
	"time"
)

// Op is the class of a block request, from the low bits of its cmd_flags
// (the kernel's REQ_OP_* numbers 0 to 3; everything else is OpOther).
type Op uint8

// Operation classes. The numbers are part of the map layout shared with the
// BPF programs.
const (
	OpRead    Op = 0
	OpWrite   Op = 1
	OpFlush   Op = 2
	OpDiscard Op = 3
	OpOther   Op = 4
	numOps       = 5
)

func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpFlush:
		return "flush"
	case OpDiscard:
		return "discard"
	}
	return "other"
}

const (
	// NumSlots is the number of log2 latency slots: slot s counts
	// latencies d with 2^s <= d < 2^(s+1) nanoseconds (slot 0 also holds 0).
	NumSlots = 64
	// SumSlot is the slot number under which the programs add up latencies.
	SumSlot = 0xffff

	// The kernel's internal dev_t: major in the bits above minorBits.
	minorBits = 20
	minorMask = 1<<minorBits - 1
)

// Histogram is the cumulative latency histogram of one device and
// operation since the probe was attached.
type Histogram struct {
	Device string // kernel name, e.g. "nvme0n1"; "MAJ:MIN" when unknown
	Major  uint32
	Minor  uint32
	Op     Op
	Counts [NumSlots]uint64 // Counts[s]: latencies in [2^s, 2^(s+1)) ns
	SumNs  uint64           // sum of all latencies, nanoseconds
}

// Count is the number of requests completed.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Mean is the average latency, 0 for an empty histogram.
func (h *Histogram) Mean() time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	return time.Duration(h.SumNs / n)
}

// Quantile returns the latency below which a fraction q of the requests
// fall, as the geometric middle of its log2 slot (so it is within a factor
// of 1.42 of the truth; log2 slots are what an in-kernel histogram can
// afford). 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for s, c := range h.Counts {
		seen += c
		if seen >= rank {
			return SlotMid(s)
		}
	}
	return SlotMid(NumSlots - 1)
}

// Sub returns h minus an earlier reading of the same device and operation:
// the requests completed in between.
func (h *Histogram) Sub(prev *Histogram) Histogram {
	out := *h
	for i := range out.Counts {
		out.Counts[i] -= min(prev.Counts[i], out.Counts[i])
	}
	out.SumNs -= min(prev.SumNs, out.SumNs)
	return out
}

// SlotMid is the geometric middle of slot s: 2^s * sqrt(2) nanoseconds.
func SlotMid(s int) time.Duration {
	return time.Duration(math.Ldexp(math.Sqrt2, s))
}

// SlotUpper is the exclusive upper bound of slot s in nanoseconds, 2^(s+1);
// it is what Prometheus calls the bucket's "le".
func SlotUpper(s int) float64 {
	return math.Ldexp(1, s+1)
}

// devKey is the kernel dev_t encoding the programs use as a map key.
func devKey(major, minor uint32) uint32 { return major<<minorBits | minor&minorMask }

func splitDev(dev uint32) (major, minor uint32) { return dev >> minorBits, dev & minorMask }

func devString(major, minor uint32) string { return fmt.Sprintf("%d:%d", major, minor) }
