package controller

import (
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestLostWeightsFollowMapChanges: a job's lost nodes keep their weights
// on the scale of its map's weights through the map changes after the
// loss, so a lost node keeps its keys in placement over the map and its
// lost nodes (their values answer "lost", never "not found"). Found by a
// hostile trial: only the loss itself rescaled them; after a shrink of
// {b .5, x .5} to {b 1} the lost node kept .5, and 67 of its 279 keys
// read "not found".
func TestLostWeightsFollowMapChanges(t *testing.T) {
	c := deadTest(t, 0)
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	r := newElasticRig(t, c, a, b, x)
	m0, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000})
	if err != nil || len(m0.Nodes) != 2 {
		t.Fatalf("register: %+v %v", m0, err)
	}
	beatAll := func(moves ...wire.MoveReport) {
		for _, n := range []string{a, b, x} {
			r.beat(n, moves)
		}
	}
	// Grow onto x, and end the change: three nodes of a third each.
	if err := c.GrowJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	beatAll()
	beatAll(wire.MoveReport{Job: m0.Job, Epoch: r.mapOf(m0).Epoch})
	beatAll()
	if m := r.mapOf(m0); len(m.Nodes) != 3 || stateIn(m, x) != wire.NodeActive {
		t.Fatalf("map after the grow: %+v", m)
	}
	// a dies and is lost: {b .5, x .5}, lost {a .5}.
	m1 := r.lose(m0, a, b, x)
	before := owners(mapPlacement(m1, true), 3000)
	// Shrink x, and end the change: {b 1}; a must keep its keys.
	if err := c.ShrinkJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	r.beat(b, nil)
	r.beat(x, nil)
	m2 := r.mapOf(m0)
	r.beat(b, []wire.MoveReport{{Job: m0.Job, Epoch: m2.Epoch}})
	r.beat(x, []wire.MoveReport{{Job: m0.Job, Epoch: m2.Epoch}})
	r.beat(b, nil)
	r.beat(x, nil)
	m3 := r.mapOf(m0)
	if len(m3.Nodes) != 1 || m3.Nodes[0].Addr != b || len(m3.Lost) != 1 {
		t.Fatalf("map after x left: %+v", m3)
	}
	after := owners(mapPlacement(m3, true), 3000)
	moved, kept := 0, 0
	for i := range before {
		if before[i] != a {
			continue
		}
		if after[i] != a {
			moved++
		} else {
			kept++
		}
	}
	if moved != 0 || kept == 0 {
		t.Fatalf("of the lost node's %d keys, %d left it when x left the map (lost %+v beside %+v)",
			moved+kept, moved, m3.Lost, m3.Nodes)
	}
	if w := m3.Lost[0].Weight; w < 0.99 || w > 1.01 {
		t.Fatalf("lost weight %v beside a map of one node of weight 1; want 1 (it was a's .5 beside b's .5)", w)
	}
}
