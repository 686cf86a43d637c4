package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// loadBeat sends node addr's heartbeat with the job loads ls (and its
// DRAM tier holding used bytes) to c.
func loadBeat(t *testing.T, c *Controller, addr string, rx float64, used int64, ls []wire.JobLoad) {
	t.Helper()
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: addr, RxMbps: rx,
		Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 60e9, Mbps: 8000, UsedBytes: used}},
		Loads: ls}); err != nil {
		t.Fatal(err)
	}
}

// withEarlierRun records one run of "etl" at 12000 Mb/s and 20e9 bytes
// (estimate 13200 Mb/s, 22e9 bytes).
func withEarlierRun(c *Controller) {
	c.mu.Lock()
	c.prof.record("etl", state.Run{Job: "etl-0", Ended: time.Now().UTC(), PeakMbps: 12000, PeakBytes: 20e9, Tier: kindDRAM})
	c.mu.Unlock()
}

// noZeroRun fails when name's profile holds a run of job recorded as 0
// Mb/s and 0 bytes, or when the next job of the name is sized below the
// earlier run's 12000 Mb/s and 20e9 bytes.
func noZeroRun(t *testing.T, c *Controller, name, job, why string) {
	t.Helper()
	p, next, ok := c.Profile(name)
	if !ok {
		t.Fatalf("%s has no profile", name)
	}
	for _, r := range p.Runs {
		if r.Job == job {
			t.Errorf("the run of %s, %s, is recorded as %.0f Mb/s, %d bytes; want it not recorded",
				job, why, r.PeakMbps, r.PeakBytes)
		}
	}
	if next.Mbps < 12000 || next.Bytes < 20e9 {
		t.Errorf("the next job of %s is sized at %.0f Mb/s, %d bytes; want at least 12000 Mb/s, 20e9 bytes (its earlier run)",
			name, next.Mbps, next.Bytes)
	}
}

// TestRunSettlingAfterARestartIsNotRecorded: another run none of whose
// heartbeats counted. A restart starts every restored job's figures
// settling (its heartbeats cover time before the restart: jobload.go),
// so the first profileSmooth heartbeats of each node after it do not
// count. A job registered just before a restart and deregistered after
// three heartbeats of the restarted controller had no figure counted; it
// was recorded (3 heartbeats counted as samples) as a run of 0 Mb/s and
// 0 bytes, at the newest run's weight, sizing the next job of its name at
// a third of what its earlier run used (4400 Mb/s, 7.3e9 bytes).
func TestRunSettlingAfterARestartIsNotRecorded(t *testing.T) {
	st := state.NewMemory()
	c := newTest(t, Config{FirstJobSeq: 1, Store: st})
	const addr = "127.0.0.1:7001"
	mustRegister(t, c, dramNode(addr, 60e9, 8000))
	withEarlierRun(c)
	m, err := c.RegisterJob("etl", wire.JobHints{PeakMbps: 6000, CapacityBytes: 10e9})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	r := newTest(t, Config{Store: st})
	mustRegister(t, r, dramNode(addr, 60e9, 8000))
	for range 3 {
		loadBeat(t, r, addr, 6000, 10e9, []wire.JobLoad{{Job: m.Job, RxMbps: 6000, Bytes: 10e9}})
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := r.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	noZeroRun(t, r, "etl", m.Job, "whose every heartbeat fell in the settling after a restart")
}

// TestRunOfAJobItsNodeDoesNotListIsNotRecorded: a node with more jobs
// than a heartbeat lists (wire.MaxJobLoads, the busiest) says nothing of
// the others: their figures there are unknown, not 0. A job never listed
// was recorded, each heartbeat a sample, as a run of 0 Mb/s and 0 bytes,
// however many bytes it held there.
func TestRunOfAJobItsNodeDoesNotListIsNotRecorded(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	const addr = "127.0.0.1:7001"
	mustRegister(t, c, dramNode(addr, 60e9, 8000))
	withEarlierRun(c)
	m, err := c.RegisterJob("etl", wire.JobHints{PeakMbps: 6000, CapacityBytes: 10e9})
	if err != nil {
		t.Fatal(err)
	}
	busy := make([]wire.JobLoad, wire.MaxJobLoads)
	for i := range busy {
		busy[i] = wire.JobLoad{Job: fmt.Sprintf("other-%d", i), RxMbps: 5, Bytes: 1e6}
	}
	for range 4 {
		loadBeat(t, c, addr, 6000, 30e9, busy)
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	noZeroRun(t, c, "etl", m.Job, "which its node's heartbeats (listing the most jobs they may) never listed")
}
