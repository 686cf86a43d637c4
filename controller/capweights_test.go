package controller

import (
	"errors"
	"math"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestCapWeightsCascades: capWeights holds every node within its spare
// bytes while the weights still sum to 1, also when the excess one node
// gives up pushes another over its own cap (a second round), and spreads
// a job its nodes cannot hold over their spare bytes.
func TestCapWeightsCascades(t *testing.T) {
	const gib = 1 << 30
	chosen := []candidate{{addr: "a", spareBytes: 1 * gib}, {addr: "b", spareBytes: 3 * gib}, {addr: "c", spareBytes: 100 * gib}}
	// Equal weights for 12 GiB: a (cap 1/12) gives 3/12 - 1/12 to b and c;
	// b (cap 3/12) is then over and gives its excess to c.
	out := []wire.MapNode{{Addr: "a", Weight: 1.0 / 3}, {Addr: "b", Weight: 1.0 / 3}, {Addr: "c", Weight: 1.0 / 3}}
	capWeights(out, chosen, 12*gib)
	var sum float64
	for i, mn := range out {
		sum += mn.Weight
		if share := mn.Weight * 12 * gib; share > float64(chosen[i].spareBytes)*(1+1e-12) {
			t.Errorf("%s: weight %.4f, %.0f bytes of 12 GiB; its spare is %d", mn.Addr, mn.Weight, share, chosen[i].spareBytes)
		}
	}
	if math.Abs(sum-1) > 1e-12 || math.Abs(out[2].Weight-8.0/12) > 1e-12 {
		t.Errorf("weights %+v (sum %v); want 1/12, 3/12, 8/12", out, sum)
	}
	// 208 GiB on 104 GiB of spare: every node gets its share of the spare.
	out = []wire.MapNode{{Addr: "a", Weight: 0.8}, {Addr: "b", Weight: 0.1}, {Addr: "c", Weight: 0.1}}
	capWeights(out, chosen, 208*gib)
	if math.Abs(out[0].Weight-1.0/104) > 1e-12 || math.Abs(out[2].Weight-100.0/104) > 1e-12 {
		t.Errorf("a job over the spare: %+v; want the shares of the spare bytes", out)
	}
}

// TestJobPastTheBandWithinEachNode (new user's trial): on a cluster at
// its --max-nodes, a capacity hint the nodes hold only past the band's
// high is placed so that no node is allotted more bytes than it has. The
// nodes (1 GiB each) have 419 and 819 MiB spare under the 80 % band, 624
// and 1,024 MiB in all, for a job of 1,640 MiB. Before, its weights were
// the nodes' shares of their spare under the band: 1,085 MiB went to the
// 1,024 MiB node, whose puts failed "no space" while the other had room.
func TestJobPastTheBandWithinEachNode(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{MaxNodes: 2})
	const mib = 1 << 20
	if _, err := r.c.RegisterJob("a", wire.JobHints{CapacityBytes: 400 * mib}); err != nil {
		t.Fatal(err)
	}
	m, err := r.c.RegisterJob("b", wire.JobHints{CapacityBytes: 1640 * mib})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 2 {
		t.Fatalf("job b on %d node(s); want both", len(m.Nodes))
	}
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	for addr, l := range r.c.loads {
		if got := l.bytes[kindDRAM]; got > 1<<30+2 {
			t.Errorf("node %s allotted %d MiB of its 1,024 MiB (job b's map %+v)", addr, got/mib, m.Nodes)
		}
	}
}

// TestLambdasHintBounded (hostile trial): a lambdas hint whose bandwidth
// at the policy's Mb/s a lambda passes the bound a peak Mb/s hint is held
// to is refused as malformed; one within it registers. Before,
// 4,294,967,295 lambdas were allotted 2.6e12 Mb/s and status showed the
// tier 322,122,547x oversubscribed.
func TestLambdasHintBounded(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	if _, err := c.RegisterJob("huge", wire.JobHints{Lambdas: math.MaxUint32}); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("4,294,967,295 lambdas: %v; want malformed", err)
	}
	if _, err := c.RegisterJob("huge", wire.JobHints{Lambdas: math.MaxUint32, PeakMbps: 100}); err != nil {
		t.Errorf("4,294,967,295 lambdas beside a peak Mb/s hint (which wins): %v", err)
	}
	if _, err := c.RegisterJob("fine", wire.JobHints{Lambdas: 10}); err != nil {
		t.Errorf("10 lambdas: %v", err)
	}
}
