package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

func TestPriceFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(file, []byte(`{"dram_gib_hour": 0.02, "nvme_gib_hour": 0.001}`), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := newFlagSet("test")
	var pf priceFlags
	pf.bind(fs, "test")
	if err := fs.Parse([]string{"--prices", file, "--price-nvme-gib-hour", "0.002", "--price-dram-gib-hour", "0"}); err != nil {
		t.Fatal(err)
	}
	p, err := pf.prices()
	want := controller.ExactPrices(0, 0.002, controller.DefaultPrices().GbpsHour)
	if err != nil || p != want {
		t.Fatalf("prices = %+v, %v; want %+v (flags over the file, 0 kept, default)", p, err, want)
	}
	bad := priceFlags{dram: -1}
	if _, err := bad.prices(); !errors.Is(err, controller.ErrBadPrice) || !strings.Contains(err.Error(), "--price-dram-gib-hour") {
		t.Fatalf("negative flag: %v", err)
	}
	missing := priceFlags{file: filepath.Join(t.TempDir(), "none.json")}
	if _, err := missing.prices(); err == nil || !strings.Contains(err.Error(), "--prices") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestStatusCost: each job's cost is its allotment at the table.
func TestStatusCost(t *testing.T) {
	p := controller.Prices{DRAMGiBHour: 0.01, NVMeGiBHour: 0.001, GbpsHour: 0.1}
	st := &wire.ClusterStatus{JobCount: 2, Jobs: []wire.JobStatus{
		{Job: "a-1", Tier: uint8(wire.TierDRAM), AllocMbps: 2000, AllocBytes: 10 << 30},
		{Job: "b-2", Tier: uint8(wire.TierNVMe), AllocMbps: 16000},
	}}
	v := statusViewAt(st, p)
	if got := v.Jobs[0].CostPerHour; math.Abs(got-(10*0.01+2*0.1)) > 1e-12 {
		t.Errorf("DRAM job: %v $/h; want 0.3", got)
	}
	if got := v.Jobs[1].CostPerHour; math.Abs(got-16*0.1) > 1e-12 {
		t.Errorf("NVMe job without capacity: %v $/h; want 1.6", got)
	}
}

// TestStatusCostCountsUseBeyondAllotment: a job whose use passes its
// allotment (its map grown for load beyond it, or values stored with no
// size allotted) costs what it uses. Before, status priced the allotment
// alone: the grown job below read 0.21 $/h, the unsized one 0.1.
func TestStatusCostCountsUseBeyondAllotment(t *testing.T) {
	p := controller.Prices{DRAMGiBHour: 0.01, NVMeGiBHour: 0.001, GbpsHour: 0.1}
	st := &wire.ClusterStatus{JobCount: 3, Jobs: []wire.JobStatus{
		{Job: "grown-1", Tier: uint8(wire.TierDRAM), AllocMbps: 2000, UsedMbps: 5000, AllocBytes: 1 << 30, UsedBytes: 512 << 20},
		{Job: "unsized-2", Tier: uint8(wire.TierDRAM), AllocMbps: 1000, UsedMbps: 400, UsedBytes: 10 << 30},
		{Job: "idle-3", Tier: uint8(wire.TierNVMe), AllocMbps: 1000, AllocBytes: 4 << 30},
	}}
	v := statusViewAt(st, p)
	for i, want := range []float64{5*0.1 + 1*0.01, 1*0.1 + 10*0.01, 1*0.1 + 4*0.001} {
		if got := v.Jobs[i].CostPerHour; math.Abs(got-want) > 1e-12 {
			t.Errorf("%s: %v $/h; want %v (the larger of allotment and use, each)", v.Jobs[i].JobID, got, want)
		}
	}
}

// TestStatusCostCapsUseAtTheNodesRating: a job's traffic beyond what its
// map's nodes are rated for (loopback allows it) is priced at their
// rating, as its profile counts it; a node reporting no rating counts the
// placement default. Before, a trial's job reading 4,595 Mb/s on 4 nodes
// rated 200 was priced at 4,595.
func TestStatusCostCapsUseAtTheNodesRating(t *testing.T) {
	p := controller.Prices{DRAMGiBHour: 0.01, GbpsHour: 0.1}
	rated := func(addr string, mbps float64) wire.NodeStatus {
		return wire.NodeStatus{Addr: addr, State: wire.NodeActive, Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 8 << 30, Mbps: mbps}}}
	}
	on := func(addrs ...string) []wire.MapNode {
		var ns []wire.MapNode
		for _, a := range addrs {
			ns = append(ns, wire.MapNode{Addr: a, Weight: 1})
		}
		return ns
	}
	st := &wire.ClusterStatus{NodeCount: 3, Nodes: []wire.NodeStatus{rated("a", 200), rated("b", 200), rated("c", 0)}, JobCount: 2, Jobs: []wire.JobStatus{
		{Job: "loud-1", Tier: uint8(wire.TierDRAM), AllocMbps: 100, UsedMbps: 4595, Nodes: on("a", "b")},
		{Job: "unrated-2", Tier: uint8(wire.TierDRAM), AllocMbps: 100, UsedMbps: 1e6, Nodes: on("c")},
	}}
	v := statusViewAt(st, p)
	for i, want := range []float64{0.4 * 0.1, controller.DefaultPolicy().NodeMbps / 1000 * 0.1} {
		if got := v.Jobs[i].CostPerHour; math.Abs(got-want) > 1e-12 {
			t.Errorf("%s: %v $/h; want %v (use priced up to its nodes' rating)", v.Jobs[i].JobID, got, want)
		}
	}
}

