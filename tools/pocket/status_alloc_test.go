package main

import (
	"math"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// oversubscribed is a status of three 8000 Mb/s DRAM nodes of 1 GiB: job
// a-1 allotted 150000 Mb/s over the first two, b-2 10600 Mb/s on the
// first, c-3 1000 Mb/s alone on the third (161600 Mb/s allotted of 24000).
func oversubscribed() *wire.ClusterStatus {
	n1, n2, n3 := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	tiers := []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000}}
	node := func(addr string) wire.NodeStatus {
		return wire.NodeStatus{Addr: addr, State: wire.NodeActive, Tiers: tiers}
	}
	job := func(id string, mbps float64, nodes ...wire.MapNode) wire.JobStatus {
		return wire.JobStatus{Job: id, Name: id[:1], Tier: uint8(wire.TierDRAM), AllocMbps: mbps, AllocBytes: 256 << 20, Nodes: nodes}
	}
	return &wire.ClusterStatus{NodeCount: 3, JobCount: 3, Nodes: []wire.NodeStatus{node(n1), node(n2), node(n3)},
		Jobs: []wire.JobStatus{
			job("a-1", 150000, wire.MapNode{Addr: n1, Weight: 0.5, State: wire.NodeActive}, wire.MapNode{Addr: n2, Weight: 0.5, State: wire.NodeActive}),
			job("b-2", 10600, wire.MapNode{Addr: n1, Weight: 1, State: wire.NodeActive}),
			job("c-3", 1000, wire.MapNode{Addr: n3, Weight: 1, State: wire.NodeActive})}}
}

// TestStatusShowsOversubscription: when the jobs' allotments (what their
// hints asked) exceed the cluster, status says so: a line per tier with
// the allotments against the live nodes' capacity, marked OVERSUBSCRIBED
// with the factor, and a line per job whose nodes carry less than its
// allotment when every job uses its own (each node shared in proportion
// to what is asked of it); --json adds allotments[] and jobs[].carry_mbps.
// The table's columns are unchanged. Before, status showed 161600 Mb/s
// allotted without a word on the cluster's 24000 (a new user's trial).
func TestStatusShowsOversubscription(t *testing.T) {
	v := statusView(oversubscribed())
	// n1 is asked 75000 + 10600 Mb/s of its 8000, n2 75000 of its 8000.
	wantCarry := map[string]float64{"a-1": 75000*8000/85600.0 + 8000, "b-2": 10600 * 8000 / 85600.0, "c-3": 1000}
	for _, j := range v.Jobs {
		if math.Abs(j.CarryMbps-wantCarry[j.JobID]) > 1e-6 {
			t.Errorf("job %s carries %.3f Mb/s, want %.3f", j.JobID, j.CarryMbps, wantCarry[j.JobID])
		}
	}
	if len(v.Allotments) != 1 {
		t.Fatalf("allotments %+v, want one tier", v.Allotments)
	}
	a := v.Allotments[0]
	// The amounts beyond capacity are numbers beside the capacities (they
	// were booleans named like them: oversubscribed_mbps: true).
	if a.Tier != "dram" || a.Nodes != 3 || a.Jobs != 3 || a.CapacityMbps != 24000 || a.AllocMbps != 161600 || a.OversubscribedMbps != 137600 ||
		a.CapacityBytes != 3<<30 || a.AllocBytes != 768<<20 || a.OversubscribedBytes != 0 || !a.Oversubscribed {
		t.Errorf("allotments %+v", a)
	}
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	for _, want := range []string{
		"JOB  TIER  EPOCH  NODES  ALLOC Mb/s  USED Mb/s  ALLOC SIZE  USED SIZE  COST $/h  MAP",
		"dram: 161600 of 24000 Mb/s: OVERSUBSCRIBED 6.7x, 768MiB of 3GiB, on 3 node(s)",
		"job a-1 gets at most 15009 of its 150000 Mb/s: what its 2 node(s) carry when every job uses its allotment",
		"job b-2 gets at most 991 of its 10600 Mb/s",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "job c-3 gets") {
		t.Errorf("a job whose node carries its allotment is said to get less:\n%s", out)
	}
}

