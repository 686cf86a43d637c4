package metrics

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram layout: log-linear buckets, the HDR layout. Values below
// histSub nanoseconds have a bucket each; every power of two above is split
// into histSub equal buckets, so a bucket is at most 1/16 of its lower bound
// wide and a percentile read at the bucket's middle is within 1/32 (3.1 %)
// of the true value. Values at or above 2^histMaxBits ns (68.7 s) are
// counted in the last bucket.
const (
	histSubBits = 4
	histSub     = 1 << histSubBits
	histMaxBits = 36
	// NumBuckets is the number of counters in a Histogram.
	NumBuckets = histSub + (histMaxBits-histSubBits)*histSub
	histMaxVal = 1<<histMaxBits - 1
)

// bucketOf maps v nanoseconds to its bucket.
func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	v = min(v, histMaxVal)
	shift := bits.Len64(v) - histSubBits - 1 // mantissa v>>shift in [histSub, 2*histSub)
	return histSub + shift*histSub + int(v>>uint(shift)-histSub)
}

// bucketBounds returns the smallest value of bucket i and its width.
func bucketBounds(i int) (lo, width uint64) {
	if i < histSub {
		return uint64(i), 1
	}
	j := i - histSub
	shift := uint(j / histSub)
	return uint64(j%histSub+histSub) << shift, 1 << shift
}

// Histogram counts latencies for one kind of request on the hot path. Record
// is a handful of integer operations and two atomic adds, with no lock and
// no allocation, and may be called from any number of goroutines. Snapshot
// reads it while recording goes on. The zero value is ready to use; a
// Histogram must not be copied after first use (it is about 4 KiB).
type Histogram struct {
	counts [NumBuckets]atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
	max    atomic.Uint64 // nanoseconds
}

// Record counts one latency. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)].Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Snapshot copies the counters into s. Counters are read one by one while
// Record may run, so a snapshot taken under load can be a few records apart
// between its buckets and its sum; each counter on its own is exact.
func (h *Histogram) Snapshot(s *HistogramSnapshot) {
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum = h.sum.Load()
	s.Max = h.max.Load()
}

// HistogramSnapshot is a plain copy of a Histogram, cumulative since it was
// created unless it came from Sub.
type HistogramSnapshot struct {
	Counts [NumBuckets]uint64
	Sum    uint64 // nanoseconds
	Max    uint64 // nanoseconds; since the Histogram was created, also after Sub
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
// values: the middle of the bucket holding the ceil(q*n)-th smallest, so
// within 1/32 of that value. 0 when empty.
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
			lo, w := bucketBounds(i)
			return time.Duration(lo + w/2)
		}
	}
	return time.Duration(s.Max)
}

// Sub returns the values recorded between prev and s, two snapshots of one
// Histogram with prev taken first. Max is not interval-aware and is kept.
func (s *HistogramSnapshot) Sub(prev *HistogramSnapshot) HistogramSnapshot {
	out := *s
	for i := range out.Counts {
		out.Counts[i] -= min(prev.Counts[i], out.Counts[i])
	}
	out.Sum -= min(prev.Sum, out.Sum)
	return out
}

// countBelow is the number of values below 2^k ns; exact for k >= histSubBits,
// where 2^k is a bucket boundary.
func (s *HistogramSnapshot) countBelow(k int) uint64 {
	end := bucketOf(1 << uint(k)) // first bucket at or above 2^k
	if k >= histMaxBits {
		end = NumBuckets
	}
	var n uint64
	for _, c := range s.Counts[:end] {
		n += c
	}
	return n
}
