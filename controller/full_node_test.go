package controller

import (
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestJobWithoutCapacityNeedAvoidsAFullNode: within the tier TierFor
// picks, a job of no capacity need (Pocket's default: two nodes) is not
// placed on a node with no spare byte while another node has room, as it
// is not placed on a full tier (TestJobWithoutCapacityNeedAvoidsAFullTier):
// its puts would fail there. A full node and an empty one of DRAM: the
// job goes to the empty one only. When every node is full, the job is
// placed all the same (nothing better exists).
func TestJobWithoutCapacityNeedAvoidsAFullNode(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	full, empty := "127.0.0.1:7001", "127.0.0.1:7002"
	for _, addr := range []string{full, empty} {
		mustRegister(t, c, &wire.NodeRegister{Addr: addr, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 8 << 30, Mbps: 8000}}})
	}
	tiers := []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 8 << 30, UsedBytes: 8 << 30, Mbps: 8000}}
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: full, Tiers: tiers}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []wire.JobHints{{}, {PeakMbps: 12000}} {
		m, err := c.RegisterJob("j", h)
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		for _, mn := range m.Nodes {
			if mn.Addr == full {
				t.Errorf("hints %+v: placed on %s, whose 8 GiB are all used (weight %.2f of %d nodes); want %s only", h, full, mn.Weight, len(m.Nodes), empty)
			}
		}
	}
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: empty, Tiers: tiers}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterJob("k", wire.JobHints{PeakMbps: 1000}); err != nil {
		t.Errorf("every node full, a job of no capacity need: %v; want it placed as before", err)
	}
}
