package telemetry

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/pocketstore/pocket/telemetry/metrics"
	dto "github.com/prometheus/client_model/go"
)

// TestMetricsExposition serves a Sampler from its own registry and reads
// the scrape back with the Prometheus text parser.
func TestMetricsExposition(t *testing.T) {
	s, err := NewSampler(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Sample(); err != nil {
		t.Fatal(err)
	}
	reg, err := metrics.NewRegistry(s)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(metrics.Handler(reg, nil))
	defer srv.Close()
	fams, err := metrics.Scrape(srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]dto.MetricType{
		metrics.NetReceiveBytes: dto.MetricType_COUNTER, metrics.DiskReadIOPS: dto.MetricType_GAUGE,
		metrics.CPUBusyPercent: dto.MetricType_GAUGE, "process_resident_memory_bytes": dto.MetricType_GAUGE,
		"go_goroutines": dto.MetricType_GAUGE,
	} {
		if fams[name] == nil || fams[name].GetType() != typ {
			t.Errorf("family %s missing or not a %v", name, typ)
		}
	}
	if _, ok := fams.Value(metrics.NetReceiveBytes, "device", "lo"); !ok {
		t.Error("no loopback receive counter")
	}
	if n := len(fams[metrics.CPUBusyPercent].GetMetric()); n != runtime.NumCPU() {
		t.Errorf("%d CPU series, want %d", n, runtime.NumCPU())
	}
	if fams[metrics.BlockProbeUp] != nil {
		t.Error("block probe state exported though the probe was not asked for")
	}
}

func BenchmarkMetricsScrape(b *testing.B) {
	s, err := NewSampler(Config{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Sample(); err != nil {
		b.Fatal(err)
	}
	reg, err := metrics.NewRegistry(s)
	if err != nil {
		b.Fatal(err)
	}
	h := metrics.Handler(reg, nil)
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
	}
}
