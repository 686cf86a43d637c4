package telemetry

import (
	"strconv"

	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// A Sampler is a prometheus.Collector of the host figures: the most recent
// Snapshot's network, disk and CPU figures, and the cumulative eBPF block
// histograms. Rates are exported as gauges too, as the node measured them,
// so the numbers on /metrics match what the controller got. The names are
// in package telemetry/metrics (names.go).

// hostSeries is one per-device family of a Snapshot.
type hostSeries[T any] struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	val  func(*T) float64
}

func deviceDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"device"}, nil)
}

var (
	netSeries = []hostSeries[NetRate]{
		{deviceDesc(metrics.NetReceiveBytes, "Bytes received per network interface since boot."), prometheus.CounterValue, func(n *NetRate) float64 { return float64(n.RxBytes) }},
		{deviceDesc(metrics.NetTransmitBytes, "Bytes sent per network interface since boot."), prometheus.CounterValue, func(n *NetRate) float64 { return float64(n.TxBytes) }},
		{deviceDesc(metrics.NetReceiveBytesPerSec, "Receive rate over the last sampling interval."), prometheus.GaugeValue, func(n *NetRate) float64 { return n.RxBytesPerSec }},
		{deviceDesc(metrics.NetTransmitBytesPerSec, "Send rate over the last sampling interval."), prometheus.GaugeValue, func(n *NetRate) float64 { return n.TxBytesPerSec }},
	}
	diskSeries = []hostSeries[DiskRate]{
		{deviceDesc(metrics.DiskReadBytes, "Bytes read per block device since boot."), prometheus.CounterValue, func(d *DiskRate) float64 { return float64(d.ReadBytes) }},
		{deviceDesc(metrics.DiskWrittenBytes, "Bytes written per block device since boot."), prometheus.CounterValue, func(d *DiskRate) float64 { return float64(d.WriteBytes) }},
		{deviceDesc(metrics.DiskReads, "Read requests completed per block device since boot."), prometheus.CounterValue, func(d *DiskRate) float64 { return float64(d.Reads) }},
		{deviceDesc(metrics.DiskWrites, "Write requests completed per block device since boot."), prometheus.CounterValue, func(d *DiskRate) float64 { return float64(d.Writes) }},
		{deviceDesc(metrics.DiskReadBytesPerSec, "Read rate over the last sampling interval."), prometheus.GaugeValue, func(d *DiskRate) float64 { return d.ReadBytesPerSec }},
		{deviceDesc(metrics.DiskWriteBytesPerSec, "Write rate over the last sampling interval."), prometheus.GaugeValue, func(d *DiskRate) float64 { return d.WriteBytesPerSec }},
		{deviceDesc(metrics.DiskReadIOPS, "Read requests per second over the last sampling interval."), prometheus.GaugeValue, func(d *DiskRate) float64 { return d.ReadIOPS }},
		{deviceDesc(metrics.DiskWriteIOPS, "Write requests per second over the last sampling interval."), prometheus.GaugeValue, func(d *DiskRate) float64 { return d.WriteIOPS }},
		{deviceDesc(metrics.DiskBusyPercent, "Share of the last sampling interval with requests in flight."), prometheus.GaugeValue, func(d *DiskRate) float64 { return d.BusyPercent }},
	}
	cpuDesc = prometheus.NewDesc(metrics.CPUBusyPercent, "Share of the last sampling interval each CPU was not idle.", []string{"cpu"}, nil)
	probeUp = prometheus.NewDesc(metrics.BlockProbeUp, "1 when the eBPF block latency probe is attached, 0 when it was asked for and could not run.", nil, nil)
	blkDesc = prometheus.NewDesc(metrics.BlockIODuration, "Block request latency from issue to completion (eBPF), by device and operation.", []string{"device", "op"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Sampler) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range netSeries {
		ch <- m.desc
	}
	for _, m := range diskSeries {
		ch <- m.desc
	}
	ch <- cpuDesc
	ch <- probeUp
	ch <- blkDesc
}

// Collect implements prometheus.Collector: the last Sample's figures (none
// before the first Sample) and the eBPF histograms as of it.
func (s *Sampler) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	snap, blk, asked, up := s.last, s.blkCum, s.cfg.BlockLatency, s.probe != nil
	s.mu.Unlock()
	for _, m := range netSeries {
		for i := range snap.Net {
			ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.val(&snap.Net[i]), snap.Net[i].Device)
		}
	}
	for _, m := range diskSeries {
		for i := range snap.Disks {
			ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.val(&snap.Disks[i]), snap.Disks[i].Device)
		}
	}
	for _, c := range snap.CPU {
		ch <- prometheus.MustNewConstMetric(cpuDesc, prometheus.GaugeValue, c.BusyPercent, strconv.Itoa(c.CPU))
	}
	if !asked {
		return
	}
	ch <- prometheus.MustNewConstMetric(probeUp, prometheus.GaugeValue, map[bool]float64{true: 1}[up])
	for i := range blk {
		h := &blk[i]
		m, err := metrics.ConstHistogram(blkDesc, &h.Latency, h.Device, h.Op.String())
		metrics.Collect(ch, blkDesc, m, err)
	}
}
