package controller

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestSpareCountsEachJobsUnusedAllotment: a node's spare bytes are its
// capacity less what it holds and less what each of its jobs was allotted
// there and has not used. A new user's trial: on a 256 MiB node, job a
// allotted 64 MiB held 100 MiB and job b allotted 9 MiB held nothing; the
// controller counted the larger of the node's used bytes (100 MiB) and
// its allotted ones (73 MiB), said 156 MiB spare, and placed a 150 MiB
// job there: 259 MiB promised on 256. Now it counts 147 MiB and refuses.
// A node that does not count per job is counted as before.
func TestSpareCountsEachJobsUnusedAllotment(t *testing.T) {
	const node, mib = "127.0.0.1:7001", int64(1) << 20
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, dramNode(node, 256*mib, 8000))
	a, err := c.RegisterJob("a", wire.JobHints{CapacityBytes: 64 * mib, PeakMbps: 100})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.RegisterJob("b", wire.JobHints{CapacityBytes: 9 * mib, PeakMbps: 100})
	if err != nil {
		t.Fatal(err)
	}
	beat := func(aBytes int64, perJob bool) {
		t.Helper()
		hb := &wire.Heartbeat{Addr: node, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 256 * mib, Mbps: 8000, UsedBytes: aBytes}}}
		if perJob {
			hb.Incarnation = 7
			hb.Loads = []wire.JobLoad{{Job: a.Job, Bytes: aBytes}, {Job: b.Job}}
		}
		if _, err := c.Heartbeat(hb); err != nil {
			t.Fatal(err)
		}
	}
	spare := func() int64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.spareBytesLocked(node, kindDRAM)
	}
	beat(100*mib, true)
	if got, want := spare(), (256-100-9)*mib; got != want {
		t.Errorf("spare %d MiB with a past its 64 MiB (100) and b's 9 MiB unused; want %d MiB", got/mib, want/mib)
	}
	if m, err := c.RegisterJob("c", wire.JobHints{CapacityBytes: 150 * mib, PeakMbps: 100}); wire.CodeOf(err) != wire.CodeNoSpace {
		t.Errorf("a 150 MiB job on a node with 147 MiB spare: %+v, %v; want no space", m.Nodes, err)
	}
	beat(10*mib, true)
	if got, want := spare(), (256-10-54-9)*mib; got != want {
		t.Errorf("spare %d MiB with a holding 10 of its 64 MiB; want %d MiB", got/mib, want/mib)
	}
	beat(100*mib, false)
	if got, want := spare(), (256-100)*mib; got != want {
		t.Errorf("spare %d MiB on a node that does not count per job; want %d MiB (the larger of used and allotted)", got/mib, want/mib)
	}
}

// TestHeldBytesCacheMatchesASum: the held bytes kept per node between
// heartbeats and placements (nodeLoad.unused) equal the sum made afresh
// over the node's jobs, through registrations, heartbeats that change the
// jobs' bytes, and deregistrations.
func TestHeldBytesCacheMatchesASum(t *testing.T) {
	const mib = int64(1) << 20
	c := newTest(t, Config{FirstJobSeq: 1})
	addrs := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	for _, a := range addrs {
		mustRegister(t, c, dramNode(a, 1<<30, 8000))
	}
	var live []*wire.PlacementMap
	beat := func(round int) {
		for _, a := range addrs {
			var loads []wire.JobLoad
			for i, m := range live {
				loads = append(loads, wire.JobLoad{Job: m.Job, Bytes: int64((i*7+round*3)%6) * mib})
			}
			hb := &wire.Heartbeat{Addr: a, Incarnation: 7, Loads: loads,
				Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 8000, UsedBytes: int64(round) * mib}}}
			if _, err := c.Heartbeat(hb); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(step string) {
		t.Helper()
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, a := range addrs {
			n := c.nodes[a]
			tier := n.tier(kindDRAM)
			got := c.heldBytesLocked(n, tier)
			want := tier.UsedBytes
			if l := c.loads[a]; l != nil {
				for j := range l.jobs {
					i := slices.IndexFunc(j.nodes, func(mn wire.MapNode) bool { return mn.Addr == a })
					want += max(0, byteShares(j.allocBytes, j.nodes)[i]-n.jobLoads.latest(j.id).Bytes)
				}
			}
			if got != want {
				t.Fatalf("%s: node %s holds %d bytes by the kept sum, %d by a fresh one", step, a, got, want)
			}
		}
	}
	for round := range 12 {
		m, err := c.RegisterJob(fmt.Sprintf("j%d", round), wire.JobHints{CapacityBytes: int64(10+round) * mib, PeakMbps: 100})
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, m)
		check(fmt.Sprintf("round %d, registered", round))
		beat(round)
		check(fmt.Sprintf("round %d, heartbeats", round))
		if round%3 == 2 {
			if _, err := c.DeregisterJob(t.Context(), live[0].Job, live[0].Token); err != nil {
				t.Fatal(err)
			}
			live = live[1:]
			check(fmt.Sprintf("round %d, deregistered", round))
		}
	}
}
