// Package metrics is the small part of telemetry that both servers share:
// the one latency histogram type, and the Prometheus plumbing
// (github.com/prometheus/client_golang) they export through.
//
// It imports neither procfs directly nor the eBPF probe, so the
// controller, which only exports its own figures, imports it alone and
// does not link cilium/ebpf.
//
// # Histograms
//
// Histogram is the request latency recorder of a storage node's hot path:
// log-linear buckets (RequestLayout, 16 per power of two, 1 ns to 68.7 s),
// atomic counters, no lock and no allocation per Record. Its readings, and
// the eBPF block probe's (in Log2Layout), are HistogramSnapshots, the one
// type percentiles (Quantile), means and exported buckets come from.
//
// # Prometheus
//
// Each server builds its own registry with NewRegistry (never the global
// default registry) and serves it with Handler:
//
//	reg, err := metrics.NewRegistry(sampler, node.MetricsCollector())
//	mux.Handle("/metrics", metrics.Handler(reg, log))
//
// Collectors read the servers' own counters at scrape time and send
// constant metrics, so nothing on a request's path looks up a label or
// allocates. ConstHistogram exports a HistogramSnapshot as a classic
// Prometheus histogram with power-of-two buckets (see its doc for why not
// native). The metric names are listed in names.go.
package metrics