// TestCheckHintsTierRule: the CLI picks the tier with controller.TierFor
// over the status's spare figures, and names the controller's refusal of
// a job that fits no tier.
func TestCheckHintsTierRule(t *testing.T) {
	nvme := wire.TierStat{Kind: uint8(wire.TierNVMe), CapacityBytes: 100 << 30, Mbps: 2000}
	dram := wire.TierStat{Kind: uint8(wire.TierDRAM), CapacityBytes: 10 << 30, Mbps: 8000, UsedBytes: 2 << 30}
	st := &wire.ClusterStatus{NodeCount: 1, Nodes: []wire.NodeStatus{node(wire.NodeActive, dram, nvme)}}
	p := controller.DefaultPrices()
	for _, c := range []struct {
		h    wire.JobHints
		want wire.Tier
	}{
		{wire.JobHints{PeakMbps: 1000, CapacityBytes: 5 << 30}, wire.TierNVMe}, // fits both: NVMe is cheaper
		{wire.JobHints{PeakMbps: 6000, CapacityBytes: 5 << 30}, wire.TierDRAM}, // NVMe's 2000 Mb/s is too slow
		{wire.JobHints{PeakMbps: 6000, CapacityBytes: 9 << 30}, wire.TierNVMe}, // DRAM has 8 GiB spare
	} {
		f, err := clusterTierFor(st, hintsNeed(c.h), p)
		if err != nil || f.tier != c.want || f.refused != nil {
			t.Errorf("%+v: tier %v (%v, refused %v); want %v", c.h, f.tier, err, f.refused, c.want)
		}
	}
	f, err := clusterTierFor(st, hintsNeed(wire.JobHints{CapacityBytes: 200 << 30}), p)
	if err != nil || !errors.Is(f.refused, wire.ErrNoSpace) {
		t.Fatalf("200 GiB: %+v, %v; want a no-space refusal", f, err)
	}
	// The job is refused: the controller's refusal says why, and no
	// warning that puts beyond the tier fail comes before it.
	if ex := hintExcesses(wire.JobHints{CapacityBytes: 200 << 30}, f); len(ex) != 0 {
		t.Fatalf("excesses %q; want none (the controller refuses the job)", ex)
	}
	// 95 GiB: the NVMe tier holds 100 GiB, with 2 GiB used on DRAM and
	// nothing on NVMe it fits; with 10 GiB used it does not.
	st.Nodes[0].Tiers[1].UsedBytes = 10 << 30
	h := wire.JobHints{CapacityBytes: 95 << 30}
	f, err = clusterTierFor(st, hintsNeed(h), p)
	if err != nil || !errors.Is(f.refused, wire.ErrNoSpace) {
		t.Fatalf("95 GiB beside 10 GiB used: %+v, %v; want a no-space refusal", f, err)
	}
	if ex := hintExcesses(h, f); len(ex) != 0 || !strings.Contains(wire.ErrorOf(f.refused).Msg, "(90GiB) spare") {
		t.Fatalf("excesses %q, refusal %v; want none, and the refusal naming the largest tier's spare", ex, f.refused)
	}
}

