package metrics

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	prevEnd := uint64(0)
	for i := range NumBuckets {
		lo, w := bucketBounds(i)
		if lo != prevEnd {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevEnd)
		}
		if bucketOf(lo) != i || bucketOf(lo+w-1) != i {
			t.Fatalf("bucket %d [%d,+%d) maps to %d..%d", i, lo, w, bucketOf(lo), bucketOf(lo+w-1))
		}
		if i >= histSub && w*histSub > lo {
			t.Fatalf("bucket %d width %d is more than 1/%d of %d", i, w, histSub, lo)
		}
		prevEnd = lo + w
	}
	if prevEnd != histMaxVal+1 {
		t.Fatalf("buckets end at %d, want %d", prevEnd, uint64(histMaxVal+1))
	}
	if bucketOf(1<<62) != NumBuckets-1 {
		t.Fatal("huge value not clamped into the last bucket")
	}
}

// TestQuantilesMatchExactData records a skewed random sample and checks
// each percentile against the exact order statistic.
func TestQuantilesMatchExactData(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]time.Duration, 100_000)
	var sum time.Duration
	for i := range vals {
		// Log-uniform from 1 us to ~1 s: every octave gets traffic.
		v := time.Duration(1000 << r.IntN(20))
		v += time.Duration(r.Int64N(int64(v)))
		vals[i] = v
		sum += v
		h.Record(v)
	}
	slices.Sort(vals)
	var s HistogramSnapshot
	h.Snapshot(&s)
	if s.Count() != uint64(len(vals)) {
		t.Fatalf("Count = %d, want %d", s.Count(), len(vals))
	}
	if s.Sum != uint64(sum) || s.Max != uint64(vals[len(vals)-1]) {
		t.Fatalf("Sum/Max = %d/%d, want %d/%d", s.Sum, s.Max, sum, vals[len(vals)-1])
	}
	for _, q := range []float64{0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(q*float64(len(vals))+0.999999)-1]
		got := s.Quantile(q)
		if diff := (got - exact).Abs(); diff > exact/32+1 {
			t.Errorf("q%v = %v, exact %v (off by %v, more than 1/32)", q, got, exact, diff)
		}
	}
}

func TestSnapshotSubAndEmpty(t *testing.T) {
	var h Histogram
	var empty HistogramSnapshot
	h.Snapshot(&empty)
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 || empty.Count() != 0 {
		t.Fatal("empty histogram reports values")
	}
	for range 10 {
		h.Record(time.Millisecond)
	}
	var a, b HistogramSnapshot
	h.Snapshot(&a)
	for range 30 {
		h.Record(time.Microsecond)
	}
	h.Record(-time.Second) // counts as zero
	h.Snapshot(&b)
	d := b.Sub(&a)
	if d.Count() != 31 || d.Sum != 30*uint64(time.Microsecond) {
		t.Fatalf("interval count/sum = %d/%d, want 31/%d", d.Count(), d.Sum, 30*time.Microsecond)
	}
	if got := d.Quantile(0.5); (got - time.Microsecond).Abs() > time.Microsecond/32 {
		t.Fatalf("interval median %v, want ~1us", got)
	}
	if b.countBelow(19) != 31 || b.countBelow(histMaxBits) != 41 {
		t.Fatalf("countBelow(2^19 ns) = %d, want 31; all = %d, want 41", b.countBelow(19), b.countBelow(histMaxBits))
	}
}

func TestRecordConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 10_000 {
				h.Record(time.Duration(g*10_000 + i))
			}
		})
	}
	wg.Wait()
	var s HistogramSnapshot
	h.Snapshot(&s)
	if s.Count() != 40_000 || s.Max != 39_999 {
		t.Fatalf("count %d max %d, want 40000 and 39999", s.Count(), s.Max)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	d := 1500 * time.Nanosecond
	for b.Loop() {
		h.Record(d)
		d += 7
	}
}

func BenchmarkHistogramRecordParallel(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := 1500 * time.Nanosecond
		for pb.Next() {
			h.Record(d)
			d += 7
		}
	})
}

func BenchmarkHistogramSnapshot(b *testing.B) {
	var h Histogram
	var s HistogramSnapshot
	h.Record(time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		h.Snapshot(&s)
		_ = s.Quantile(0.99)
	}
}