// TestStatusWithinCapacity: allotments within the cluster are shown
// against it, unmarked, and every job carries its allotment; a dead node
// counts in no capacity and carries nothing.
func TestStatusWithinCapacity(t *testing.T) {
	st := oversubscribed()
	st.Jobs[0].AllocMbps, st.Jobs[1].AllocMbps = 6000, 2000
	st.Nodes[2].State = wire.NodeDead
	v := statusView(st)
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	if !strings.Contains(out, "dram: 9000 of 16000 Mb/s, 768MiB of 2GiB, on 2 node(s)") || strings.Contains(out, "OVERSUBSCRIBED") {
		t.Errorf("status of allotments within the live nodes:\n%s", out)
	}
	for _, j := range v.Jobs {
		want := j.AllocMbps
		if j.JobID == "c-3" {
			want = 0 // its node is dead
		}
		if math.Abs(j.CarryMbps-want) > 1e-6 {
			t.Errorf("job %s carries %.3f of %.0f Mb/s, want %.0f", j.JobID, j.CarryMbps, j.AllocMbps, want)
		}
	}
	if !strings.Contains(out, "job c-3 gets at most 0 of its 1000 Mb/s") || strings.Contains(out, "job a-1 gets") {
		t.Errorf("status with a dead node:\n%s", out)
	}
	if !strings.Contains(out, "job c-3 holds at most 0B of its 256MiB") || strings.Contains(out, "job a-1 holds") || strings.Contains(out, "job b-2 holds") {
		t.Errorf("status with a dead node, room:\n%s", out)
	}
}

// TestStatusSaysAJobShortOfRoom: a job allotted more bytes than its
// nodes hold (a 96 MiB job left on one 64 MiB node after a loss) is named,
// with what they hold. Before, status said nothing of it, and a new user
// read the cluster's allotment line ("200MiB of 128MiB ... on 2 node(s)")
// as the job's while its puts answered "tier full".
func TestStatusSaysAJobShortOfRoom(t *testing.T) {
	n1, n2 := "127.0.0.1:7001", "127.0.0.1:7002"
	tiers := []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 64 << 20, Mbps: 8000}}
	st := &wire.ClusterStatus{NodeCount: 2, JobCount: 2,
		Nodes: []wire.NodeStatus{{Addr: n1, State: wire.NodeActive, Tiers: tiers}, {Addr: n2, State: wire.NodeActive, Tiers: tiers}},
		Jobs: []wire.JobStatus{
			{Job: "big-1", Name: "big", Tier: uint8(wire.TierDRAM), AllocMbps: 100, AllocBytes: 96 << 20,
				Nodes: []wire.MapNode{{Addr: n1, Weight: 1, State: wire.NodeActive}}},
			{Job: "small-2", Name: "small", Tier: uint8(wire.TierDRAM), AllocMbps: 100, AllocBytes: 16 << 20,
				Nodes: []wire.MapNode{{Addr: n2, Weight: 1, State: wire.NodeActive}}}}}
	v := statusView(st)
	if v.Jobs[0].CarryBytes != 64<<20 || v.Jobs[1].CarryBytes != 16<<20 {
		t.Fatalf("carry bytes %d and %d, want 64 and 16 MiB", v.Jobs[0].CarryBytes, v.Jobs[1].CarryBytes)
	}
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	if !strings.Contains(out, "job big-1 holds at most 64MiB of its 96MiB: what its 1 node(s) hold") || strings.Contains(out, "job small-2 holds") {
		t.Errorf("status of a job short of room:\n%s", out)
	}
}

// TestStatusCarryNamesDeadNodes (a new user's trial): a job one of whose
// two nodes is dead gets at most what its live node carries, and status
// says "its 1 live node(s) (1 dead)". Before: "what its 2 node(s) carry".
func TestStatusCarryNamesDeadNodes(t *testing.T) {
	n1, n2 := "127.0.0.1:7001", "127.0.0.1:7002"
	tiers := []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 64 << 20, Mbps: 200}}
	st := &wire.ClusterStatus{NodeCount: 2, JobCount: 1,
		Nodes: []wire.NodeStatus{{Addr: n1, State: wire.NodeActive, Tiers: tiers}, {Addr: n2, State: wire.NodeDead, Tiers: tiers}},
		Jobs: []wire.JobStatus{{Job: "j-1", Name: "j", Tier: uint8(wire.TierDRAM), AllocMbps: 400,
			Nodes: []wire.MapNode{{Addr: n1, Weight: 0.5, State: wire.NodeActive}, {Addr: n2, Weight: 0.5, State: wire.NodeDead}}}}}
	out, _ := stdoutOf(t, func() int { printStatus(statusView(st)); return 0 })
	if !strings.Contains(out, "job j-1 gets at most 200 of its 400 Mb/s: what its 1 live node(s) (1 dead) carry") {
		t.Errorf("status of a job with a dead node:\n%s", out)
	}
}

