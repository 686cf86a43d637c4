package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestRunUnderADrainDoesNotZeroItsProfile: while a node of a job's map
// drains from the cluster, none of the job's heartbeat figures count
// toward its profile (jobTrace.settled), yet each heartbeat still counts
// as a sample (jobTrace.count), so a job whose life passes within a drain
// is recorded as a run of 0 Mb/s and 0 bytes, at the newest run's weight.
// That is the run of ~0 the profile doc says it never records ("a run of
// ~0 Mb/s would size the next job of its name at ~0"): the controller saw
// none of the run's figures, so the run should not be recorded, and the
// name's estimate should stay what its earlier runs give.
//
// Here the name has one earlier run at 12000 Mb/s and 20e9 bytes
// (estimate 13200 Mb/s, 22e9 bytes). The job "etl" runs at 6000 Mb/s and
// 10e9 bytes on each of its two nodes for six heartbeats while one of
// them drains, and is deregistered: a run of 0 Mb/s and 0 bytes is
// recorded, and the next job of the name is sized at 4400 Mb/s and
// 7.3e9 bytes, a third of what it used.
func TestRunUnderADrainDoesNotZeroItsProfile(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 60e9, 8000))
	mustRegister(t, c, dramNode(b, 60e9, 8000))
	c.mu.Lock()
	c.prof.record("etl", state.Run{Job: "etl-0", Ended: time.Now().UTC(), PeakMbps: 12000, PeakBytes: 20e9, Tier: kindDRAM})
	c.mu.Unlock()
	m, err := c.RegisterJob("etl", wire.JobHints{PeakMbps: 12000, CapacityBytes: 20e9})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 2 {
		t.Fatalf("etl placed on %d node(s); want 2", len(m.Nodes))
	}
	if _, err := c.Drain(b, time.Hour); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		for _, addr := range []string{a, b} {
			if _, err := c.Heartbeat(&wire.Heartbeat{Addr: addr, RxMbps: 6000,
				Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 60e9, Mbps: 8000, UsedBytes: 10e9}},
				Loads: []wire.JobLoad{{Job: m.Job, RxMbps: 6000, Bytes: 10e9}}}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	p, next, ok := c.Profile("etl")
	if !ok {
		t.Fatal("etl has no profile")
	}
	for _, r := range p.Runs {
		if r.Job == m.Job && r.PeakMbps == 0 && r.PeakBytes == 0 {
			t.Errorf("the run under the drain is recorded as %.0f Mb/s, %d bytes; want it not recorded (none of its figures counted) "+
				"or its own peak (12000 Mb/s, 20e9 bytes)", r.PeakMbps, r.PeakBytes)
		}
	}
	if next.Mbps < 12000 || next.Bytes < 20e9 {
		t.Errorf("the next job of the name is sized at %.0f Mb/s, %d bytes (estimate %+v); want at least 12000 Mb/s, 20e9 bytes, what its runs used",
			next.Mbps, next.Bytes, next.Estimate)
	}
}
