package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestDrainOfTheLastNodeSaysWhatToDo: the drain of a job's only node,
// with no other node of its tier, is refused with the remedy (another
// node of the tier, or the job's deregistration) in plain words; before,
// 'node A is the only active dram node job J has not lost: its data has
// nowhere to go', which named no remedy. Nodes the job lost are named as
// not counting only when an active one was passed over for that.
func TestDrainOfTheLastNodeSaysWhatToDo(t *testing.T) {
	c := deadTest(t, time.Minute)
	a := dramNode("127.0.0.1:7001", 1<<30, 8000)
	mustRegister(t, c, a)
	m, err := c.RegisterJob("rk", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Drain(a.Addr, time.Minute)
	if !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("drain of the last node: %v; want unavailable", err)
	}
	msg := err.Error()
	for _, want := range []string{"cannot drain node " + a.Addr, "job " + m.Job, "no other active dram node can take it",
		"start another dram node", "pocket job deregister " + m.Job, "then drain again"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "lost") {
		t.Errorf("refusal %q speaks of lost nodes; the job lost none", msg)
	}

	// On another cluster, a job that lost its second node, dead still: no
	// active node was passed over, so the refusal speaks of no lost node.
	c = deadTest(t, time.Minute)
	mustRegister(t, c, a)
	b := dramNode("127.0.0.1:7002", 1<<30, 8000)
	mustRegister(t, c, b)
	m2, err := c.RegisterJob("rk2", wire.JobHints{})
	if err != nil || len(m2.Nodes) != 2 {
		t.Fatalf("%+v %v", m2, err)
	}
	if err := c.SetNodeState(b.Addr, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c)
	_, err = c.Drain(a.Addr, time.Minute)
	if err == nil || strings.Contains(err.Error(), "lost") {
		t.Fatalf("drain with the job's lost node dead: %v; want a refusal that speaks of no lost node", err)
	}

	// The lost node comes back: active, but passed over for rk2, which the
	// refusal says.
	c.heartbeat(&wire.Heartbeat{Addr: b.Addr}) // back, but lost to rk2
	_, err = c.Drain(a.Addr, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "nodes the job lost do not count") {
		t.Fatalf("drain with only a lost node to go to: %v; want a note that lost nodes do not count", err)
	}
}

// TestDrainGoesToALostNodeThatRestarted: a job that lost a node which has
// restarted since (empty) may drain its last node onto it. Before, every
// node a job had lost was passed over, and after a few restarts of pocket
// up no node could be drained beside empty ones (a new user's re-check:
// "no other active dram node can take it (nodes the job lost do not
// count...)").
func TestDrainGoesToALostNodeThatRestarted(t *testing.T) {
	c := deadTest(t, time.Minute)
	a := dramNode("127.0.0.1:7001", 1<<30, 8000)
	mustRegister(t, c, a)
	at, b := incNode(t, c, 31)
	m, err := c.RegisterJob("rk3", wire.JobHints{})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	restartNode(t, c, at, b, 32) // the job loses b; b is empty now
	if m2, _ := c.GetMap(m.Job, m.Token); len(m2.Nodes) != 1 || len(m2.Lost) != 1 || m2.Lost[0].Addr != b.Addr {
		t.Fatalf("map after b restarted: %+v; want a alone, b lost", m2)
	}
	if _, err := c.Drain(a.Addr, time.Minute); err != nil {
		t.Fatalf("drain of a with b restarted and empty: %v", err)
	}
	heardAll(t, c)
	m3, _ := c.GetMap(m.Job, m.Token)
	if _, in := mapState(m3, b.Addr); !in {
		t.Fatalf("map after the drain began: %+v; want b taking a's data", m3)
	}
}
