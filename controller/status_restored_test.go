package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestStatusMarksRestoredNodesUnheard: after a restart, a node read from
// the state that has not been heard from yet is listed as Restored with
// LastSeen 0; its first heartbeat clears the mark. Before, such a node
// showed last_seen_ms 0 like one heard from this instant.
func TestStatusMarksRestoredNodesUnheard(t *testing.T) {
	r := newRestartable(t, Config{}, false)
	mustRegister(t, r.ctl, dramNode("127.0.0.1:7001", 1<<30, 1000))
	if n := r.ctl.Status().Nodes[0]; n.Restored {
		t.Fatalf("a registered node listed as restored: %+v", n)
	}
	c := r.restart()
	time.Sleep(20 * time.Millisecond)
	if n := c.Status().Nodes[0]; !n.Restored || n.LastSeen != 0 {
		t.Fatalf("restored node before its first heartbeat: restored %v, last seen %v; want restored, 0", n.Restored, n.LastSeen)
	}
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if n := c.Status().Nodes[0]; n.Restored || n.LastSeen < 10*time.Millisecond {
		t.Fatalf("restored node after a heartbeat: restored %v, last seen %v; want not restored, the time since the heartbeat", n.Restored, n.LastSeen)
	}
}

// TestStatusSaysWhetherItAutoscales: the status reply carries the
// autoscaler's largest node count, 0 without an autoscaler.
func TestStatusSaysWhetherItAutoscales(t *testing.T) {
	c := newTest(t, Config{})
	if got := c.Status().AutoscaleMaxNodes; got != 0 {
		t.Fatalf("without an autoscaler: AutoscaleMaxNodes %d, want 0", got)
	}
	if _, err := c.StartAutoscaler(AutoscaleConfig{Orchestrator: &fakeOrch{c: c}, MaxNodes: 5, Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if got := c.Status().AutoscaleMaxNodes; got != 5 {
		t.Fatalf("with an autoscaler of at most 5 nodes: AutoscaleMaxNodes %d, want 5", got)
	}
}
