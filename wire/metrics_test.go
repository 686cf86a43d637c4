package wire

import "testing"

// TestMetricNames pins the heartbeat metric names: they travel between
// nodes, the controller and the CLI of different builds, so a rename is a
// protocol change.
func TestMetricNames(t *testing.T) {
	for got, want := range map[string]string{
		MetricDrainDone:      "drain_done",
		MetricDrainLeft:      "drain_values_left",
		MetricRequestsPerSec: "requests_per_sec",
		MetricErrorsPerSec:   "errors_per_sec",
		MetricOpenConns:      "open_conns",
		MetricRSSBytes:       "rss_bytes",
		BlockMetric(MetricBlockP99Prefix, "nvme0n1", "read"): "blk_p99_us:nvme0n1:read",
		BlockMetric(MetricBlockRatePrefix, "sda", "write"):   "blk_per_sec:sda:write",
	} {
		if got != want {
			t.Errorf("metric name %q, want %q", got, want)
		}
	}
}
