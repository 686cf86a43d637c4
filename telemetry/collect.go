package telemetry

import (
	"strconv"

	"github.com/pocketstore/pocket/telemetry/metrics"
)

// WriteMetrics exports the most recent Snapshot, the live request
// histograms and the cumulative eBPF block histograms. Names follow
// Prometheus conventions: pocket_ prefix, base units (bytes, seconds),
// _total on counters. Rates are exported as gauges too, as the node
// measured them, so the numbers on /metrics match what the controller got.
func (s *Sampler) WriteMetrics(w *metrics.MetricWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := &s.last
	writeNet(w, snap)
	writeDisks(w, snap)
	w.Header("pocket_cpu_busy_percent", "Share of the last sampling interval each CPU was not idle.", metrics.Gauge)
	for _, c := range snap.CPU {
		w.Value("pocket_cpu_busy_percent", c.BusyPercent, "cpu", strconv.Itoa(c.CPU))
	}
	w.Header("pocket_process_resident_memory_bytes", "Resident set size of this process.", metrics.Gauge)
	w.Value("pocket_process_resident_memory_bytes", float64(snap.RSSBytes))
	writeTiers(w, snap)
	s.writeOps(w)
	s.writeBlock(w)
}

func writeNet(w *metrics.MetricWriter, snap *Snapshot) {
	w.Header("pocket_net_receive_bytes_total", "Bytes received per network interface since boot.", metrics.Counter)
	for _, n := range snap.Net {
		w.Value("pocket_net_receive_bytes_total", float64(n.RxBytes), "device", n.Device)
	}
	w.Header("pocket_net_transmit_bytes_total", "Bytes sent per network interface since boot.", metrics.Counter)
	for _, n := range snap.Net {
		w.Value("pocket_net_transmit_bytes_total", float64(n.TxBytes), "device", n.Device)
	}
	w.Header("pocket_net_receive_bytes_per_second", "Receive rate over the last sampling interval.", metrics.Gauge)
	for _, n := range snap.Net {
		w.Value("pocket_net_receive_bytes_per_second", n.RxBytesPerSec, "device", n.Device)
	}
	w.Header("pocket_net_transmit_bytes_per_second", "Send rate over the last sampling interval.", metrics.Gauge)
	for _, n := range snap.Net {
		w.Value("pocket_net_transmit_bytes_per_second", n.TxBytesPerSec, "device", n.Device)
	}
}

func writeDisks(w *metrics.MetricWriter, snap *Snapshot) {
	series := []struct {
		name, help string
		typ        metrics.MetricType
		val        func(d *DiskRate) float64
	}{
		{"pocket_disk_read_bytes_total", "Bytes read per block device since boot.", metrics.Counter, func(d *DiskRate) float64 { return float64(d.ReadBytes) }},
		{"pocket_disk_written_bytes_total", "Bytes written per block device since boot.", metrics.Counter, func(d *DiskRate) float64 { return float64(d.WriteBytes) }},
		{"pocket_disk_reads_completed_total", "Read requests completed per block device since boot.", metrics.Counter, func(d *DiskRate) float64 { return float64(d.Reads) }},
		{"pocket_disk_writes_completed_total", "Write requests completed per block device since boot.", metrics.Counter, func(d *DiskRate) float64 { return float64(d.Writes) }},
		{"pocket_disk_read_bytes_per_second", "Read rate over the last sampling interval.", metrics.Gauge, func(d *DiskRate) float64 { return d.ReadBytesPerSec }},
		{"pocket_disk_write_bytes_per_second", "Write rate over the last sampling interval.", metrics.Gauge, func(d *DiskRate) float64 { return d.WriteBytesPerSec }},
		{"pocket_disk_read_iops", "Read requests per second over the last sampling interval.", metrics.Gauge, func(d *DiskRate) float64 { return d.ReadIOPS }},
		{"pocket_disk_write_iops", "Write requests per second over the last sampling interval.", metrics.Gauge, func(d *DiskRate) float64 { return d.WriteIOPS }},
		{"pocket_disk_busy_percent", "Share of the last sampling interval with requests in flight.", metrics.Gauge, func(d *DiskRate) float64 { return d.BusyPercent }},
	}
	for _, m := range series {
		w.Header(m.name, m.help, m.typ)
		for i := range snap.Disks {
			w.Value(m.name, m.val(&snap.Disks[i]), "device", snap.Disks[i].Device)
		}
	}
}

func writeTiers(w *metrics.MetricWriter, snap *Snapshot) {
	if len(snap.Tiers) == 0 {
		return
	}
	w.Header("pocket_tier_capacity_bytes", "Capacity of each storage tier.", metrics.Gauge)
	for _, t := range snap.Tiers {
		w.Value("pocket_tier_capacity_bytes", float64(t.CapacityBytes), "tier", t.Tier)
	}
	w.Header("pocket_tier_used_bytes", "Bytes in use in each storage tier.", metrics.Gauge)
	for _, t := range snap.Tiers {
		w.Value("pocket_tier_used_bytes", float64(t.UsedBytes), "tier", t.Tier)
	}
}

// writeOps exports the request histograms as they are now, not as of the
// last Sample: a histogram is cumulative, so a fresher one is still right.
func (s *Sampler) writeOps(w *metrics.MetricWriter) {
	if len(s.ops) == 0 {
		return
	}
	w.Header("pocket_request_duration_seconds", "Latency of requests served by this process, by operation.", metrics.HistogramType)
	var hs metrics.HistogramSnapshot
	for _, e := range s.ops {
		e.h.Snapshot(&hs)
		w.Histogram("pocket_request_duration_seconds", &hs, "op", e.name)
	}
}

// writeBlock exports the eBPF histograms as of the last Sample, and whether
// the probe runs, so a dashboard can tell "no I/O" from "no probe".
func (s *Sampler) writeBlock(w *metrics.MetricWriter) {
	if !s.cfg.BlockLatency {
		return
	}
	up := 0.0
	if s.probe != nil {
		up = 1
	}
	w.Header("pocket_block_probe_up", "1 when the eBPF block latency probe is attached.", metrics.Gauge)
	w.Value("pocket_block_probe_up", up)
	if len(s.blkCum) == 0 {
		return
	}
	w.Header("pocket_block_io_duration_seconds", "Block request latency from issue to completion (eBPF), by device and operation.", metrics.HistogramType)
	for i := range s.blkCum {
		h := &s.blkCum[i]
		w.Log2Histogram("pocket_block_io_duration_seconds", h.Counts[:], h.Count(), float64(h.SumNs)/1e9,
			"device", h.Device, "op", h.Op.String())
	}
}
