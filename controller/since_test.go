package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// lose marks addr dead past the grace, heartbeats from the survivors and
// returns the job's map, failing the test unless addr is its only lost
// node.
func (r *elasticRig) lose(m0 *wire.PlacementMap, addr string, survivors ...string) *wire.PlacementMap {
	r.t.Helper()
	if err := r.c.SetNodeState(addr, wire.NodeDead); err != nil {
		r.t.Fatal(err)
	}
	sweepPastGrace(r.c)
	for _, s := range survivors {
		r.beat(s, nil)
	}
	m := r.mapOf(m0)
	if len(m.Lost) != 1 || m.Lost[0].Addr != addr {
		r.t.Fatalf("map after %s was lost: %+v", addr, m)
	}
	return m
}

// sinceOf returns addr's Since in m.
func sinceOf(t *testing.T, m *wire.PlacementMap, addr string) uint64 {
	t.Helper()
	for _, n := range m.Nodes {
		if n.Addr == addr {
			return n.Since
		}
	}
	t.Fatalf("%s not in the map %+v", addr, m)
	return 0
}

// heldBefore places keys over the map's nodes that held their whole share
// before epoch (Since < epoch) and its lost nodes, as the SDKs place a
// lost node's keys (pocket/lost.go lostSets).
func heldBefore(m *wire.PlacementMap, epoch uint64) *placement.Set {
	var ns []placement.Node
	for _, n := range m.Nodes {
		if n.Since < epoch {
			ns = append(ns, placement.Node{ID: n.Addr, Weight: n.Weight})
		}
	}
	for _, l := range m.Lost {
		ns = append(ns, placement.Node{ID: l.Addr, Weight: l.Weight})
	}
	return placement.NewSet(ns)
}

// An old owner lost while a node joins the job's map: the joining node
// holds its share only from the change's end (MapNode.Since), after the
// loss's epoch, so placing over the nodes that held their share before the
// loss and the lost node finds the lost node for every key it held, none
// on the joining node. A hostile trial killed the old owner during a grow:
// 25,028 of 150,000 keys then read "not found" instead of lost, their
// owner over the map and its lost nodes being the joining node. The
// Since values outlive a controller restart.
func TestSinceMarksWhoHeldWhatTheLostNodeHeld(t *testing.T) {
	st := state.NewMemory()
	cfg := Config{Store: st, DeadAfter: time.Hour, ForgetAfter: time.Hour}
	c := newTest(t, cfg)
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	r := newElasticRig(t, c, a, b, x)
	m0, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000})
	if err != nil || len(m0.Nodes) != 2 || m0.Nodes[0].Addr == x || m0.Nodes[1].Addr == x {
		t.Fatalf("register: %+v %v", m0, err)
	}
	held := map[string]string{} // key -> its owner before the grow
	before := placement.NewSet(mapPlacement(m0, false))
	for i := 0; i < 3000; i++ {
		k := fmt.Sprintf("key-%d", i)
		held[k] = before.Node(before.Pick([]byte(k), 0)).ID
	}
	if err := c.GrowJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	r.beat(a, nil)
	r.beat(b, nil)
	r.beat(x, nil)
	if s := sinceOf(t, r.mapOf(m0), x); s != wire.SinceNotYet {
		t.Fatalf("joining node's Since %d, want SinceNotYet", s)
	}
	// a dies and is lost while x joins; then the change ends.
	m1 := r.lose(m0, a, b, x)
	lostAt := m1.Lost[0].Epoch
	r.beat(b, []wire.MoveReport{{Job: m0.Job, Epoch: m1.Epoch}})
	r.beat(x, []wire.MoveReport{{Job: m0.Job, Epoch: m1.Epoch}})
	r.beat(b, nil)
	m2 := r.mapOf(m0)
	if stateIn(m2, x) != wire.NodeActive {
		t.Fatalf("x has not joined: %+v", m2)
	}
	if s := sinceOf(t, m2, x); s <= lostAt || s == wire.SinceNotYet {
		t.Fatalf("x holds its share since epoch %d, want after the loss's %d", s, lostAt)
	}
	if s := sinceOf(t, m2, b); s >= lostAt {
		t.Fatalf("b holds its share since epoch %d, want before the loss's %d", s, lostAt)
	}
	c.flush()
	c.Close()
	c2 := newTest(t, cfg)
	m3, err := c2.GetMap(m0.Job, m0.Token)
	if err != nil {
		t.Fatal(err)
	}
	if sinceOf(t, m3, x) != sinceOf(t, m2, x) || sinceOf(t, m3, b) != sinceOf(t, m2, b) {
		t.Fatalf("Since after a restart: %+v, before %+v", m3.Nodes, m2.Nodes)
	}
	set := heldBefore(m3, lostAt)
	lostKeys := 0
	for k, owner := range held {
		if owner != a {
			continue
		}
		lostKeys++
		if got := set.Node(set.Pick([]byte(k), 0)).ID; got != a {
			t.Fatalf("%s was on the lost node %s; placed on %s", k, a, got)
		}
	}
	if lostKeys < 1000 {
		t.Fatalf("%d of 3000 keys on the lost node: the test proves nothing", lostKeys)
	}
}

// A node given to a job to take the share of its only node, which drains,
// holds that share from the drain's end, or from the draining node's loss
// when it dies first (its unmoved values are gone): Since is SinceNotYet
// until then, and the loss's epoch after. On the old code a node that
// took a lost draining node's share was never settled, and the lost check
// left it out for every later loss.
func TestSinceOfANodeTakingADrainingNodesShare(t *testing.T) {
	c := deadTest(t, time.Hour)
	a, b := dramNode("127.0.0.1:7001", 1<<30, 8000), dramNode("127.0.0.1:7002", 1<<30, 8000)
	mustRegister(t, c, a)
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("%+v %v", m, err)
	}
	mustRegister(t, c, b)
	if _, err := c.Drain(a.Addr, time.Minute); err != nil {
		t.Fatal(err)
	}
	heardAll(t, c)
	m1, _ := c.GetMap(m.Job, m.Token)
	if s := sinceOf(t, m1, b.Addr); s != wire.SinceNotYet {
		t.Fatalf("the node taking the draining node's share: Since %d, want SinceNotYet", s)
	}
	if err := c.SetNodeState(a.Addr, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	c.drainTick(time.Now())
	heardAll(t, c)
	m2, _ := c.GetMap(m.Job, m.Token)
	if len(m2.Lost) != 1 || m2.Lost[0].Addr != a.Addr {
		t.Fatalf("lost nodes %+v, want %s", m2.Lost, a.Addr)
	}
	if s := sinceOf(t, m2, b.Addr); s != m2.Lost[0].Epoch {
		t.Fatalf("Since %d once the draining node was lost at epoch %d, want that epoch", s, m2.Lost[0].Epoch)
	}
}
