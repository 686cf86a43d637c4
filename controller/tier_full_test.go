package controller

import (
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestJobWithoutCapacityNeedAvoidsAFullTier: a job that gives no capacity
// need (a bandwidth hint only, or no hint and no profile) still stores
// values, so it must not be placed on a tier with no spare byte while
// another tier has room. TierFor's fit test is SpareBytes >= need.Bytes,
// which a full tier passes for a need of 0 bytes (0 >= 0), and the two
// tiers then cost the same (bandwidth only), so the cheaper GiB, NVMe,
// wins: on a node whose NVMe tier is full (100 GiB used of 100) and whose
// DRAM is empty, both jobs go to NVMe, where every put fails for lack of
// space.
func TestJobWithoutCapacityNeedAvoidsAFullTier(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	const addr = "127.0.0.1:7001"
	tiers := []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 8 << 30, Mbps: 8000}, {Kind: kindNVMe, CapacityBytes: 100 << 30, Mbps: 8000}}
	mustRegister(t, c, &wire.NodeRegister{Addr: addr, Tiers: tiers})
	tiers[1].UsedBytes = 100 << 30 // other jobs' values
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: addr, Tiers: tiers}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []wire.JobHints{{PeakMbps: 1000}, {}} {
		m, err := c.RegisterJob("j", h)
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if m.Tier != kindDRAM {
			t.Errorf("hints %+v: placed on %s, whose 100 GiB are all used; want dram (8 GiB spare)", h, wire.Tier(m.Tier))
		}
	}
}
