// Package metrics writes Prometheus metrics in the text exposition format
// and holds the request latency Histogram that they export.
//
// It is the part of package telemetry that needs neither procfs nor the
// eBPF probe: the controller imports only this package, so it does not
// link cilium/ebpf. A storage node's telemetry.Sampler is a Collector; the
// controller writes its own families:
//
//	mux.Handle("/metrics", metrics.Handler(metrics.CollectorFunc(func(w *metrics.MetricWriter) {
//		w.Header("pocket_controller_nodes", "Registered storage nodes.", metrics.Gauge)
//		w.Value("pocket_controller_nodes", float64(n))
//	})))
//
// Histogram is the request latency type: log-linear buckets (16 per power
// of two, 1 ns to 68.7 s, percentiles within 3.1 %), atomic counters, no
// lock and no allocation per Record.
package metrics
