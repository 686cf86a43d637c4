package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank quantile of sorted data.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[rankOf(q, uint64(len(sorted)))-1]
}

func TestBucketsCoverEveryValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(v uint64) {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside [0,%d)", v, i, numBuckets)
		}
		lo, w := bucketRange(i)
		if v < lo || v >= lo+w {
			t.Fatalf("value %d in bucket %d = [%d,%d)", v, i, lo, lo+w)
		}
		if lo >= subCount && float64(w)/float64(lo) > 1.0/halfSub+1e-12 {
			t.Fatalf("bucket %d [%d,+%d) wider than 1/%d of its bound", i, lo, w, halfSub)
		}
	}
	for v := uint64(0); v < 4096; v++ {
		check(v)
	}
	for range 100000 {
		check(rng.Uint64N(uint64(MaxLatency) + 1))
	}
	check(uint64(MaxLatency))
	// Buckets are contiguous: each starts where the previous ends.
	for i := 1; i < numBuckets; i++ {
		plo, pw := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if plo+pw != lo {
			t.Fatalf("gap between bucket %d and %d: %d+%d != %d", i-1, i, plo, pw, lo)
		}
	}
}

func TestQuantilesMatchExactData(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	sets := map[string][]time.Duration{}
	var uniform, lognormal, small []time.Duration
	for i := 1; i <= 100000; i++ {
		uniform = append(uniform, time.Duration(i)*time.Microsecond)
	}
	for range 50000 {
		// Latency-like: median ~50 us with a long tail.
		us := math.Exp(math.Log(50) + 1.2*rng.NormFloat64())
		lognormal = append(lognormal, time.Duration(us*float64(time.Microsecond)))
	}
	for i := range 300 {
		small = append(small, time.Duration(i%200)) // exact-bucket region
	}
	sets["uniform"], sets["lognormal"], sets["small"] = uniform, lognormal, small

	for name, data := range sets {
		var h Histogram
		for _, d := range data {
			h.Record(d)
		}
		sorted := slices.Clone(data)
		slices.Sort(sorted)
		if h.Count() != uint64(len(data)) {
			t.Errorf("%s: Count = %d, want %d", name, h.Count(), len(data))
		}
		if h.Min() != sorted[0] || h.Max() != sorted[len(sorted)-1] {
			t.Errorf("%s: min/max = %v/%v, want %v/%v", name, h.Min(), h.Max(), sorted[0], sorted[len(sorted)-1])
		}
		for _, q := range []float64{0, 0.01, 0.5, 0.9, 0.99, 0.999, 1} {
			want := exactQuantile(sorted, q)
			got := h.Quantile(q)
			diff := math.Abs(float64(got - want))
			if rel := diff / math.Max(float64(want), 1); rel > 0.005 && diff > 1 {
				t.Errorf("%s: Quantile(%v) = %v, exact %v (off by %.3f%%)", name, q, got, want, rel*100)
			}
		}
	}
}

func TestQuantileSmallExact(t *testing.T) {
	var h Histogram
	for _, v := range []time.Duration{10, 20, 30, 40, 50, 60, 70, 80, 90, 100} {
		h.Record(v)
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.9: 90, 0.91: 100, 0.1: 10, 0.11: 20} {
		if got := h.Quantile(q); got != want {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if h.Mean() != 55 {
		t.Errorf("Mean = %v, want 55ns", h.Mean())
	}
}

func TestMergeEqualsSingleHistogram(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var all, a, b Histogram
	for i := range 20000 {
		d := time.Duration(rng.Int64N(int64(10 * time.Millisecond)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{}) // merging an empty one changes nothing
	if m != all {
		t.Fatalf("merged histogram differs: count %d/%d min %v/%v max %v/%v",
			m.Count(), all.Count(), m.Min(), all.Min(), m.Max(), all.Max())
	}
}

func TestRecordClampsOutOfRange(t *testing.T) {
	var h Histogram
	h.Record(-5)
	h.Record(10 * time.Minute)
	if h.Count() != 2 || h.Min() != 0 || h.Max() != MaxLatency {
		t.Fatalf("count %d min %v max %v; want 2, 0, %v", h.Count(), h.Min(), h.Max(), MaxLatency)
	}
	if got := h.Quantile(1); got != MaxLatency {
		t.Fatalf("Quantile(1) = %v, want %v", got, MaxLatency)
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Fatal("empty histogram must report zeros")
	}
	h.Reset()
	if h.Count() != 0 || h.Max() != 0 {
		t.Fatal("Reset left values behind")
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i&0xffff) * 37)
	}
}
