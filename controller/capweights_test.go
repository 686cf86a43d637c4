package controller

import (
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
