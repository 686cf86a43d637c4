package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestRestoreRefusesRecordOutOfRange: a controller started on a state
// holding a record out of range (a hostile trial's "alloc_bytes": -999,
// after which every status reply failed without naming the job; a job of
// tier 7; a node at port 99999) refuses to start, naming the record, the
// field and the value, and saying to move the state aside or fix the
// record, on any store (bbolt: its CorruptError; here also the in-memory
// one, restore's own check). Before, the record loaded.
func TestRestoreRefusesRecordOutOfRange(t *testing.T) {
	good := func() state.Job {
		return state.Job{ID: "j-1", Name: "j", Tier: 1, Epoch: 1, State: state.JobLive, Gen: 1, Created: time.Now().UTC(),
			AllocMbps: 10, AllocBytes: 1 << 20, Nodes: []state.MapWeight{{Addr: "127.0.0.1:7001", Weight: 1}}}
	}
	node := state.Node{Addr: "127.0.0.1:7001", State: uint8(wire.NodeActive),
		Tiers: []state.NodeTier{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000}}}
	for _, tc := range []struct {
		name  string
		batch func() *state.Batch
		wants []string
	}{
		{"alloc_bytes -999", func() *state.Batch {
			j := good()
			j.AllocBytes = -999
			return &state.Batch{PutJobs: []state.Job{j}, PutNodes: []state.Node{node}}
		}, []string{`job "j-1"`, "alloc_bytes", "-999"}},
		{"tier 7", func() *state.Batch {
			j := good()
			j.Tier = 7
			return &state.Batch{PutJobs: []state.Job{j}, PutNodes: []state.Node{node}}
		}, []string{`job "j-1"`, "tier", "7"}},
		{"ended job's final map", func() *state.Batch {
			j := good()
			j.State, j.Revoked = state.JobRevoked, time.Now().UTC()
			j.Nodes[0].Weight = -3
			return &state.Batch{PutJobs: []state.Job{j}, PutNodes: []state.Node{node}}
		}, []string{`job "j-1"`, "nodes[0].weight", "-3"}},
		{"node port 99999", func() *state.Batch {
			n := node
			n.Addr = "127.0.0.1:99999"
			return &state.Batch{PutNodes: []state.Node{n}}
		}, []string{`node "127.0.0.1:99999"`, "addr", "99999"}},
	} {
		for _, kind := range []string{"memory", "bolt"} {
			t.Run(tc.name+" "+kind, func(t *testing.T) {
				var st state.Store = state.NewMemory()
				dir := t.TempDir()
				if kind == "bolt" {
					db, err := state.OpenBolt(dir)
					if err != nil {
						t.Fatal(err)
					}
					st = db
				}
				if err := st.Apply(tc.batch()); err != nil {
					t.Fatal(err)
				}
				if kind == "bolt" {
					st.Close()
					db, err := state.OpenBolt(dir)
					if err != nil {
						t.Fatal(err)
					}
					st = db
				}
				defer st.Close()
				c, err := New(Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour})
				if err == nil {
					c.Close()
					t.Fatalf("started on a state with a record out of range")
				}
				for _, w := range append(tc.wants, "corrupted", "move", "aside", "fix") {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v, want it to say %q", err, w)
					}
				}
			})
		}
	}
}

// TestUnsavedChangeSaysApplied: a request whose write fails and whose
// change stands in memory (a deregistration, a drain, a node's
// registration) says so in its CodeUnavailable answer: applied in memory,
// not durable, a restart before the next save undoes it. A registration,
// whose change is taken back, says it was not applied. Before, all
// answered a bare "state not saved", which reads as nothing done: a
// hostile trial's deregistration so answered had ended the job.
func TestUnsavedChangeSaysApplied(t *testing.T) {
	st := &failingStore{Store: state.NewMemory()}
	c, err := New(Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour, ForgetAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 8000))
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	st.fail.Store(true)
	applied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, wire.ErrUnavailable) {
			t.Fatalf("%s while the store fails: %v, want unavailable", what, err)
		}
		for _, w := range []string{"state not saved", "took effect", "memory", "not durable", "restart"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s while the store fails: %v, want it to say %q", what, err, w)
			}
		}
	}
	_, err = c.DeregisterJob(t.Context(), m.Job, m.Token)
	applied("deregistration", err)
	_, err = c.DrainWith("127.0.0.1:7002", DrainOptions{Deadline: time.Minute})
	applied("drain", err)
	_, err = c.RegisterNode(dramNode("127.0.0.1:7003", 1<<30, 8000))
	applied("node registration", err)
	_, err = c.RegisterJob("k", wire.JobHints{})
	if !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "not applied") || strings.Contains(err.Error(), "took effect") {
		t.Errorf("registration while the store fails: %v, want unavailable, not applied", err)
	}
}

// TestRegisterNodeRefusesAnAddressTheStateWouldRefuse: a node registering
// with an address no dial can use is refused (CodeBadKey), so no record
// the controller writes fails state.Check at its next start. Before, a
// re-check registered 127.0.0.1:0, 127.0.0.1:99999 and node1:pocketdata,
// and the restart was refused ("fix that record").
func TestRegisterNodeRefusesAnAddressTheStateWouldRefuse(t *testing.T) {
	c := newTest(t, Config{})
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.1:99999", "node1:pocketdata-no-such-service"} {
		if _, err := c.RegisterNode(dramNode(addr, 1<<30, 8000)); !errors.Is(err, wire.ErrBadKey) {
			t.Errorf("register node %s: %v; want bad key", addr, err)
		}
	}
	if _, err := c.RegisterNode(dramNode("127.0.0.1:7001", 1<<30, 8000)); err != nil {
		t.Fatalf("register node 127.0.0.1:7001: %v", err)
	}
}
