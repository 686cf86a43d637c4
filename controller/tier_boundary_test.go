package controller

import (
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestPlacementHoldsWithinEachNodesSpare: a job whose capacity need the
// tier holds (TierFor admits it: 10 GiB on DRAM nodes of 8 and 2 GiB,
// exactly the tier's spare) must be placed so that no node is given more
// of it than the node can hold: capacity is a hard limit (puts beyond it
// fail), and a job that fits no placement should be refused at
// registration. The weights blend each node's share of spare bandwidth
// (equal here) with its share of spare capacity, so the 2 GiB node gets
// weight 0.3, an allotment of 3 GiB, and 30% of the job's keys: the
// registration succeeds, and the job's puts fail once that node is full
// with 2 GiB of the 10 it was promised stored.
func TestPlacementHoldsWithinEachNodesSpare(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	caps := map[string]int64{"127.0.0.1:7001": 8 << 30, "127.0.0.1:7002": 2 << 30}
	for addr, capacity := range caps {
		mustRegister(t, c, &wire.NodeRegister{Addr: addr, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: capacity, Mbps: 8000}}})
	}
	m, err := c.RegisterJob("j", wire.JobHints{CapacityBytes: 10 << 30, PeakMbps: 8000, LatencySensitive: true})
	if err != nil {
		t.Fatalf("10 GiB on 8 + 2 GiB of DRAM: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, mn := range m.Nodes {
		if got := c.loads[mn.Addr].bytes[kindDRAM]; got > caps[mn.Addr] {
			t.Errorf("node %s (%d bytes of DRAM) is allotted %d bytes of the job (weight %.3f): more than it can hold",
				mn.Addr, caps[mn.Addr], got, mn.Weight)
		}
	}
}
