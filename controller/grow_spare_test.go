package controller

import (
	"errors"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestGrowthHoldsWithinTheNodesSpare: a node joining a job's map gets no
// more of the job's allotted bytes than it has spare, as sizing gives
// none (TestPlacementHoldsWithinEachNodesSpare): an 8 GiB job on an 8 GiB
// node grown onto a node with 1 GiB spare got the mean weight, half its
// keys and 4 GiB there. A node with no spare byte is refused.
func TestGrowthHoldsWithinTheNodesSpare(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	big, small, full := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	mustRegister(t, c, &wire.NodeRegister{Addr: big, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 8 << 30, Mbps: 8000}}})
	m, err := c.RegisterJob("j", wire.JobHints{CapacityBytes: 8 << 30, PeakMbps: 1000})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("register: %+v, %v", m, err)
	}
	mustRegister(t, c, &wire.NodeRegister{Addr: small, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 8000}}})
	mustRegister(t, c, &wire.NodeRegister{Addr: full, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 8000}}})
	used := []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 1 << 30, Mbps: 8000}}
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: full, Tiers: used}); err != nil {
		t.Fatal(err)
	}
	if err := c.GrowJob(m.Job, small); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	got := c.loads[small].bytes[kindDRAM]
	c.mu.Unlock()
	if got > 1<<30 {
		t.Errorf("node %s (1 GiB of DRAM) is allotted %d bytes of the 8 GiB job: more than it can hold", small, got)
	}
	k, err := c.RegisterJob("k", wire.JobHints{PeakMbps: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.GrowJob(k.Job, full); !errors.Is(err, wire.ErrNoSpace) {
		t.Errorf("grow onto %s, whose 1 GiB is all used: %v; want a no-space refusal", full, err)
	}
}
