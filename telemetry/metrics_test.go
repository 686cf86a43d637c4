package telemetry

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/telemetry/blkbpf"
	"github.com/pocketstore/pocket/telemetry/metrics"
)

// The test parser of the text exposition format: strict enough that a
// malformed line, a sample outside its family, a family without HELP and
// TYPE, or a repeated family fails the test.

type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

type promFamily struct {
	typ     string
	help    string
	samples []promSample
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)

func parseExposition(t *testing.T, text string) map[string]*promFamily {
	t.Helper()
	fams := map[string]*promFamily{}
	var cur string
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# HELP "):
			name, help, _ := strings.Cut(line[len("# HELP "):], " ")
			if fams[name] != nil {
				t.Fatalf("line %d: family %s repeated", n, name)
			}
			fams[name] = &promFamily{help: help}
			cur = name
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, _ := strings.Cut(line[len("# TYPE "):], " ")
			if name != cur || fams[name].typ != "" || fams[name].samples != nil {
				t.Fatalf("line %d: TYPE %s not right after its HELP", n, name)
			}
			if typ != "counter" && typ != "gauge" && typ != "histogram" {
				t.Fatalf("line %d: type %q", n, typ)
			}
			fams[name].typ = typ
		default:
			s := parseSampleLine(t, n, line)
			f := fams[cur]
			if f == nil || f.typ == "" || !belongs(s.name, cur, f.typ) {
				t.Fatalf("line %d: sample %s outside its family (current %q)", n, s.name, cur)
			}
			f.samples = append(f.samples, s)
		}
	}
	return fams
}

func belongs(sample, family, typ string) bool {
	if typ == "histogram" {
		return sample == family+"_bucket" || sample == family+"_sum" || sample == family+"_count"
	}
	return sample == family
}

func parseSampleLine(t *testing.T, n int, line string) promSample {
	t.Helper()
	m := sampleLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("line %d: malformed %q", n, line)
	}
	v, err := strconv.ParseFloat(m[3], 64)
	if err != nil {
		t.Fatalf("line %d: value %q: %v", n, m[3], err)
	}
	return promSample{name: m[1], labels: parseLabels(t, n, m[2]), value: v}
}

