package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestMapFetchWhileTheStoreFails: while the store cannot be written (a
// full disk) a job's map whose record is saved is still handed out, though
// other changes (the node registry here) wait to be written; a map whose
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
	if m, err := c.GetMap(m0.Job, m0.Token); err != nil || m.Epoch != m0.Epoch {
		t.Fatalf("map fetch while the store fails, the job's record saved: %+v %v", m, err)
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
