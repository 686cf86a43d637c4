package controller

import (
	"fmt"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestUnlistedJobKeepsItsBytes (hostile trial, 2026-12-07): a heartbeat
// lists the wire.MaxJobLoads busiest jobs; a quiet job left out of it
// keeps the bytes of the latest heartbeat that listed it, in status and
// for the per-job policy and drains (jobBytesLocked). Before, it read 0
// for as long as another client's 1,040 busy jobs ran.
func TestUnlistedJobKeepsItsBytes(t *testing.T) {
	c := newTest(t, Config{})
	node := dramNode("127.0.0.1:7001", 4<<30, 8000)
	mustRegister(t, c, node)
	m, err := c.RegisterJob("quiet", wire.JobHints{CapacityBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	used := func() int64 {
		t.Helper()
		for _, j := range c.Status().Jobs {
			if j.Job == m.Job {
				return j.UsedBytes
			}
		}
		t.Fatalf("job %s not in status", m.Job)
		return 0
	}
	tiers := []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 4 << 30, UsedBytes: 30 << 20, Mbps: 8000}}
	c.heartbeat(&wire.Heartbeat{Addr: node.Addr, Incarnation: 1, Tiers: tiers, Loads: []wire.JobLoad{{Job: m.Job, Bytes: 20 << 20}}})
	if got := used(); got != 20<<20 {
		t.Fatalf("listed: used %d; want 20 MiB", got)
	}
	busy := make([]wire.JobLoad, wire.MaxJobLoads)
	for i := range busy {
		busy[i] = wire.JobLoad{Job: fmt.Sprintf("busy-%d", i), Bytes: 1 << 10, RxMbps: 1}
	}
	for range 3 {
		c.heartbeat(&wire.Heartbeat{Addr: node.Addr, Incarnation: 1, Tiers: tiers, Loads: busy})
	}
	if got := used(); got != 20<<20 {
		t.Errorf("left out of a full list: used %d; want the 20 MiB last listed", got)
	}
	// Listed again, with no bytes: 0 is the figure.
	c.heartbeat(&wire.Heartbeat{Addr: node.Addr, Incarnation: 1, Tiers: tiers, Loads: []wire.JobLoad{{Job: m.Job}}})
	if got := used(); got != 0 {
		t.Errorf("listed with 0 bytes: used %d; want 0", got)
	}
}