// parseLabels reads a="x",b="y" with \\, \" and \n escapes.
func parseLabels(t *testing.T, n int, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, `="`)
		if !ok || !regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`).MatchString(name) {
			t.Fatalf("line %d: bad label in %q", n, s)
		}
		var val strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				val.WriteByte(map[byte]byte{'\\': '\\', '"': '"', 'n': '\n'}[rest[i]])
				continue
			}
			val.WriteByte(rest[i])
		}
		if i == len(rest) {
			t.Fatalf("line %d: unterminated label value in %q", n, s)
		}
		out[name] = val.String()
		s = strings.TrimPrefix(rest[i+1:], ",")
	}
	return out
}

// find returns the value of the sample with exactly these labels.
func (f *promFamily) find(name string, labels ...string) (float64, bool) {
	for _, s := range f.samples {
		if s.name != name || len(s.labels) != len(labels)/2 {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && s.labels[labels[i]] == labels[i+1]
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

func hasLabels(s promSample, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		if s.labels[pairs[i]] != pairs[i+1] {
			return false
		}
	}
	return true
}

// checkHistogram verifies each labelled histogram: le ascending, counts
// cumulative, +Inf equal to _count. It returns the buckets of the series
// with exactly the labels match (plus le).
func checkHistogram(t *testing.T, f *promFamily, name string, match ...string) map[string]float64 {
	t.Helper()
	buckets := map[string]float64{}
	last, lastLe := -1.0, math.Inf(-1)
	for _, s := range f.samples {
		if s.name != name+"_bucket" || !hasLabels(s, match) {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil || le <= lastLe || s.value < last {
			t.Fatalf("%s%v: bucket le=%s value %v after le=%v value %v", name, match, s.labels["le"], s.value, lastLe, last)
		}
		buckets[s.labels["le"]] = s.value
		last, lastLe = s.value, le
	}
	count, ok := f.find(name+"_count", match...)
	if !ok || buckets["+Inf"] != count {
		t.Fatalf("%s%v: +Inf bucket %v, _count %v (found %v)", name, match, buckets["+Inf"], count, ok)
	}
	return buckets
}

func TestMetricsExposition(t *testing.T) {
	s, err := NewSampler(Config{Tiers: func() []TierUsage {
		return []TierUsage{{Tier: "dram", CapacityBytes: 64 << 20, UsedBytes: 12345}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	get := s.Op("get")
	for range 500 {
		get.Record(2 * time.Microsecond)
		get.Record(3 * time.Millisecond)
	}
	s.Op("put") // registered, never used: exported with zero counts
	if _, err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	odd := "a\"b\\c\nd"
	ctl := metrics.CollectorFunc(func(w *metrics.MetricWriter) {
		w.Header("pocket_controller_nodes", "Nodes by state.\nSecond line.", metrics.Gauge)
		w.Value("pocket_controller_nodes", 3, "state", "active")
		w.Value("pocket_controller_nodes", 1, "state", odd)
	})
	rec := httptest.NewRecorder()
	metrics.Handler(s, ctl).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	fams := parseExposition(t, rec.Body.String())

	for name, typ := range map[string]string{
		"pocket_net_receive_bytes_total": "counter", "pocket_disk_read_iops": "gauge",
		"pocket_cpu_busy_percent": "gauge", "pocket_process_resident_memory_bytes": "gauge",
		"pocket_request_duration_seconds": "histogram", "pocket_controller_nodes": "gauge",
	} {
		if fams[name] == nil || fams[name].typ != typ {
			t.Errorf("family %s missing or not a %s", name, typ)
		}
	}
	if _, ok := fams["pocket_net_receive_bytes_total"].find("pocket_net_receive_bytes_total", "device", "lo"); !ok {
		t.Error("no loopback receive counter")
	}
	if n := len(fams["pocket_cpu_busy_percent"].samples); n != runtime.NumCPU() {
		t.Errorf("%d CPU series, want %d", n, runtime.NumCPU())
	}
	if v, _ := fams["pocket_tier_used_bytes"].find("pocket_tier_used_bytes", "tier", "dram"); v != 12345 {
		t.Errorf("tier used %v, want 12345", v)
	}
	if v, ok := fams["pocket_controller_nodes"].find("pocket_controller_nodes", "state", odd); !ok || v != 1 {
		t.Errorf("escaped label value did not round-trip (found %v, value %v)", ok, v)
	}

	rd := fams["pocket_request_duration_seconds"]
	b := checkHistogram(t, rd, "pocket_request_duration_seconds", "op", "get")
	// 2 us is below 2^11 ns = 2.048 us; 3 ms below 2^22 ns = 4.194304 ms.
	if b["1.024e-06"] != 0 || b["2.048e-06"] != 500 || b["0.002097152"] != 500 || b["0.004194304"] != 1000 {
		t.Errorf("get buckets %v", b)
	}
	if sum, _ := rd.find("pocket_request_duration_seconds_sum", "op", "get"); math.Abs(sum-500*(2e-6+3e-3)) > 1e-9 {
		t.Errorf("get _sum %v", sum)
	}
	if c, ok := rd.find("pocket_request_duration_seconds_count", "op", "put"); !ok || c != 0 {
		t.Errorf("put _count %v (found %v), want 0", c, ok)
	}

	rec = httptest.NewRecorder()
	metrics.Handler(s).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", rec.Code)
	}
}

// TestBlockHistogramExport checks the log2-slot to "le" conversion.
func TestBlockHistogramExport(t *testing.T) {
	h := blkbpf.Histogram{Device: "vda", Op: blkbpf.OpWrite}
	h.Counts[3] = 1  // 8..15 ns: below every exported bound
	h.Counts[10] = 2 // 1024..2047 ns: below 2^11
	h.Counts[20] = 4 // ~1 ms: below 2^21
	h.Counts[40] = 8 // ~18 min: above 2^36, only in +Inf
	h.SumNs = 1_500_000_000
	var sb strings.Builder
	w := metrics.NewMetricWriter(&sb)
	w.Header("pocket_block_io_duration_seconds", "test", metrics.HistogramType)
	w.Log2Histogram("pocket_block_io_duration_seconds", h.Counts[:], h.Count(), float64(h.SumNs)/1e9,
		"device", h.Device, "op", h.Op.String())
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	fams := parseExposition(t, sb.String())
	b := checkHistogram(t, fams["pocket_block_io_duration_seconds"], "pocket_block_io_duration_seconds", "device", "vda", "op", "write")
	le := func(k int) string { return strconv.FormatFloat(math.Ldexp(1, k)/1e9, 'g', -1, 64) }
	want := map[string]float64{le(10): 1, le(11): 3, le(20): 3, le(21): 7, le(36): 7, "+Inf": 15}
	for k, v := range want {
		if b[k] != v {
			t.Errorf("bucket le=%s: %v, want %v (all %v)", k, b[k], v, b)
		}
	}
	if len(b) != metrics.LatencyBuckets+1 {
		t.Errorf("%d buckets, want %d", len(b), metrics.LatencyBuckets+1)
	}
}

// TestMetricWriterStickyError: after a failed write nothing more is
// written and Flush reports the failure.
func TestMetricWriterStickyError(t *testing.T) {
	w := metrics.NewMetricWriter(failWriter{})
	for i := range 1000 { // more than bufio's 4 KiB buffer
		w.Value("x", float64(i), "k", "v")
	}
	if err := w.Flush(); err == nil {
		t.Fatal("Flush after a failed write returned nil")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk on fire") }

func BenchmarkMetricsScrape(b *testing.B) {
	s, err := NewSampler(Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, op := range []string{"get", "put", "delete"} {
		s.Op(op).Record(time.Millisecond)
	}
	if _, err := s.Sample(); err != nil {
		b.Fatal(err)
	}
	h := metrics.Handler(s)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
	}
}
