package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestFailedRegistrationFreesItsAllotment: a registration whose write
// fails takes its job out of every index (withdrawJobLocked): its nodes'
// allotment is free again, no node's table lists it live, and the next
// job is placed as if it had never been.
func TestFailedRegistrationFreesItsAllotment(t *testing.T) {
	st := &failingStore{Store: state.NewMemory()}
	c, err := New(Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const a = "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	ack, err := c.Heartbeat(&wire.Heartbeat{Addr: a})
	if err != nil {
		t.Fatal(err)
	}
	st.fail.Store(true)
	if _, err := c.RegisterJob("big", wire.JobHints{CapacityBytes: 1 << 29, PeakMbps: 4000}); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("registration while the store fails: %v, want state not saved", err)
	}
	st.fail.Store(false)
	c.mu.Lock()
	load := c.loads[a]
	c.mu.Unlock()
	if load != nil {
		t.Errorf("node %s still carries an allotment of %.0f Mb/s and %v bytes after the failed registration", a, load.mbps, load.bytes)
	}
	ack, err = c.Heartbeat(&wire.Heartbeat{Addr: a, Since: ack.Rev})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ack.Jobs {
		if !e.Revoked {
			t.Errorf("the node's table lists %s live after its registration failed: %+v", e.Job, e)
		}
	}
	m, err := c.RegisterJob("big", wire.JobHints{CapacityBytes: 1 << 29, PeakMbps: 4000})
	if err != nil {
		t.Fatalf("the same job once the store works: %v", err)
	}
	if len(m.Nodes) != 1 || m.Nodes[0].Addr != a {
		t.Fatalf("map %+v, want %s", m.Nodes, a)
	}
}
