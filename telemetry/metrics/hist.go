package metrics

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Layout is a log-linear bucket layout over nanoseconds, the HDR layout:
// values below 2^SubBits have a bucket each, and every power of two above
// is split into 2^SubBits equal buckets, so a bucket is at most 2^-SubBits
// of its lower bound wide. Values at or above 2^MaxBits share the last
// bucket. Every power of two from 2^SubBits to 2^MaxBits is a bucket edge,
// which is what lets both layouts below export the same exact Prometheus
// buckets (ExportBuckets).
type Layout struct {
	SubBits uint8 // log2 of the buckets per power of two
	MaxBits uint8 // at most 63
}

// The two layouts in use.
var (
	// RequestLayout is Histogram's: 16 buckets per power of two from 16 ns
	// to 2^36 ns (68.7 s), so a percentile read at a bucket's middle is
	// within 1/32 (3.1 %) of the true value; 528 buckets.
	RequestLayout = Layout{SubBits: requestSubBits, MaxBits: requestMaxBits}
	// Log2Layout is the eBPF block probe's (telemetry/blkbpf): one bucket
	// per power of two, bucket b >= 1 holding [2^(b-1), 2^b) ns, which is
	// what an in-kernel histogram can afford; percentiles are good to a
	// factor of 1.42.
	Log2Layout = Layout{SubBits: 0, MaxBits: 63}
)

const (
	requestSubBits = 4
	requestMaxBits = 36
	// NumBuckets is the number of counters in a Histogram
	// (RequestLayout.Buckets()).
	NumBuckets = 1<<requestSubBits + (requestMaxBits-requestSubBits)<<requestSubBits
)

func (l Layout) sub() uint64 { return 1 << l.SubBits }

// Buckets is the number of buckets of the layout.
func (l Layout) Buckets() int { return int(l.sub()) * (1 + int(l.MaxBits) - int(l.SubBits)) }

// Bucket maps v nanoseconds to its bucket.
func (l Layout) Bucket(v uint64) int {
	sub := l.sub()
	if v < sub {
		return int(v)
	}
	v = min(v, 1<<l.MaxBits-1)
	shift := bits.Len64(v) - int(l.SubBits) - 1 // mantissa v>>shift in [sub, 2*sub)
	return int(sub) + shift*int(sub) + int(v>>uint(shift)-sub)
}

// Bounds returns the smallest value of bucket i and its width.
func (l Layout) Bounds(i int) (lo, width uint64) {
	sub := int(l.sub())
	if i < sub {
		return uint64(i), 1
	}
	j := i - sub
	shift := uint(j / sub)
	return uint64(j%sub+sub) << shift, 1 << shift
}

// Histogram counts latencies for one kind of request on the hot path, in
// RequestLayout. Record is a handful of integer operations and three
// atomic operations, with no lock and no allocation, and may be called from
// any number of goroutines. Snapshot reads it while recording goes on. The
// zero value is ready to use; a Histogram must not be copied after first
// use (it is about 4 KiB).
type Histogram struct {
	counts [NumBuckets]atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
	max    atomic.Uint64 // nanoseconds
}

// Record counts one latency. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) { h.RecordN(d, 1) }

// RecordN counts n latencies of d each (requests answered together, timed
// by one clock read). Negative durations count as zero.
func (h *Histogram) RecordN(d time.Duration, n uint64) {
	v := uint64(max(d, 0))
	h.counts[RequestLayout.Bucket(v)].Add(n)
	h.sum.Add(v * n)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Snapshot copies the counters into s, reusing its Counts. Counters are
// read one by one while Record may run, so a snapshot taken under load can
// be a few records apart between its buckets and its sum; each counter on
// its own is exact.
func (h *Histogram) Snapshot(s *HistogramSnapshot) {
	s.Layout = RequestLayout
	if cap(s.Counts) < NumBuckets {
		s.Counts = make([]uint64, NumBuckets)
	}
	s.Counts = s.Counts[:NumBuckets]
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum = h.sum.Load()
	s.Max = h.max.Load()
}

// HistogramSnapshot is a plain copy of a histogram in some Layout:
// Counts[i] is the number of values in bucket i, cumulative since the
// histogram was created unless it came from Sub. It is the one histogram
// reading of the project: the request Histogram and the eBPF block probe
// both produce it, and percentiles, means and Prometheus buckets are
// computed from it alone.
type HistogramSnapshot struct {
	Layout Layout
	Counts []uint64 // Layout.Buckets() long, or empty for no values
	Sum    uint64   // nanoseconds
	// Max is the largest value seen since the histogram was created (also
	// after Sub), in nanoseconds; 0 where the source does not track it
	// (the eBPF probe).
	Max uint64
}

// NewSnapshot returns an empty snapshot of layout l.
func NewSnapshot(l Layout) HistogramSnapshot {
	return HistogramSnapshot{Layout: l, Counts: make([]uint64, l.Buckets())}
}

// Count is the number of recorded values.
func (s *HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// Mean is the average recorded value, 0 when empty.
func (s *HistogramSnapshot) Mean() time.Duration {
	n := s.Count()
	if n == 0 {
		return 0
	}
	return time.Duration(s.Sum / n)
}

// Quantile returns the value at fraction q (0 < q <= 1) of the recorded
// values: the geometric middle of the bucket holding the ceil(q*n)-th
// smallest, so within half a bucket's relative width of that value (1/32
// in RequestLayout, a factor of 1.42 in Log2Layout). 0 when empty.
func (s *HistogramSnapshot) Quantile(q float64) time.Duration {
	n := s.Count()
	if n == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(n))), 1)
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			lo, w := s.Layout.Bounds(i)
			return time.Duration(math.Sqrt(float64(lo) * float64(lo+w)))
		}
	}
	return time.Duration(s.Max)
}

// Sub returns the values recorded between prev and s, two snapshots of one
// histogram with prev taken first (an empty prev counts as zero). Max is
// not interval-aware and is kept.
func (s *HistogramSnapshot) Sub(prev *HistogramSnapshot) HistogramSnapshot {
	out := *s
	out.Counts = append([]uint64(nil), s.Counts...)
	for i := range min(len(out.Counts), len(prev.Counts)) {
		out.Counts[i] -= min(prev.Counts[i], out.Counts[i])
	}
	out.Sum -= min(prev.Sum, out.Sum)
	return out
}

// Add adds o, a snapshot of the same Layout, into s (the shards of one
// histogram kept per event loop, for instance).
func (s *HistogramSnapshot) Add(o *HistogramSnapshot) {
	if len(s.Counts) < len(o.Counts) {
		s.Counts = append(s.Counts, make([]uint64, len(o.Counts)-len(s.Counts))...)
	}
	for i, c := range o.Counts {
		s.Counts[i] += c
	}
	s.Sum += o.Sum
	s.Max = max(s.Max, o.Max)
}

// CountBelow is the number of values below 2^k ns; exact for SubBits <= k,
// where 2^k is a bucket edge.
func (s *HistogramSnapshot) CountBelow(k int) uint64 {
	end := len(s.Counts)
	if k < int(s.Layout.MaxBits) {
		end = min(s.Layout.Bucket(1<<uint(k)), end) // first bucket at or above 2^k
	}
	var n uint64
	for _, c := range s.Counts[:end] {
		n += c
	}
	return n
}
