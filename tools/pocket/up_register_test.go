package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestUpCountsADrainedNodeRegistered: one of up's two nodes registers and
// is drained at once, before the other registers; it leaves, its process
// exits. It registered, so up's start goes on with the other. Before, up
// counted only nodes active at one look: it never saw two, then saw one
// process fewer and stopped the whole cluster, "1 of the 2 nodes started
// exited before registering" (a hostile trial drained a node in up's
// first second). A node that exits without registering still fails the
// start, and a node of an earlier run active unheard holds it.
func TestUpCountsADrainedNodeRegistered(t *testing.T) {
	const a, b, old = "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	both, onlyB := map[string]bool{a: true, b: true}, map[string]bool{b: true}
	since := time.Minute
	active := func(addr string) wire.NodeStatus { return wire.NodeStatus{Addr: addr, State: wire.NodeActive} }
	draining := wire.NodeStatus{Addr: a, State: wire.NodeDraining}
	look := func(r *registration, running map[string]bool, nodes ...wire.NodeStatus) (bool, error) {
		return r.observe(running, nodes, since)
	}

	r := registration{want: 2, registered: map[string]bool{}}
	for i, step := range []struct {
		running map[string]bool
		nodes   []wire.NodeStatus
	}{
		{both, []wire.NodeStatus{active(a)}},  // a registered
		{both, []wire.NodeStatus{draining}},   // a drained at once, b not yet registered
		{onlyB, nil},                          // a retired and exited
		{onlyB, []wire.NodeStatus{active(b)}}, // b registered
	} {
		done, err := look(&r, step.running, step.nodes...)
		if err != nil {
			t.Fatalf("look %d: %v; a drained node registered and left", i+1, err)
		}
		if done != (i == 3) {
			t.Fatalf("look %d: done %v", i+1, done)
		}
	}

	r = registration{want: 2, registered: map[string]bool{}}
	if _, err := look(&r, onlyB, active(b)); err == nil || !strings.Contains(err.Error(), "1 of the 2 nodes started exited before registering") {
		t.Fatalf("a node that exited unregistered: %v", err)
	}

	r = registration{want: 2, registered: map[string]bool{}}
	restored := wire.NodeStatus{Addr: old, State: wire.NodeActive, Restored: true}
	if done, err := look(&r, both, active(a), active(b), restored); done || err != nil || r.unheard != 1 {
		t.Fatalf("with a restored node unheard: done %v, %v, unheard %d", done, err, r.unheard)
	}
	if done, err := look(&r, both, active(a), active(b)); !done || err != nil {
		t.Fatalf("once it is gone: done %v, %v", done, err)
	}
}
