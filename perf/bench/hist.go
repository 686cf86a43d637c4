package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records latencies in log-linear buckets (the HDR histogram
// layout): values below 2^subBits nanoseconds each have their own bucket, and
// every power-of-two range above that is split into 2^(subBits-1) equal
// buckets. A bucket is therefore never wider than 1/128 of its lower bound, so
// a percentile read back from the bucket midpoint is within 0.4 % of the true
// value. The range is 1 ns to MaxLatency (60 s); larger values are clamped to
// MaxLatency and still counted.
//
// Recording is a few shifts and an increment with no allocation, so each
// connection of the load generator owns one Histogram and records without
// locks; Merge adds them up at the end. A Histogram is not safe for
// concurrent use.
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
	sum    uint64 // nanoseconds, for the mean
	min    uint64
	max    uint64
}

const (
	subBits    = 8
	subCount   = 1 << subBits // exact buckets for values < subCount
	halfSub    = subCount / 2 // buckets per power of two above that
	maxShift   = 36 - subBits // values < 2^36 ns ≈ 68.7 s cover MaxLatency
	numBuckets = subCount + maxShift*halfSub

	// MaxLatency is the largest latency a Histogram tells apart.
	MaxLatency = 60 * time.Second
)

// bucketOf maps a value in nanoseconds to its bucket index.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // >= 1
	mant := v >> uint(shift)         // in [halfSub, subCount)
	return subCount + (shift-1)*halfSub + int(mant-halfSub)
}

// bucketRange returns the smallest value of bucket i and its width.
func bucketRange(i int) (lo, width uint64) {
	if i < subCount {
		return uint64(i), 1
	}
	j := i - subCount
	shift := uint(j/halfSub + 1)
	mant := uint64(j%halfSub + halfSub)
	return mant << shift, 1 << shift
}

// Record adds one latency. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	if v > uint64(MaxLatency) {
		v = uint64(MaxLatency)
	}
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += v
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.total += o.total
	h.sum += o.sum
}

// Reset forgets every recorded value (used when a warm-up ends).
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Min and Max are the exact extreme values recorded (0 when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max is the largest value recorded (0 when empty).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact arithmetic mean (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / h.total)
}

// Quantile returns the value at quantile q in [0, 1]: the smallest recorded
// value v such that at least q of all values are <= v (the nearest-rank
// definition), reported as the midpoint of its bucket and clamped to the
// exact min and max; the lowest and highest ranks return the exact min and
// max. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := rankOf(q, h.total)
	switch rank { // the extremes are known exactly
	case 1:
		return time.Duration(h.min)
	case h.total:
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := bucketRange(i)
			v := lo + (w-1)/2
			v = max(v, h.min)
			v = min(v, h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// rankOf is the 1-based nearest rank of quantile q among n values.
func rankOf(q float64, n uint64) uint64 {
	if q <= 0 {
		return 1
	}
	if q >= 1 {
		return n
	}
	x := q * float64(n)
	f := math.Floor(x)
	r := uint64(f)
	if x-f > 1e-9*x { // ceil, forgiving float noise such as 0.99*100 = 99.000...01
		r++
	}
	return min(max(r, 1), n)
}
