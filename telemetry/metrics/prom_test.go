package metrics

import (
	"math"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func writeHist(t *testing.T, s *HistogramSnapshot) *dto.Histogram {
	t.Helper()
	desc := prometheus.NewDesc("x_seconds", "test", []string{"op"}, nil)
	m, err := ConstHistogram(desc, s, "get")
	if err != nil {
		t.Fatal(err)
	}
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Label) != 1 || out.Label[0].GetValue() != "get" {
		t.Fatalf("labels %v", out.Label)
	}
	h := out.GetHistogram()
	if len(h.Bucket) != ExportBuckets {
		t.Fatalf("%d buckets, want %d", len(h.Bucket), ExportBuckets)
	}
	return h
}

// bucketAt returns the cumulative count of the bucket with upper bound
// 2^k ns.
func bucketAt(t *testing.T, h *dto.Histogram, k int) uint64 {
	t.Helper()
	want := math.Ldexp(1, k) / 1e9
	for _, b := range h.Bucket {
		if b.GetUpperBound() == want {
			return b.GetCumulativeCount()
		}
	}
	t.Fatalf("no bucket le=%v", want)
	return 0
}

// TestConstHistogramRequestLayout: the exported power-of-two buckets are
// exact counts of a request Histogram.
func TestConstHistogramRequestLayout(t *testing.T) {
	var h Histogram
	for range 500 {
		h.Record(2 * time.Microsecond)
		h.Record(3 * time.Millisecond)
	}
	var s HistogramSnapshot
	h.Snapshot(&s)
	ph := writeHist(t, &s)
	// 2 us is below 2^11 ns = 2.048 us; 3 ms below 2^22 ns = 4.194304 ms.
	if bucketAt(t, ph, 10) != 0 || bucketAt(t, ph, 11) != 500 || bucketAt(t, ph, 21) != 500 || bucketAt(t, ph, 22) != 1000 {
		t.Errorf("buckets %v", ph.Bucket)
	}
	if ph.GetSampleCount() != 1000 || math.Abs(ph.GetSampleSum()-500*(2e-6+3e-3)) > 1e-9 {
		t.Errorf("count %d sum %v", ph.GetSampleCount(), ph.GetSampleSum())
	}
}

// TestConstHistogramLog2Layout: the eBPF layout exports the same buckets,
// exactly; values past the last bound only count in +Inf.
func TestConstHistogramLog2Layout(t *testing.T) {
	s := NewSnapshot(Log2Layout)
	b := func(ns uint64) int { return Log2Layout.Bucket(ns) }
	s.Counts[b(8)] = 1     // 8..15 ns: below every exported bound but the first
	s.Counts[b(1024)] = 2  // 1024..2047 ns: below 2^11
	s.Counts[b(1<<20)] = 4 // ~1 ms: below 2^21
	s.Counts[b(1<<40)] = 8 // ~18 min: above 2^36, only in +Inf
	s.Sum = 1_500_000_000
	ph := writeHist(t, &s)
	for k, want := range map[int]uint64{10: 1, 11: 3, 20: 3, 21: 7, 36: 7} {
		if got := bucketAt(t, ph, k); got != want {
			t.Errorf("le=2^%d ns: %d, want %d", k, got, want)
		}
	}
	if ph.GetSampleCount() != 15 || ph.GetSampleSum() != 1.5 {
		t.Errorf("count %d sum %v", ph.GetSampleCount(), ph.GetSampleSum())
	}
}

// TestNamesUnique: every exported name is listed once.
func TestNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range Names {
		if seen[n] {
			t.Errorf("%s listed twice", n)
		}
		seen[n] = true
	}
}

// TestCodeLabels: every code of the registry has a distinct label made of
// [a-z0-9_], and CodeOK is "ok".
func TestCodeLabels(t *testing.T) {
	seen := map[string]wire.Code{}
	for c := wire.Code(0); c < 64; c++ {
		l := CodeLabel(c)
		if !regexp.MustCompile(`^[a-z0-9_]+$`).MatchString(l) {
			t.Errorf("code %d: label %q", c, l)
		}
		if prev, dup := seen[l]; dup {
			t.Errorf("codes %d and %d share the label %q", prev, c, l)
		}
		seen[l] = c
	}
	if CodeLabel(wire.CodeOK) != ResultOK || CodeLabel(wire.CodeNotFound) != "not_found" || CodeLabel(wire.CodeIO) != "io_error" {
		t.Errorf("labels %q %q %q", CodeLabel(wire.CodeOK), CodeLabel(wire.CodeNotFound), CodeLabel(wire.CodeIO))
	}
}

// TestNamesListsEveryName: every metric name this package declares is in
// Names. Before, five (the unread reply bytes and limit, the paused
// connections, the controller's swept versions and bytes) were declared
// and exported but not listed.
func TestNamesListsEveryName(t *testing.T) {
	src, err := os.ReadFile("names.go")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, n := range Names {
		listed[n] = true
	}
	for _, m := range regexp.MustCompile(`"(pocket_[a-z0-9_]+)"`).FindAllSubmatch(src, -1) {
		if !listed[string(m[1])] {
			t.Errorf("%s is declared but not in Names", m[1])
		}
	}
}
