package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestRunSpanningARestartKeepsItsPeak: profiles survive a controller
// restart, and so must the run of a job that was running across it. The
// job "etl" runs at 6000 Mb/s holding 20 GB for five heartbeats, the
// controller restarts over the same state, the job idles at 100 Mb/s with
// 1 GB for five more and is deregistered: its run's peak is 6000 Mb/s and
// 20 GB. The running jobs' traces (profileBook.traces) are not stored, so
// the restarted controller records only what it saw after the restart
// (peak 100 Mb/s, 1 GB, the first three quarters empty), and the next
// job of the name is sized at 600 Mb/s and 1.1 GB instead of 6600 Mb/s and
// 22 GB. (With fewer than 2 heartbeats after the restart the run is not
// recorded at all.)
func TestRunSpanningARestartKeepsItsPeak(t *testing.T) {
	st := state.NewMemory()
	c := newTest(t, Config{FirstJobSeq: 1, Store: st})
	const addr = "127.0.0.1:7001"
	mustRegister(t, c, dramNode(addr, 60e9, 8000))
	m, err := c.RegisterJob("etl", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	beat := func(c *Controller, mbps float64, bytes int64) {
		t.Helper()
		if _, err := c.Heartbeat(&wire.Heartbeat{Addr: addr, RxMbps: mbps,
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 60e9, Mbps: 8000, UsedBytes: bytes}},
			Loads: []wire.JobLoad{{Job: m.Job, RxMbps: mbps, Bytes: bytes}}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 5 {
		beat(c, 6000, 20e9)
	}
	c.mu.Lock()
	before := c.prof.traces[m.Job].peak
	c.mu.Unlock()
	if before.PeakMbps != 6000 || before.PeakBytes != 20e9 {
		t.Fatalf("before the restart the run's peak is %+v; want 6000 Mb/s, 20e9 bytes", before)
	}
	c.Close()
	r := newTest(t, Config{Store: st})
	mustRegister(t, r, dramNode(addr, 60e9, 8000))
	for range 5 {
		beat(r, 100, 1e9)
	}
	if _, err := r.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	p, next, ok := r.Profile("etl")
	if !ok || len(p.Runs) != 1 {
		t.Fatalf("profile of etl: %+v, %v; want one run", p, ok)
	}
	if run := p.Runs[0]; run.PeakMbps != 6000 || run.PeakBytes != 20e9 {
		t.Errorf("the run recorded peak %.0f Mb/s, %d bytes (phases %+v); want 6000 Mb/s and 20e9 bytes, "+
			"its peak before the restart (next job sized at %.0f Mb/s, %d bytes)", run.PeakMbps, run.PeakBytes, run.Phases, next.Mbps, next.Bytes)
	}
}