// TestReadProfile: job profile reads a stopped controller's state, and
// says what to do when there is none, no such name, or the controller
// still runs; a bare name finds the one tenant's profile of it, and asks
// whose when several tenants have one.
func TestReadProfile(t *testing.T) {
	dir := t.TempDir()
	if _, err := readProfile(dir, "sort"); err == nil || !strings.Contains(err.Error(), "no controller state") {
		t.Fatalf("empty dir: %v", err)
	}
	st, err := state.OpenBolt(filepath.Join(dir, stateSubdir))
	if err != nil {
		t.Fatal(err)
	}
	p := state.Profile{Name: "sort", Updated: time.UnixMilli(1_700_000_000_000).UTC(), Runs: []state.Run{
		{Job: "sort-2", PeakMbps: 3000, PeakBytes: 5e9}, {Job: "sort-1", PeakMbps: 1500, PeakBytes: 2e9}}}
	tenants := []state.Profile{{Name: "alice/etl", Runs: []state.Run{{Job: "etl-1"}}}, {Name: "bob/etl", Runs: []state.Run{{Job: "etl-2"}}},
		{Name: "carol/video", Runs: []state.Run{{Job: "video-1"}}}}
	if err := st.Apply(&state.Batch{PutProfiles: append(tenants, p)}); err != nil {
		t.Fatal(err)
	}
	if _, err := readProfile(dir, "sort"); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("state held by a running controller: %v", err)
	}
	st.Close()
	got, err := readProfile(dir, "sort")
	if err != nil || len(got.Runs) != 2 || got.Runs[0].Job != "sort-2" {
		t.Fatalf("readProfile = %+v, %v", got, err)
	}
	if l := controller.EstimateProfile(got); !within(l.Mbps, 1.1*(3000+750)/1.5) {
		t.Fatalf("next size %+v", l)
	}
	if _, err := readProfile(dir, "nothing"); err == nil || !strings.Contains(err.Error(), "4 name(s)") {
		t.Fatalf("unknown name: %v", err)
	}
	if got, err := readProfile(dir, "video"); err != nil || got.Name != "carol/video" {
		t.Fatalf("a name one tenant has a profile of: %+v, %v; want carol/video", got, err)
	}
	if _, err := readProfile(dir, "etl"); err == nil || !strings.Contains(err.Error(), "give one of alice/etl, bob/etl") {
		t.Fatalf("a name two tenants have profiles of: %v; want both named", err)
	}
	if got, err := readProfile(dir, "bob/etl"); err != nil || got.Runs[0].Job != "etl-2" {
		t.Fatalf("bob/etl: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "a/b/x", "x/../y", "alice/"} {
		if _, err := readProfile(dir, bad); !errors.Is(err, wire.ErrBadKey) {
			t.Errorf("readProfile(%q): %v; want the controller's bad key", bad, err)
		}
	}
}

func within(got, want float64) bool { return math.Abs(got-want) <= 1e-9*want }
