package controller

import (
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestStatusCountsADrainingNodesBytes: a job's bytes in the status reply
// (pocket status's USED SIZE) count the values a node drained from the
// cluster still holds, as well as those already moved: 6 MiB on the
// draining node and 4 MiB on the other read 10 MiB before, during and as
// the drain moves them. Before, the draining node was left out and the
// job read 4 MiB, then grew as values moved (the figure said values were
// gone that were not).
func TestStatusCountsADrainingNodesBytes(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	m, err := c.RegisterJob("moving", wire.JobHints{PeakMbps: 2000})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("register: %+v %v; want both nodes", m, err)
	}
	beat := func(addr string, bytes int64) {
		t.Helper()
		_, err := c.Heartbeat(&wire.Heartbeat{Addr: addr, Loads: []wire.JobLoad{{Job: m.Job, Bytes: bytes}},
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: bytes, Mbps: 1000}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	used := func() int64 {
		for _, js := range c.Status().Jobs {
			if js.Job == m.Job {
				return js.UsedBytes
			}
		}
		t.Fatal("the job is not listed")
		return 0
	}
	beat(a, 6<<20)
	beat(b, 4<<20)
	if got := used(); got != 10<<20 {
		t.Fatalf("before the drain: %d B, want 10 MiB", got)
	}
	if _, err := c.Drain(a, 0); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ onA, onB int64 }{{6 << 20, 4 << 20}, {2 << 20, 8 << 20}} {
		beat(a, step.onA)
		beat(b, step.onB)
		if got := used(); got != 10<<20 {
			t.Errorf("draining, %d B on the draining node and %d B on the other: %d B, want 10 MiB", step.onA, step.onB, got)
		}
	}
}