// TestStatusCarryOnANodeOfTwoTiers: a node of a DRAM tier of 8000 Mb/s
// and an NVMe tier of 2000 Mb/s holds a DRAM job allotted 8000 Mb/s and
// an NVMe job allotted 2000 Mb/s. However the node's bandwidth is
// counted (the controller's: its fastest tier's 8000 Mb/s bounds every
// tier, shared 6400 and 1600; or each tier its own), the node carries at
// least 8000 Mb/s of the 10000 asked, and the NVMe job at least its
// share, 1600. The carry shared the NVMe tier's 2000 Mb/s among
// everything asked of the node, both tiers': 'job v-2 gets at most 400
// of its 2000 Mb/s', the node said to carry 6800 of its 8000.
func TestStatusCarryOnANodeOfTwoTiers(t *testing.T) {
	n1 := "127.0.0.1:7001"
	st := &wire.ClusterStatus{NodeCount: 1, JobCount: 2,
		Nodes: []wire.NodeStatus{{Addr: n1, State: wire.NodeActive, Tiers: []wire.TierStat{
			{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000},
			{Kind: uint8(wire.TierNVMe), CapacityBytes: 8 << 30, Mbps: 2000}}}},
		Jobs: []wire.JobStatus{
			{Job: "d-1", Name: "d", Tier: uint8(wire.TierDRAM), AllocMbps: 8000, AllocBytes: 256 << 20,
				Nodes: []wire.MapNode{{Addr: n1, Weight: 1, State: wire.NodeActive}}},
			{Job: "v-2", Name: "v", Tier: uint8(wire.TierNVMe), AllocMbps: 2000, AllocBytes: 1 << 30,
				Nodes: []wire.MapNode{{Addr: n1, Weight: 1, State: wire.NodeActive}}}}}
	v := statusView(st)
	carry := map[string]float64{}
	for _, j := range v.Jobs {
		carry[j.JobID] = j.CarryMbps
	}
	if total := carry["d-1"] + carry["v-2"]; total < 8000-1e-6 {
		t.Errorf("the node carries %.0f Mb/s of the 10000 asked (d-1 %.0f, v-2 %.0f), want at least its 8000",
			total, carry["d-1"], carry["v-2"])
	}
	if carry["v-2"] < 1600-1e-6 {
		t.Errorf("the NVMe job carries %.0f of its 2000 Mb/s, want at least its share of the node, 1600", carry["v-2"])
	}
}

// TestStatusOversubscribedAcrossTiers: one node with a DRAM and an NVMe
// tier, neither reporting a bandwidth (each counts as the 8000 Mb/s the
// controller gives a node that reports none, and the node serves 8000 in
// all: history.go's nodeMbps, the network bounding every tier), holds a
// DRAM job and an NVMe job allotted 8000 Mb/s each: 16000 allotted on a
// cluster of 8000, each job said to get at most 4000. Status must say
// the cluster is oversubscribed; each tier's line counted the node's
// whole bandwidth, 'dram: 8000 of 8000 Mb/s' and 'nvme: 8000 of 8000
// Mb/s', and no line said OVERSUBSCRIBED.
func TestStatusOversubscribedAcrossTiers(t *testing.T) {
	n1 := "127.0.0.1:7001"
	st := &wire.ClusterStatus{NodeCount: 1, JobCount: 2,
		Nodes: []wire.NodeStatus{{Addr: n1, State: wire.NodeActive, Tiers: []wire.TierStat{
			{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30}, {Kind: uint8(wire.TierNVMe), CapacityBytes: 8 << 30}}}},
		Jobs: []wire.JobStatus{
			{Job: "d-1", Name: "d", Tier: uint8(wire.TierDRAM), AllocMbps: 8000, AllocBytes: 256 << 20,
				Nodes: []wire.MapNode{{Addr: n1, Weight: 1, State: wire.NodeActive}}},
			{Job: "v-2", Name: "v", Tier: uint8(wire.TierNVMe), AllocMbps: 8000, AllocBytes: 1 << 30,
				Nodes: []wire.MapNode{{Addr: n1, Weight: 1, State: wire.NodeActive}}}}}
	v := statusView(st)
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	over := v.Network.OversubscribedMbps == 8000 && v.Network.Oversubscribed
	for _, a := range v.Allotments {
		over = over || a.OversubscribedMbps > 0
	}
	if !over || !strings.Contains(out, "OVERSUBSCRIBED") {
		t.Errorf("16000 Mb/s allotted on one node of 8000: --json oversubscribed_mbps not above 0 (%+v, network %+v); the text says nothing:\n%s",
			v.Allotments, v.Network, out)
	}
}

