package telemetry

import "time"

// Snapshot is what one node measured over the interval that ended at Time:
// the telemetry it sends with each heartbeat and shows on /metrics. Rates
// are differences between this sample and the previous one divided by
// Interval. Cumulative counters ride along so a receiver that misses a
// heartbeat can still compute its own rates.
type Snapshot struct {
	Time     time.Time     `json:"time"`
	Interval time.Duration `json:"interval_ns"`

	Net      []NetRate      `json:"net"`
	Disks    []DiskRate     `json:"disks"`
	CPU      []CPUBusy      `json:"cpu"`
	RSSBytes uint64         `json:"rss_bytes"`
	Tiers    []TierUsage    `json:"tiers,omitempty"`
	Block    []BlockLatency `json:"block_latency,omitempty"`
	// BlockErr says why Block is empty when the eBPF probe was asked for
	// but could not run (it wraps blkbpf.ErrNotSupported in the Sampler).
	BlockErr string `json:"block_latency_error,omitempty"`
}

// NetRate is one network interface, from /proc/net/dev.
type NetRate struct {
	Device        string  `json:"device"`
	RxBytes       uint64  `json:"rx_bytes"` // cumulative since boot
	TxBytes       uint64  `json:"tx_bytes"`
	RxBytesPerSec float64 `json:"rx_bytes_per_sec"`
	TxBytesPerSec float64 `json:"tx_bytes_per_sec"`
}

// DiskRate is one block device (or partition) with any I/O since boot,
// from /proc/diskstats.
type DiskRate struct {
	Device           string  `json:"device"`
	Major            uint32  `json:"major"`
	Minor            uint32  `json:"minor"`
	ReadBytes        uint64  `json:"read_bytes"` // cumulative since boot
	WriteBytes       uint64  `json:"write_bytes"`
	Reads            uint64  `json:"reads"` // completed requests
	Writes           uint64  `json:"writes"`
	ReadBytesPerSec  float64 `json:"read_bytes_per_sec"`
	WriteBytesPerSec float64 `json:"write_bytes_per_sec"`
	ReadIOPS         float64 `json:"read_iops"`
	WriteIOPS        float64 `json:"write_iops"`
	// BusyPercent is the share of the interval with at least one request
	// in flight (iostat's %util): near 100 the device is saturated unless
	// it serves requests in parallel, as NVMe does.
	BusyPercent float64 `json:"busy_percent"`
}

// CPUBusy is one CPU's non-idle share of the interval, from /proc/stat:
// user, nice, system, irq, softirq and steal time over all time but guest
// (already inside user). Iowait counts as idle.
type CPUBusy struct {
	CPU         int     `json:"cpu"`
	BusyPercent float64 `json:"busy_percent"`
}

// TierUsage is one storage tier's size, reported by the node through
// Config.Tiers.
type TierUsage struct {
	Tier          string `json:"tier"`
	CapacityBytes uint64 `json:"capacity_bytes"`
	UsedBytes     uint64 `json:"used_bytes"`
}

// BlockLatency summarizes the eBPF block latency histogram of one device
// and operation (read, write, flush, discard, other): Count is cumulative
// since the probe was attached, the rest covers the interval. Percentiles
// come from metrics.Log2Layout buckets, good to a factor of 1.42.
type BlockLatency struct {
	Device string        `json:"device"`
	Op     string        `json:"op"`
	Count  uint64        `json:"count"`
	PerSec float64       `json:"per_sec"`
	Mean   time.Duration `json:"mean_ns"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
}

// CPUBusyMean is the average busy percentage over all CPUs.
func (s *Snapshot) CPUBusyMean() float64 {
	if len(s.CPU) == 0 {
		return 0
	}
	var t float64
	for _, c := range s.CPU {
		t += c.BusyPercent
	}
	return t / float64(len(s.CPU))
}

// NetTotal adds up the rates of the interfaces for which include returns
// true (all of them when include is nil). A node serving over loopback in a
// local cluster counts "lo"; one on a real network leaves it out.
func (s *Snapshot) NetTotal(include func(device string) bool) (rxBytesPerSec, txBytesPerSec float64) {
	for _, n := range s.Net {
		if include == nil || include(n.Device) {
			rxBytesPerSec += n.RxBytesPerSec
			txBytesPerSec += n.TxBytesPerSec
		}
	}
	return rxBytesPerSec, txBytesPerSec
}
