// Package telemetry measures one storage node (or controller) once a
// second and exposes the result: the Snapshot a node sends with its
// heartbeat, and a Prometheus /metrics handler.
//
// A Sampler reads cumulative counters through github.com/prometheus/procfs
// (per-interface bytes from /proc/net/dev, per-device sectors, requests and
// busy time from /proc/diskstats, per-CPU times from /proc/stat, the
// process's RSS) and turns them into rates as differences between two
// readings. The node adds what only it knows: its tiers' capacity and use
// through Config.Tiers, and request latencies through the Histograms that
// Sampler.Op hands out. With Config.BlockLatency the eBPF probe of package
// perf/blkbpf adds device latency as the kernel sees it; where the kernel
// refuses it, the Snapshot says why and the rest works unchanged.
//
// Typical use in a node:
//
//	s, err := telemetry.NewSampler(telemetry.Config{Tiers: tiers, BlockLatency: true})
//	get := s.Op("get") // record on the hot path: get.Record(time.Since(start))
//	go s.Run(ctx, time.Second, func(snap telemetry.Snapshot, err error) { heartbeat(snap) })
//	mux.Handle("/metrics", telemetry.Handler(s))
//
// and in the controller, with its own families:
//
//	mux.Handle("/metrics", telemetry.Handler(telemetry.CollectorFunc(func(w *telemetry.MetricWriter) {
//		w.Header("pocket_controller_nodes", "Registered storage nodes.", telemetry.Gauge)
//		w.Value("pocket_controller_nodes", float64(n))
//	})))
//
// Histogram is the request latency type: log-linear buckets (16 per power
// of two, 1 ns to 68.7 s, percentiles within 3.1 %), atomic counters, no
// lock and no allocation per Record.
package telemetry
