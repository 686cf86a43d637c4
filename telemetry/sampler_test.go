package telemetry

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pocketstore/pocket/telemetry/blkbpf"
	"github.com/pocketstore/pocket/telemetry/metrics"
)

// TestSamplerRealProc samples this machine around a loopback transfer.
func TestSamplerRealProc(t *testing.T) {
	s, err := NewSampler(Config{Tiers: func() []TierUsage {
		return []TierUsage{{Tier: "dram", CapacityBytes: 1 << 30, UsedBytes: 1 << 20}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const sent = 16 << 20
	loopbackTransfer(t, sent)
	snap, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Interval <= 0 {
		t.Fatalf("first sample interval %v, want time since NewSampler", snap.Interval)
	}
	if len(snap.CPU) != runtime.NumCPU() {
		t.Errorf("%d CPUs in /proc/stat, runtime.NumCPU() = %d", len(snap.CPU), runtime.NumCPU())
	}
	for _, c := range snap.CPU {
		if c.BusyPercent < 0 || c.BusyPercent > 100 {
			t.Errorf("cpu%d busy %.1f%%", c.CPU, c.BusyPercent)
		}
	}
	checkNonNegative(t, snap)
	lo, ok := findNet(snap, "lo")
	if !ok {
		t.Fatal("no loopback interface in /proc/net/dev")
	}
	if moved := lo.RxBytesPerSec * snap.Interval.Seconds(); moved < sent*0.99 {
		t.Errorf("lo received %.0f bytes in the interval, sent %d", moved, sent)
	}
	if snap.RSSBytes < 1<<20 {
		t.Errorf("RSS %d bytes, implausibly small", snap.RSSBytes)
	}
	if len(snap.Tiers) != 1 || snap.Tiers[0].UsedBytes != 1<<20 {
		t.Errorf("tiers %+v, want the one Config.Tiers gave", snap.Tiers)
	}
	if err := s.BlockProbeErr(); !errors.Is(err, errBlockNotAsked) {
		t.Errorf("BlockProbeErr without the probe = %v", err)
	}
}

func checkNonNegative(t *testing.T, snap Snapshot) {
	t.Helper()
	for _, n := range snap.Net {
		if n.RxBytesPerSec < 0 || n.TxBytesPerSec < 0 {
			t.Errorf("%s: negative rate %+v", n.Device, n)
		}
	}
	for _, d := range snap.Disks {
		if d.ReadBytesPerSec < 0 || d.WriteBytesPerSec < 0 || d.ReadIOPS < 0 || d.WriteIOPS < 0 || d.BusyPercent < 0 {
			t.Errorf("%s: negative rate %+v", d.Device, d)
		}
	}
}

func findNet(snap Snapshot, dev string) (NetRate, bool) {
	for _, n := range snap.Net {
		if n.Device == dev {
			return n, true
		}
	}
	return NetRate{}, false
}

// loopbackTransfer pushes n bytes through a TCP connection on 127.0.0.1.
func loopbackTransfer(t *testing.T, n int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(io.Discard, c)
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(c, zeros{}, n); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestSamplerRatesFromFixture checks the rate arithmetic exactly against a
// fake /proc whose counters the test advances by known amounts.
func TestSamplerRatesFromFixture(t *testing.T) {
	root := t.TempDir()
	proc, sys := filepath.Join(root, "proc"), filepath.Join(root, "sys")
	for _, d := range []string{filepath.Join(proc, "net"), filepath.Join(proc, "4242"), sys} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("4242", filepath.Join(proc, "self")); err != nil {
		t.Fatal(err)
	}
	writeFixture(t, proc, 0)
	now := time.Unix(1000, 0)
	s, err := NewSampler(Config{ProcRoot: proc, SysRoot: sys})
	if err != nil {
		t.Fatal(err)
	}
	s.clock = func() time.Time { return now }
	s.prev, _ = s.read() // re-take the baseline on the fake clock
	writeFixture(t, proc, 1)
	now = now.Add(2 * time.Second)
	snap, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Interval != 2*time.Second {
		t.Fatalf("interval %v", snap.Interval)
	}
	eth, _ := findNet(snap, "eth0")
	if eth.RxBytesPerSec != 500_000 || eth.TxBytesPerSec != 1_000_000 {
		t.Errorf("eth0 rates %+v, want 500000 rx and 1000000 tx per second", eth)
	}
	if len(snap.Disks) != 1 { // loop0 never did I/O and is left out
		t.Fatalf("disks %+v, want nvme0n1 only", snap.Disks)
	}
	d := snap.Disks[0]
	if d.Device != "nvme0n1" || d.ReadIOPS != 50 || d.WriteIOPS != 25 ||
		d.ReadBytesPerSec != 50*4096 || d.WriteBytesPerSec != 25*16384 || d.BusyPercent != 50 {
		t.Errorf("disk %+v", d)
	}
	if len(snap.CPU) != 2 || snap.CPU[0].BusyPercent != 25 || snap.CPU[1].BusyPercent != 100 {
		t.Errorf("cpu %+v, want 25%% and 100%%", snap.CPU)
	}
	if snap.RSSBytes != 100*uint64(os.Getpagesize()) {
		t.Errorf("rss %d, want 100 pages", snap.RSSBytes)
	}
	// A second sample with no new traffic reports none in its interval.
	now = now.Add(time.Second)
	snap, _ = s.Sample()
	if eth, _ := findNet(snap, "eth0"); eth.RxBytesPerSec != 0 {
		t.Errorf("idle interval eth0 %+v", eth)
	}
}

// writeFixture writes the fake /proc files for step 0 or 1. Between the
// steps (2 s apart): eth0 +1 MB rx, +2 MB tx; nvme0n1 +100 reads of 8
// sectors, +50 writes of 32 sectors, +1000 ms busy; cpu0 25 % busy,
// cpu1 100 %.
func writeFixture(t *testing.T, proc string, step uint64) {
	t.Helper()
	files := map[string]string{
		"net/dev": "Inter-|   Receive |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
			fmt.Sprintf("    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: %d 5 0 0 0 0 0 0 %d 7 0 0 0 0 0 0\n", 5000+step*1_000_000, 7000+step*2_000_000),
		"diskstats": "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n" +
			fmt.Sprintf(" 259       0 nvme0n1 %d 0 %d 0 %d 0 %d 0 0 %d 0 0 0 0 0 0 0\n", 10+step*100, 80+step*800, 4+step*50, 128+step*1600, 7+step*1000),
		// USER_HZ ticks: user nice system idle iowait irq softirq steal guest guest_nice.
		"stat": fmt.Sprintf("cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 %d 0 0 %d 0 0 0 0 0 0\ncpu1 %d 0 0 %d 0 0 0 0 0 0\nbtime 1\n",
			100+step*50, 100+step*150, 100+step*200, 100),
		"4242/stat": "4242 (pocket) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1000000 100 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(proc, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSamplerBlockLatency attaches the eBPF probe through the Sampler and
// checks direct I/O shows up in Snapshot.Block, or that the reason it
// cannot is reported.
func TestSamplerBlockLatency(t *testing.T) {
	s, err := NewSampler(Config{BlockLatency: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if perr := s.BlockProbeErr(); perr != nil {
		snap, _ := s.Sample()
		if !errors.Is(perr, blkbpf.ErrNotSupported) || snap.BlockErr == "" {
			t.Fatalf("probe error %v (BlockErr %q) is not a typed not-supported", perr, snap.BlockErr)
		}
		t.Skipf("eBPF block probe unavailable: %v", perr)
	}
	directWrites(t, filepath.Join(t.TempDir(), "f"), 16)
	snap, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	var writes uint64
	for _, b := range snap.Block {
		if b.Op == "write" {
			writes += b.Count
			if b.Count > 0 && b.PerSec <= 0 {
				t.Errorf("%+v: writes but no rate", b)
			}
		}
	}
	if writes < 2 {
		t.Errorf("block writes seen by eBPF: %d, want >= 2 after 16 O_DIRECT writes; %+v", writes, snap.Block)
	}
	reg, err := metrics.NewRegistry(s)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := metrics.Families{}
	for _, mf := range mfs {
		fams[mf.GetName()] = mf
	}
	if up, _ := fams.Value(metrics.BlockProbeUp); up != 1 {
		t.Errorf("%s = %v, want 1", metrics.BlockProbeUp, up)
	}
	var exported uint64
	for _, m := range fams[metrics.BlockIODuration].GetMetric() {
		exported += m.GetHistogram().GetSampleCount()
	}
	if exported < writes {
		t.Fatalf("eBPF histograms on /metrics count %d requests, the snapshot %d writes", exported, writes)
	}
}

// directWrites writes n 4 KiB blocks with O_DIRECT and fsync.
func directWrites(t *testing.T, path string, n int) {
	t.Helper()
	buf, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(buf)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o600)
	if err != nil {
		t.Skipf("O_DIRECT refused here: %v", err)
	}
	defer f.Close()
	for i := range n {
		if _, err := f.WriteAt(buf, int64(i)*4096); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}
