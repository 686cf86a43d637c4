package controller

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// setOf is the placement set over the nodes of ns that pass keep.
func setOf(ns []wire.MapNode, keep func(wire.MapNode) bool) []placement.Node {
	var out []placement.Node
	for _, n := range ns {
		if keep(n) {
			out = append(out, placement.Node{ID: n.Addr, Weight: n.Weight})
		}
	}
	return out
}

// TestKeepNodesWinOnlyKeysThatStay: a key the node wins over keepNodes is
// its own under both maps and under the live and prior sets of each
// (clients' placements: pocket/drain.go), for grows, shrinks and weight
// changes with random weights; with equal weights before and after a grow
// (only their scale changes) every key that stays is kept.
func TestKeepNodesWinOnlyKeysThatStay(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	live := func(n wire.MapNode) bool { return n.State != wire.NodeDraining }
	prior := func(n wire.MapNode) bool { return n.State != wire.NodeJoining && n.Since != wire.SinceNotYet }
	for round := range 60 {
		size := 2 + rng.IntN(5)
		before := make([]wire.MapNode, size)
		for i := range before {
			before[i] = wire.MapNode{Addr: fmt.Sprintf("n%d:1", i), Weight: 0.2 + rng.Float64(), State: wire.NodeActive}
		}
		now := append([]wire.MapNode(nil), before...)
		equal := round%3 == 0
		switch round % 3 {
		case 0: // a grow with equal weights, scaled from 1/size to 1/(size+1)
			for i := range now {
				before[i].Weight, now[i].Weight = 1/float64(size), 1/float64(size+1)
			}
			now = append(now, wire.MapNode{Addr: "joiner:1", Weight: 1 / float64(size+1), State: wire.NodeJoining})
		case 1: // a shrink: the last node drains out of the map
			now[size-1].State = wire.NodeDraining
		case 2: // weights change
			for i := range now {
				now[i].Weight *= 0.5 + rng.Float64()
			}
		}
		self := before[0].Addr
		keep := keepNodes(&wire.PlacementMap{Epoch: 4, Nodes: before}, &wire.PlacementMap{Epoch: 5, Nodes: now}, self)
		if keep == nil || keep[0].Addr != self {
			t.Fatalf("round %d: keep %v, want self first", round, keep)
		}
		kept := setOf(keep, func(wire.MapNode) bool { return true })
		sets := [][]placement.Node{setOf(before, live), setOf(before, prior), setOf(now, live), setOf(now, prior)}
		stay, won := 0, 0
		for k := range 2000 {
			key := []byte(fmt.Sprint("key-", k))
			ours := 0
			for _, s := range sets {
				if s[placement.Pick(s, key, 0)].ID == self {
					ours++
				}
			}
			if ours == len(sets) {
				stay++
			}
			if placement.Pick(kept, key, 0) != 0 {
				continue
			}
			won++
			if ours != len(sets) {
				t.Fatalf("round %d: key %s won over keep but self's under %d of %d placements", round, key, ours, len(sets))
			}
		}
		if won == 0 || equal && won != stay {
			t.Fatalf("round %d: %d keys won over keep, %d stay", round, won, stay)
		}
	}
}

// TestKeepNodesNoneForANodeThatMoves: a node joining, draining, dead, not
// yet holding its share, holding it only since after the map before (a
// node restarted empty and taken back), lost since, or absent in either
// map keeps nothing. Before the Since and Lost checks, a job's only node,
// restarted, took its clients' requests of the map before and answered
// "not found" for values lost with the restart, which the newer map
// names lost (a review's trial, TestRestartedOnlyNodeRefusesTheMapBefore
// in package pocket).
func TestKeepNodesNoneForANodeThatMoves(t *testing.T) {
	base := []wire.MapNode{{Addr: "a:1", Weight: 0.5, State: wire.NodeActive, Since: 2}, {Addr: "b:1", Weight: 0.5, State: wire.NodeActive}}
	at := func(epoch uint64, ns []wire.MapNode) *wire.PlacementMap {
		return &wire.PlacementMap{Epoch: epoch, Nodes: ns}
	}
	for _, c := range []struct {
		name string
		edit func(n *wire.MapNode)
	}{
		{"joining", func(n *wire.MapNode) { n.State = wire.NodeJoining }},
		{"draining", func(n *wire.MapNode) { n.State = wire.NodeDraining }},
		{"dead", func(n *wire.MapNode) { n.State = wire.NodeDead }},
		{"not yet its share", func(n *wire.MapNode) { n.Since = wire.SinceNotYet }},
		{"its share since after the map before", func(n *wire.MapNode) { n.Since = 4 }},
		{"no weight", func(n *wire.MapNode) { n.Weight = 0 }},
	} {
		edited := append([]wire.MapNode(nil), base...)
		c.edit(&edited[0])
		if k := keepNodes(at(3, base), at(4, edited), "a:1"); k != nil {
			t.Errorf("%s now: keep %v, want none", c.name, k)
		}
		if k := keepNodes(at(3, edited), at(4, base), "a:1"); k != nil {
			t.Errorf("%s before: keep %v, want none", c.name, k)
		}
	}
	lost := at(4, base)
	lost.Lost = []wire.LostNode{{Addr: "a:1", Weight: 0.5, Epoch: 4}}
	if k := keepNodes(at(3, base), lost, "a:1"); k != nil {
		t.Errorf("lost since the map before: keep %v, want none", k)
	}
	if k := keepNodes(at(3, base), at(4, base[1:]), "a:1"); k != nil {
		t.Errorf("out of the map now: keep %v, want none", k)
	}
	if k := keepNodes(at(3, base), at(4, base), "a:1"); len(k) != 2 || k[0].Addr != "a:1" {
		t.Errorf("unchanged map: keep %v, want a first of 2", k)
	}
}
