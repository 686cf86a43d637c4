package blkbpf

import (
	"fmt"

	"github.com/pocketstore/pocket/telemetry/metrics"
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

// Reading is the cumulative latency histogram of one device and
// operation since the probe was attached.
type Reading struct {
	Device string // kernel name, e.g. "nvme0n1"; "MAJ:MIN" when unknown
	Major  uint32
	Minor  uint32
	Op     Op
	// Latency is in metrics.Log2Layout: the kernel's slot s, latencies in
	// [2^s, 2^(s+1)) ns, is bucket s+1 (slot 0 also holds 0 ns, and the
	// last bucket holds slots 62 and 63). Max is 0: the programs do not
	// track it.
	Latency metrics.HistogramSnapshot
}

// addSlot adds v requests of slot s into r.Latency.
func (r *Reading) addSlot(s int, v uint64) {
	r.Latency.Counts[min(s+1, len(r.Latency.Counts)-1)] += v
}

// devKey is the kernel dev_t encoding the programs use as a map key.
func devKey(major, minor uint32) uint32 { return major<<minorBits | minor&minorMask }

func splitDev(dev uint32) (major, minor uint32) { return dev >> minorBits, dev & minorMask }

func devString(major, minor uint32) string { return fmt.Sprintf("%d:%d", major, minor) }
