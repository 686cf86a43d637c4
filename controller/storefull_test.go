package controller

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestMapFetchWhileTheStoreFails: while the store cannot be written (a
// full disk) a job's map that is saved is still handed out, though other
// changes (the node registry, the job's profile) wait to be written; a map whose
// own change is not saved is not (a restart would hand out the one
// before), until the store works again. Before, every map fetch answered
// "state not saved" while anything waited (a hostile trial: every map of
// 370 jobs, on a full tmpfs).
func TestMapFetchWhileTheStoreFails(t *testing.T) {
	st := &failingStore{Store: state.NewMemory()}
	c, err := New(Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002"} {
		mustRegister(t, c, dramNode(a, 1<<30, 8000))
	}
	m0, err := c.RegisterJob("sort", wire.JobHints{Lambdas: 20})
	if err != nil {
		t.Fatal(err)
	}
	st.fail.Store(true)
	// A node registers: the registry's change waits to be written.
	if _, err := c.RegisterNode(dramNode("127.0.0.1:7003", 1<<30, 8000)); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("a node's registration while the store fails: %v; want state not saved", err)
	}
	// The job's record changes without its map (its traffic profile, which
	// the controller records every 10 s while the job runs: a review).
	c.mu.Lock()
	c.dirtyJobLocked(m0.Job)
	c.mu.Unlock()
	if m, err := c.GetMap(m0.Job, m0.Token); err != nil || m.Epoch != m0.Epoch {
		t.Fatalf("map fetch while the store fails, the job's map saved: %+v %v", m, err)
	}
	// A change of the job's own map (a node of it dies) is not handed out
	// before it is saved.
	_ = c.SetNodeState(m0.Nodes[0].Addr, wire.NodeDead)
	if m, err := c.GetMap(m0.Job, m0.Token); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("map fetch with the job's change not saved: %+v %v; want state not saved", m, err)
	}
	st.fail.Store(false)
	if m, err := c.GetMap(m0.Job, m0.Token); err != nil || m.Epoch <= m0.Epoch {
		t.Fatalf("map fetch once the store works: %+v %v; want a newer epoch", m, err)
	}
}

// heardAll has every registered node that is not dead heartbeat as an
// agent does after a change, with the tiers it has: once to take its job
// table, once more to report the table's revision, which confirms the
// change's epoch (a map that takes keys from a node is handed out once
// the node has: ownerBehindLocked).
func heardAll(t *testing.T, c *Controller) {
	t.Helper()
	c.mu.Lock()
	var hbs []*wire.Heartbeat
	for addr, n := range c.nodes {
		if n.state != wire.NodeDead {
			hbs = append(hbs, &wire.Heartbeat{Addr: addr, Tiers: slices.Clone(n.tiers)})
		}
	}
	c.mu.Unlock()
	for _, hb := range hbs {
		for range 2 {
			ack, err := c.Heartbeat(hb)
			if err != nil {
				t.Fatal(err)
			}
			hb.Since = ack.Rev
		}
	}
}
