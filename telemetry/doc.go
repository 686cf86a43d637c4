// Package telemetry measures one storage node (or controller) once a
// second and exposes the result: the Snapshot a node sends with its
// heartbeat, and a Prometheus /metrics handler.
//
// A Sampler reads cumulative counters through github.com/prometheus/procfs
// (per-interface bytes from /proc/net/dev, per-device sectors, requests and
// busy time from /proc/diskstats, per-CPU times from /proc/stat, the
// process's RSS) and turns them into rates as differences between two
// readings. The node may add its tiers' capacity and use through
// Config.Tiers. With Config.BlockLatency the eBPF probe of package
// telemetry/blkbpf adds device latency as the kernel sees it; where the kernel
// refuses it, the Snapshot says why and the rest works unchanged. A Sampler
// is a prometheus.Collector of these host figures; the node's own request
// figures come from package dataplane.
//
// Typical use in a node:
//
//	s, err := telemetry.NewSampler(telemetry.Config{BlockLatency: true})
//	go s.Run(ctx, time.Second, func(snap telemetry.Snapshot, err error) { heartbeat(snap) })
//	reg, err := metrics.NewRegistry(s, node.MetricsCollector())
//	mux.Handle("/metrics", metrics.Handler(reg, log))
//
// The package tree:
//
//   - telemetry (this package): the Sampler (procfs, and the eBPF probe
//     when asked for), the Snapshot it produces and its text rendering.
//     Storage nodes and tools that measure a host import it.
//   - telemetry/metrics: the one latency histogram type, the metric names,
//     and the client_golang registry and handler. It imports neither the
//     Sampler nor eBPF, so the controller, which only exports its own
//     families, imports it alone and does not link cilium/ebpf.
//   - telemetry/blkbpf: the eBPF block latency probe.
package telemetry
