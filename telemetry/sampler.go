package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/pocketstore/pocket/telemetry/blkbpf"
	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
)

// sectorSize is the unit of the sector counts in /proc/diskstats: always
// 512 bytes, whatever the device's logical block size.
const sectorSize = 512

// Config chooses what a Sampler reads. The zero value samples the machine
// through /proc and /sys without the eBPF probe.
type Config struct {
	// ProcRoot and SysRoot are where procfs and sysfs are mounted; "/proc"
	// and "/sys" when empty. Tests point them at fixtures.
	ProcRoot string
	SysRoot  string
	// Tiers, when set, is called on each Sample for the node's tier sizes.
	// It runs on the sampling goroutine with the Sampler locked: it should
	// not block and must not call the Sampler.
	Tiers func() []TierUsage
	// BlockLatency attaches the eBPF block latency probe (blkbpf). When the
	// kernel or the process cannot run it, sampling goes on without it and
	// Snapshot.BlockErr says why.
	BlockLatency bool
}

// Sampler turns the machine's cumulative counters into rates. Call Sample
// once a second (or use Run); each call reports the interval since the
// previous one, the first the interval since NewSampler. Sample, Last and
// Collect may be called from different goroutines. A Sampler is a
// prometheus.Collector of the host figures (collect.go).
type Sampler struct {
	cfg   Config
	proc  procfs.FS
	disks blockdevice.FS
	clock func() time.Time

	mu       sync.Mutex // guards all below
	prev     raw
	last     Snapshot
	probe    *blkbpf.Probe
	probeErr error
	blkPrev  map[blkKey]metrics.HistogramSnapshot
	blkCum   []blkbpf.Reading // last cumulative reading, for /metrics
}

// raw is one reading of the cumulative counters.
type raw struct {
	at    time.Time
	net   procfs.NetDev
	disks []blockdevice.Diskstats
	cpu   map[int64]procfs.CPUStat
}

type blkKey struct {
	major, minor uint32
	op           blkbpf.Op
}

// NewSampler opens procfs and sysfs, attaches the eBPF probe if asked, and
// takes the baseline reading the first Sample is measured against.
func NewSampler(cfg Config) (*Sampler, error) {
	cfg.ProcRoot = cmp.Or(cfg.ProcRoot, procfs.DefaultMountPoint)
	cfg.SysRoot = cmp.Or(cfg.SysRoot, "/sys")
	proc, err := procfs.NewFS(cfg.ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("telemetry: procfs: %w", err)
	}
	disks, err := blockdevice.NewFS(cfg.ProcRoot, cfg.SysRoot)
	if err != nil {
		return nil, fmt.Errorf("telemetry: block devices: %w", err)
	}
	s := &Sampler{cfg: cfg, proc: proc, disks: disks, clock: time.Now, blkPrev: map[blkKey]metrics.HistogramSnapshot{}}
	if cfg.BlockLatency {
		s.probe, s.probeErr = blkbpf.Open()
	}
	s.prev, _ = s.read() // a failing source fails again, visibly, in Sample
	return s, nil
}

// BlockProbeErr is nil when the eBPF probe is attached, and otherwise why
// not (it wraps blkbpf.ErrNotSupported when the kernel refused it, and is
// errBlockNotAsked when Config.BlockLatency was false).
func (s *Sampler) BlockProbeErr() error {
	if !s.cfg.BlockLatency {
		return errBlockNotAsked
	}
	return s.probeErr
}

var errBlockNotAsked = errors.New("telemetry: block latency probe not requested")

// Sample reads the counters and returns the rates since the previous call.
// When a source cannot be read its part of the Snapshot stays empty and the
// error says which; the rest is still filled in.
func (s *Sampler) Sample() (Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.read()
	snap := Snapshot{Time: cur.at, Interval: cur.at.Sub(s.prev.at)}
	secs := snap.Interval.Seconds()
	snap.Net = netRates(s.prev.net, cur.net, secs)
	snap.Disks = diskRates(s.prev.disks, cur.disks, secs)
	snap.CPU = cpuBusy(s.prev.cpu, cur.cpu)
	rss, rerr := s.rss()
	snap.RSSBytes = rss
	if s.cfg.Tiers != nil {
		snap.Tiers = s.cfg.Tiers()
	}
	berr := s.blockLatency(&snap, secs)
	s.prev = cur
	s.last = snap
	return snap, errors.Join(err, rerr, berr)
}

// Last returns the most recent Snapshot (the zero Snapshot before the first
// Sample).
func (s *Sampler) Last() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Run calls Sample every interval until ctx ends, handing each result to fn
// on Run's goroutine. It returns ctx's error.
func (s *Sampler) Run(ctx context.Context, every time.Duration, fn func(Snapshot, error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			snap, err := s.Sample()
			fn(snap, err)
		}
	}
}

// Close detaches the eBPF probe, if any.
func (s *Sampler) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.probe == nil {
		return nil
	}
	err := s.probe.Close()
	s.probe = nil
	return err
}

