package controller

import (
	"math"
	"slices"
	"strings"

	"github.com/pocketstore/pocket/wire"
)

// Keys that stay while a map is held back
//
// A map that takes keys from a node is handed out only once that node has
// confirmed its epoch, or its lease has ended (publishableLocked). Until
// then the job's clients hold the map handed out before, and the nodes
// that have the new epoch refused every request of theirs as stale: a
// silent node cost the whole job its availability for up to its lease
// (20-33 s in a trial), not only the keys that move. Now each node active
// in both maps hears, with the new epoch, the map before's epoch and the
// nodes of both (wire.JobEpoch.KeepEpoch, Keep), and goes on taking that
// map's requests for the keys it owns under both (dataplane/jobtable.go).
//
// Such a key is not a moving one: every client, by either map, sends it to
// this node and to no other, so which map a request came by does not
// matter. Clients of the older map write nothing elsewhere that a client
// of the newer one would miss, and the reverse; a node that lags takes
// only its own keys under its own table (a key it owns under the older map
// and not the newer one is a moving key, held back as before).

// keepNodes returns the nodes a node at self decides its kept keys over
// (wire.JobEpoch.Keep): self first, then every other node of the maps
// before and now with a positive weight, in any state, sorted by address.
// Each map's weights are scaled so that self's are equal; each other node
// gets the larger of its two, so a (key, chunk) self wins over the result
// it wins under both maps and under every subset holding self (the live
// and prior sets clients place over): its score only grows from the
// result's to either map's, the others' only shrink. Nil when self is not
// active in both maps holding its whole share since the map before or
// earlier (joining, draining, dead, adopted and not yet filled:
// wire.SinceNotYet; restarted empty and taken back, lost at a later
// epoch: a review found a job's only node, restarted, answering "not
// found" for its lost values to clients of the map before, which read
// them as lost by the newer map), or the result would pass
// wire.MaxMapNodes: the node then takes no request of the map before.
func keepNodes(before, now *wire.PlacementMap, self string) []wire.MapNode {
	wb, okB := keptWeight(before.Nodes, self, before.Epoch)
	wn, okN := keptWeight(now.Nodes, self, before.Epoch)
	if !okB || !okN || slices.ContainsFunc(now.Lost, func(l wire.LostNode) bool { return l.Addr == self && l.Epoch > before.Epoch }) {
		return nil
	}
	scale := wn / wb
	weights := map[string]float64{}
	add := func(ns []wire.MapNode, scale float64) {
		for _, n := range ns {
			if w := n.Weight * scale; n.Addr != self && w > 0 && !math.IsInf(w, 0) {
				weights[n.Addr] = max(weights[n.Addr], w)
			}
		}
	}
	add(before.Nodes, scale)
	add(now.Nodes, 1)
	if len(weights)+1 > wire.MaxMapNodes {
		return nil
	}
	out := make([]wire.MapNode, 0, len(weights)+1)
	out = append(out, wire.MapNode{Addr: self, Weight: wn})
	for addr, w := range weights {
		out = append(out, wire.MapNode{Addr: addr, Weight: w})
	}
	slices.SortFunc(out[1:], func(a, b wire.MapNode) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// keptWeight is self's weight in ns, ok when self is there active with a
// positive, finite weight, holding its whole share since epoch or before.
func keptWeight(ns []wire.MapNode, self string, epoch uint64) (float64, bool) {
	i := slices.IndexFunc(ns, func(n wire.MapNode) bool { return n.Addr == self })
	if i < 0 {
		return 0, false
	}
	n := ns[i]
	ok := n.State == wire.NodeActive && n.Since <= epoch && n.Weight > 0 && !math.IsInf(n.Weight, 0)
	return n.Weight, ok
}