// TestOverNoteJustPastTheCapacity (new-user trial): an allotment just past
// the capacity prints its factor with two decimals; before, 16,600 of
// 16,000 Mb/s read "OVERSUBSCRIBED 1.0x".
func TestOverNoteJustPastTheCapacity(t *testing.T) {
	for _, c := range []struct {
		alloc, capacity float64
		want            string
	}{
		{16600, 16000, ": OVERSUBSCRIBED 1.04x"},
		{161600, 24000, ": OVERSUBSCRIBED 6.7x"},
		{1, 0, ": OVERSUBSCRIBED (no capacity)"},
	} {
		if got := overNote(true, c.alloc, c.capacity); got != c.want {
			t.Errorf("%v of %v: %q, want %q", c.alloc, c.capacity, got, c.want)
		}
	}
	if got := overNote(false, 2, 1); got != "" {
		t.Errorf("not over: %q", got)
	}
}

// TestStatusShowsTenants: over TLS each job's row starts with its tenant
// (- for one registered without, as in-process), and --json carries it; a
// cluster without tenants keeps the columns it had. Before, nothing told
// which tenant a job was, whose profiles size it (a new user's trial).
func TestStatusShowsTenants(t *testing.T) {
	st := oversubscribed()
	st.Jobs[0].Tenant, st.Jobs[1].Tenant = "alice", "bob"
	v := statusView(st)
	if v.Jobs[0].Tenant != "alice" || v.Jobs[2].Tenant != "" {
		t.Fatalf("status --json tenants %q, %q; want alice and none", v.Jobs[0].Tenant, v.Jobs[2].Tenant)
	}
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"TENANT JOB TIER EPOCH", "alice a-1 dram", "bob b-2 dram", "- c-3 dram"} {
		if !strings.Contains(flat, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, _ = stdoutOf(t, func() int { printStatus(statusView(oversubscribed())); return 0 })
	if strings.Contains(out, "TENANT") {
		t.Errorf("status without tenants shows a TENANT column:\n%s", out)
	}
}

// TestStatusTierLineCountsTheTiersOwnMbps: on a node whose DRAM tier
// reports 1000 Mb/s and NVMe tier 2000 (pocket node --dram-mbps 1000
// --nvme-mbps 2000), a DRAM job allotted 1500 Mb/s is past the DRAM
// tier: the tier's line counts the tier's 1000 Mb/s, as job register's
// warning does and the controller's placement, and the job is said to get
// at most 1000. Before, the line counted the node's fastest tier, "dram:
// 1500 of 2000 Mb/s", unmarked, beside a warning of 1000 Mb/s for the
// same tier (a new user's trial: three figures for one tier).
func TestStatusTierLineCountsTheTiersOwnMbps(t *testing.T) {
	n1 := "127.0.0.1:7001"
	st := &wire.ClusterStatus{NodeCount: 1, JobCount: 1,
		Nodes: []wire.NodeStatus{{Addr: n1, State: wire.NodeActive, Tiers: []wire.TierStat{
			{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 1000},
			{Kind: uint8(wire.TierNVMe), CapacityBytes: 8 << 30, Mbps: 2000}}}},
		Jobs: []wire.JobStatus{{Job: "d-1", Name: "d", Tier: uint8(wire.TierDRAM), AllocMbps: 1500,
			Nodes: []wire.MapNode{{Addr: n1, Weight: 1, State: wire.NodeActive}}}}}
	v := statusView(st)
	if len(v.Allotments) != 1 || v.Allotments[0].CapacityMbps != 1000 || v.Allotments[0].OversubscribedMbps != 500 {
		t.Errorf("allotments %+v, want the DRAM tier's 1000 Mb/s, 500 over", v.Allotments)
	}
	if math.Abs(v.Jobs[0].CarryMbps-1000) > 1e-6 {
		t.Errorf("the DRAM job carries %.0f of its 1500 Mb/s, want the tier's 1000", v.Jobs[0].CarryMbps)
	}
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	for _, want := range []string{"dram: 1500 of 1000 Mb/s: OVERSUBSCRIBED 1.5x", "job d-1 gets at most 1000 of its 1500 Mb/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
