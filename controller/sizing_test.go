package controller

import (
	"fmt"
	"math"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

const gb = 1e9

// pocketNodes returns n identical idle nodes of Pocket's model: 8000 Mb/s
// and the given capacity.
func pocketNodes(n int, capacity int64) []candidate {
	out := make([]candidate, n)
	for i := range out {
		out[i] = candidate{addr: fmt.Sprintf("10.0.0.%d:7000", i+1), spareMbps: 8000, spareBytes: capacity}
	}
	return out
}

// TestSizingPocketFormulas mirrors Pocket's sizing: nodes = lambdas x 600 /
// 8000, or Mbps / 8000, or GB / node GB, the larger of the bandwidth and
// capacity counts, rounded up, at least 1, at most the live nodes; 2 nodes
// without hints.
func TestSizingPocketFormulas(t *testing.T) {
	dram, flash := int64(60*gb), int64(111*gb)
	cases := []struct {
		name      string
		h         wire.JobHints
		capacity  int64
		live      int
		wantNodes int
		wantMbps  float64
	}{
		{"no hints", wire.JobHints{}, dram, 10, 2, 16000},
		{"no hints, one node", wire.JobHints{}, dram, 1, 1, 16000},
		{"10 lambdas", wire.JobHints{Lambdas: 10}, dram, 10, 1, 6000},
		{"40 lambdas", wire.JobHints{Lambdas: 40}, dram, 10, 3, 24000},
		{"100 lambdas", wire.JobHints{Lambdas: 100}, dram, 10, 8, 60000},
		{"1000 lambdas capped", wire.JobHints{Lambdas: 1000}, dram, 10, 10, 600000},
		{"peak wins over lambdas", wire.JobHints{Lambdas: 100, PeakMbps: 20000}, dram, 10, 3, 20000},
		{"capacity only, dram", wire.JobHints{CapacityBytes: 100 * gb, LatencySensitive: true}, dram, 10, 2, 0},
		{"capacity only, flash", wire.JobHints{CapacityBytes: 300 * gb}, flash, 10, 3, 0},
		{"capacity binds", wire.JobHints{Lambdas: 10, CapacityBytes: 200 * gb}, dram, 10, 4, 6000},
		{"bandwidth binds", wire.JobHints{Lambdas: 100, CapacityBytes: 10 * gb}, dram, 10, 8, 60000},
		{"tiny job", wire.JobHints{Lambdas: 1, CapacityBytes: 1}, dram, 10, 1, 600},
	}
	p := DefaultPolicy()
	for _, c := range cases {
		got := p.size(pocketNodes(c.live, c.capacity), c.h)
		if len(got.nodes) != c.wantNodes || got.mbps != c.wantMbps || got.bytes != c.h.CapacityBytes {
			t.Errorf("%s: %d nodes, %.0f Mb/s, %d B; want %d nodes, %.0f Mb/s, %d B", c.name,
				len(got.nodes), got.mbps, got.bytes, c.wantNodes, c.wantMbps, c.h.CapacityBytes)
		}
		checkWeights(t, c.name, got.nodes)
	}
}

func checkWeights(t *testing.T, name string, nodes []wire.MapNode) {
	t.Helper()
	var sum float64
	for _, n := range nodes {
		if !(n.Weight > 0) {
			t.Errorf("%s: node %s weight %v", name, n.Addr, n.Weight)
		}
		sum += n.Weight
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("%s: weights sum to %v", name, sum)
	}
}

// TestWeightsFromReports: weights follow what the nodes report as spare,
// on the dimension the job presses on.
func TestWeightsFromReports(t *testing.T) {
	p := DefaultPolicy()
	cands := []candidate{
		{addr: "a:1", spareMbps: 6000, spareBytes: 10 * gb},
		{addr: "b:1", spareMbps: 3000, spareBytes: 10 * gb},
		{addr: "c:1", spareMbps: 1000, spareBytes: 10 * gb},
	}
	// A bandwidth-only job needing all three: weights 0.6, 0.3, 0.1.
	got := p.size(append([]candidate(nil), cands...), wire.JobHints{PeakMbps: 10000})
	want := map[string]float64{"a:1": 0.6, "b:1": 0.3, "c:1": 0.1}
	for _, n := range got.nodes {
		if math.Abs(n.Weight-want[n.Addr]) > 0.01 {
			t.Errorf("bandwidth job: %s weight %.3f, want %.3f", n.Addr, n.Weight, want[n.Addr])
		}
	}
	// A capacity-only job over nodes equal in capacity: equal weights.
	got = p.size(append([]candidate(nil), cands...), wire.JobHints{CapacityBytes: 25 * gb})
	for _, n := range got.nodes {
		if math.Abs(n.Weight-1.0/3) > 0.01 {
			t.Errorf("capacity job: %s weight %.3f, want 1/3", n.Addr, n.Weight)
		}
	}
	// A node with no spare bandwidth still gets the floor weight, never
	// zero.
	full := []candidate{{addr: "a:1", spareMbps: 8000, spareBytes: gb}, {addr: "z:1", spareMbps: 0, spareBytes: gb}}
	got = p.size(full, wire.JobHints{PeakMbps: 16000})
	if len(got.nodes) != 2 {
		t.Fatalf("want both nodes, got %d", len(got.nodes))
	}
	checkWeights(t, "full node", got.nodes)
	for _, n := range got.nodes {
		if n.Addr == "z:1" && n.Weight > 0.06 {
			t.Errorf("full node weight %.3f, want the floor (0.05)", n.Weight)
		}
	}
}

// TestSizingLeavesOutANodeWithoutSpareBytes: a node with no spare byte
// is not chosen while another has one (withSpare), whatever the job's need:
// even a job of no capacity need stores values, and its puts there fail.
func TestSizingLeavesOutANodeWithoutSpareBytes(t *testing.T) {
	p := DefaultPolicy()
	cands := []candidate{{addr: "a:1", spareMbps: 8000, spareBytes: gb}, {addr: "z:1", spareMbps: 8000, spareBytes: 0}}
	got := p.size(cands, wire.JobHints{PeakMbps: 16000})
	if len(got.nodes) != 1 || got.nodes[0].Addr != "a:1" {
		t.Errorf("placed on %+v; want a:1 only (z:1 has no spare byte)", got.nodes)
	}
}

// TestSizingPrefersSpare: the nodes with the most spare on the binding
// dimension are chosen.
func TestSizingPrefersSpare(t *testing.T) {
	p := DefaultPolicy()
	cands := []candidate{
		{addr: "busy:1", spareMbps: 500, spareBytes: 100 * gb},
		{addr: "idle:1", spareMbps: 8000, spareBytes: 1 * gb},
		{addr: "mid:1", spareMbps: 4000, spareBytes: 50 * gb},
	}
	got := p.size(append([]candidate(nil), cands...), wire.JobHints{PeakMbps: 8000})
	if len(got.nodes) != 1 || got.nodes[0].Addr != "idle:1" {
		t.Errorf("throughput-bound job placed on %+v, want idle:1", got.nodes)
	}
	got = p.size(append([]candidate(nil), cands...), wire.JobHints{CapacityBytes: 90 * gb})
	if len(got.nodes) != 1 || got.nodes[0].Addr != "busy:1" {
		t.Errorf("capacity-bound job placed on %+v, want busy:1", got.nodes)
	}
}