// read takes one reading of every cumulative counter.
func (s *Sampler) read() (raw, error) {
	r := raw{at: s.clock()}
	var errs []error
	var err error
	if r.net, err = s.proc.NetDev(); err != nil {
		errs = append(errs, fmt.Errorf("telemetry: net/dev: %w", err))
	}
	if r.disks, err = s.disks.ProcDiskstats(); err != nil {
		errs = append(errs, fmt.Errorf("telemetry: diskstats: %w", err))
	}
	st, err := s.proc.Stat()
	if err != nil {
		errs = append(errs, fmt.Errorf("telemetry: stat: %w", err))
	}
	r.cpu = st.CPU
	return r, errors.Join(errs...)
}

func (s *Sampler) rss() (uint64, error) {
	p, err := s.proc.Self()
	if err != nil {
		return 0, fmt.Errorf("telemetry: self: %w", err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("telemetry: self stat: %w", err)
	}
	return uint64(max(st.ResidentMemory(), 0)), nil
}

// rate is (cur-prev)/secs, or 0 for the first sample or a counter that went
// backwards (a device that was removed and came back).
func rate(cur, prev uint64, secs float64) float64 {
	if secs <= 0 || cur < prev {
		return 0
	}
	return float64(cur-prev) / secs
}

func netRates(prev, cur procfs.NetDev, secs float64) []NetRate {
	out := make([]NetRate, 0, len(cur))
	for name, c := range cur {
		p, seen := prev[name]
		if !seen {
			p = c
		}
		out = append(out, NetRate{
			Device: name, RxBytes: c.RxBytes, TxBytes: c.TxBytes,
			RxBytesPerSec: rate(c.RxBytes, p.RxBytes, secs),
			TxBytesPerSec: rate(c.TxBytes, p.TxBytes, secs),
		})
	}
	slices.SortFunc(out, func(a, b NetRate) int { return cmp.Compare(a.Device, b.Device) })
	return out
}

// diskRates reports the devices that have done any I/O since boot, which
// leaves out idle loop and zram devices.
func diskRates(prev, cur []blockdevice.Diskstats, secs float64) []DiskRate {
	before := make(map[string]blockdevice.Diskstats, len(prev))
	for _, d := range prev {
		before[d.DeviceName] = d
	}
	out := make([]DiskRate, 0, len(cur))
	for _, c := range cur {
		if c.ReadIOs+c.WriteIOs+c.DiscardIOs == 0 {
			continue
		}
		p, seen := before[c.DeviceName]
		if !seen {
			p = c
		}
		out = append(out, DiskRate{
			Device: c.DeviceName, Major: c.MajorNumber, Minor: c.MinorNumber,
			ReadBytes: c.ReadSectors * sectorSize, WriteBytes: c.WriteSectors * sectorSize,
			Reads: c.ReadIOs, Writes: c.WriteIOs,
			ReadBytesPerSec:  rate(c.ReadSectors, p.ReadSectors, secs) * sectorSize,
			WriteBytesPerSec: rate(c.WriteSectors, p.WriteSectors, secs) * sectorSize,
			ReadIOPS:         rate(c.ReadIOs, p.ReadIOs, secs),
			WriteIOPS:        rate(c.WriteIOs, p.WriteIOs, secs),
			BusyPercent:      min(rate(c.IOsTotalTicks, p.IOsTotalTicks, secs)/10, 100), // ms per s -> %
		})
	}
	slices.SortFunc(out, func(a, b DiskRate) int { return cmp.Compare(a.Device, b.Device) })
	return out
}

// cpuBusy compares the per-CPU times of two /proc/stat readings. A CPU that
// is new since the last reading (hotplug) reports 0 this time.
func cpuBusy(prev, cur map[int64]procfs.CPUStat) []CPUBusy {
	out := make([]CPUBusy, 0, len(cur))
	for id, c := range cur {
		b := CPUBusy{CPU: int(id)}
		if p, ok := prev[id]; ok {
			busy := busyTime(c) - busyTime(p)
			total := busy + (c.Idle + c.Iowait) - (p.Idle + p.Iowait)
			if total > 0 && busy >= 0 {
				b.BusyPercent = min(100*busy/total, 100)
			}
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b CPUBusy) int { return cmp.Compare(a.CPU, b.CPU) })
	return out
}

// busyTime is the non-idle time; guest time is already counted in user.
func busyTime(c procfs.CPUStat) float64 {
	return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
}

// blockLatency fills snap.Block from the eBPF probe, or snap.BlockErr.
func (s *Sampler) blockLatency(snap *Snapshot, secs float64) error {
	if !s.cfg.BlockLatency {
		return nil
	}
	if s.probe == nil {
		if s.probeErr != nil {
			snap.BlockErr = s.probeErr.Error()
		}
		return nil // not an error of this sample: the kernel said no once
	}
	hs, err := s.probe.Read()
	if err != nil {
		snap.BlockErr = err.Error()
		return fmt.Errorf("telemetry: %w", err)
	}
	s.blkCum = hs
	for i := range hs {
		h := &hs[i]
		k := blkKey{h.Major, h.Minor, h.Op}
		prev := s.blkPrev[k]
		d := h.Latency.Sub(&prev)
		s.blkPrev[k] = h.Latency
		snap.Block = append(snap.Block, BlockLatency{
			Device: h.Device, Op: h.Op.String(), Count: h.Latency.Count(),
			PerSec: rate(d.Count(), 0, secs), Mean: d.Mean(),
			P50: d.Quantile(0.5), P99: d.Quantile(0.99),
		})
	}
	return nil
}
