package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	if RequestLayout.Buckets() != NumBuckets {
		t.Fatalf("RequestLayout has %d buckets, NumBuckets is %d", RequestLayout.Buckets(), NumBuckets)
	}
	for _, l := range []Layout{RequestLayout, Log2Layout, {SubBits: 2, MaxBits: 20}} {
		sub := uint64(1) << l.SubBits
		prevEnd := uint64(0)
		for i := range l.Buckets() {
			lo, w := l.Bounds(i)
			if lo != prevEnd {
				t.Fatalf("%+v: bucket %d starts at %d, previous ended at %d", l, i, lo, prevEnd)
			}
			if l.Bucket(lo) != i || l.Bucket(lo+w-1) != i {
				t.Fatalf("%+v: bucket %d [%d,+%d) maps to %d..%d", l, i, lo, w, l.Bucket(lo), l.Bucket(lo+w-1))
			}
			if uint64(i) >= sub && w*sub > lo {
				t.Fatalf("%+v: bucket %d width %d is more than 1/%d of %d", l, i, w, sub, lo)
			}
			prevEnd = lo + w
		}
		if prevEnd != 1<<l.MaxBits {
			t.Fatalf("%+v: buckets end at %d, want %d", l, prevEnd, uint64(1)<<l.MaxBits)
		}
		if l.Bucket(1<<63) != l.Buckets()-1 {
			t.Fatalf("%+v: huge value not clamped into the last bucket", l)
		}
	}
}

// TestLog2Quantiles: the eBPF layout's percentiles are the geometric
// middles of power-of-two buckets, within a factor of sqrt 2.
func TestLog2Quantiles(t *testing.T) {
	s := NewSnapshot(Log2Layout)
	s.Counts[11] = 90 // [1024, 2048) ns
	s.Counts[21] = 10 // [2^20, 2^21) ns, about 1 ms
	s.Sum = 90*1500 + 10*1_500_000
	for _, c := range []struct {
		q  float64
		lo float64
	}{{0.5, 1024}, {0.95, 1 << 20}} {
		got := float64(s.Quantile(c.q))
		if want := c.lo * math.Sqrt2; math.Abs(got-want) > 1 {
			t.Errorf("q%v = %v, want %v", c.q, got, want)
		}
	}
	if s.Mean() != time.Duration(s.Sum/100) {
		t.Errorf("Mean = %v", s.Mean())
	}
	if s.CountBelow(10) != 0 || s.CountBelow(11) != 90 || s.CountBelow(20) != 90 || s.CountBelow(21) != 100 {
		t.Errorf("CountBelow 10/11/20/21 = %d/%d/%d/%d", s.CountBelow(10), s.CountBelow(11), s.CountBelow(20), s.CountBelow(21))
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
	if b.CountBelow(19) != 31 || b.CountBelow(requestMaxBits) != 41 {
		t.Fatalf("CountBelow(2^19 ns) = %d, want 31; all = %d, want 41", b.CountBelow(19), b.CountBelow(requestMaxBits))
	}
	var sum HistogramSnapshot
	sum.Add(&a)
	sum.Add(&d)
	if sum.Count() != b.Count() || sum.Sum != b.Sum || sum.Max != b.Max {
		t.Fatalf("a + (b-a) = %d values, sum %d, max %d; b has %d, %d, %d", sum.Count(), sum.Sum, sum.Max, b.Count(), b.Sum, b.Max)
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
