package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// getMapWithin calls GetMap in the background and reports the map if it
// answers within d.
func getMapWithin(c *Controller, m *wire.PlacementMap, d time.Duration) (*wire.PlacementMap, error, bool) {
	type res struct {
		m   *wire.PlacementMap
		err error
	}
	ch := make(chan res, 1)
	go func() { got, err := c.GetMap(m.Job, m.Token); ch <- res{got, err} }()
	select {
	case r := <-ch:
		return r.m, r.err, true
	case <-time.After(d):
		return nil, nil, false
	}
}

// TestRestartHoldsAGrowForASilentOwner: a grow is held back for a silent
// old owner (b), and still after the controller restarts: a map fetch
// answers the map before, or that the map is held back, until b's lease
// from the earlier run (about DeadAfter+DeadNodeGrace, 30.5 s) ends.
// Before (a review): the restored change counted no node as behind (its
// revision was 0) and the restored node as heard (its lastSeen is the
// restore grace's end), so the grown map went out confirmWait after the
// restart.
func TestRestartHoldsAGrowForASilentOwner(t *testing.T) {
	r := newRestartable(t, Config{HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 500 * time.Millisecond,
		DeadNodeGrace: 30 * time.Second}, false)
	c := r.ctl
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	rig, m0 := holdRig(t, c, a, b, x)
	// b goes silent from here (cut off from the controller, not from clients).
	if err := c.GrowJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ { // past confirmWait (500 ms)
		rig.beat(a, nil)
		rig.beat(x, nil)
		time.Sleep(100 * time.Millisecond)
	}
	if m := rig.mapOf(m0); m.Epoch != m0.Epoch {
		t.Fatalf("before the restart the grown map is out with b silent: %d", m.Epoch)
	}

	c = r.restart()
	syncNode(t, c, a)
	syncNode(t, c, x)
	start := time.Now()
	m, err, answered := getMapWithin(c, m0, 3*time.Second)
	if answered && err == nil && m.Epoch > m0.Epoch {
		t.Errorf("restarted controller handed out epoch %d (nodes %d, b state %v) %v after the restart; b's lease from the earlier run runs ~30 s",
			m.Epoch, len(m.Nodes), stateIn(m, b), time.Since(start).Round(time.Millisecond))
	}
	if answered && err != nil && !strings.Contains(err.Error(), "held back") {
		t.Errorf("map fetch after the restart: %v; want the map held back", err)
	}
}

// TestDrainHoldsItsMapForASilentNode: a cluster drain of a node gone
// silent (not dead yet) moves its keys away; its map is not handed out
// while the node may serve the older one within its lease. Before (a
// review), it was handed out confirmWait later.
func TestDrainHoldsItsMapForASilentNode(t *testing.T) {
	c := newTest(t, holdConfig)
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	rig, m0 := holdRig(t, c, a, b, x)
	// b goes silent now; an operator drains it.
	if _, err := c.Drain(b, time.Minute); err != nil {
		t.Fatal(err)
	}
	rig.beatFor(8, a, x)
	m := rig.mapOf(m0)
	c.mu.Lock()
	lease := time.Until(c.nodes[b].leaseEnd)
	c.mu.Unlock()
	if m.Epoch > m0.Epoch {
		t.Errorf("drained map (epoch %d, b %v) handed out while silent b has not confirmed it and its lease runs %v more",
			m.Epoch, stateIn(m, b), lease.Round(time.Millisecond))
	}
}

// TestRestartHoldsForANodeRetiredAtItsDeadline: a silent node drained past
// its deadline is retired as lost; the map without it waits for its lease,
// and still after the controller restarts. Before, the restore rebuilt the
// hold from the maps, which no longer name the node: the map went out at
// once (a review: 30.8 s before the lease ended).
func TestRestartHoldsForANodeRetiredAtItsDeadline(t *testing.T) {
	r := newRestartable(t, holdConfig, false)
	c := r.ctl
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	rig, m0 := holdRig(t, c, a, b, x)
	leaseEnd := drainPastDeadline(t, c, rig, b, a, x)
	c.mu.Lock()
	_, registered := c.nodes[b]
	c.mu.Unlock()
	if registered {
		t.Fatal("b not retired at its drain's deadline")
	}
	c = r.restart()
	syncNode(t, c, a)
	syncNode(t, c, x)
	m, err, answered := getMapWithin(c, m0, 3*time.Second)
	if answered && err == nil && m.Epoch > m0.Epoch && time.Now().Before(leaseEnd) {
		t.Errorf("restarted controller handed out epoch %d (lost %+v) %v before retired b's lease ends",
			m.Epoch, m.Lost, time.Until(leaseEnd).Round(time.Millisecond))
	}
	if answered && err != nil && !strings.Contains(err.Error(), "held back") {
		t.Errorf("map fetch after the restart: %v; want the map held back", err)
	}
}
