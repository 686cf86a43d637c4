package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestStalledControllerJudgesNodesFromItsReturn: the sweep loop's tick
// comes two hours late (the controller's process was stopped; the
// nodes' heartbeats wait in its sockets). Its first sweep marks no node
// dead for the silence, and a drain's deadline moves by the stall; a node
// still silent DeadAfter after the controller's return is marked dead.
// On the code before, the loop swept at once: the node, silent for two
// hours by the controller's clock, was marked dead, and the deadline
// stayed.
func TestStalledControllerJudgesNodesFromItsReturn(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, ForgetAfter: 24 * time.Hour})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 8000))
	if _, err := c.Drain("127.0.0.1:7002", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	deadline := c.nodes["127.0.0.1:7002"].drain.deadline
	c.mu.Unlock()
	state := func(addr string) wire.NodeState {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.nodes[addr].state
	}
	last, every := time.Now(), time.Second
	back := last.Add(2 * time.Hour)
	c.sweepTick(back, last, every)
	if s := state("127.0.0.1:7001"); s != wire.NodeActive {
		t.Fatalf("after the controller's own 2 h stall the node is %v; want active", s)
	}
	c.mu.Lock()
	moved := c.nodes["127.0.0.1:7002"].drain.deadline.Sub(deadline)
	c.mu.Unlock()
	if moved < 2*time.Hour-2*every {
		t.Fatalf("the drain's deadline moved %v; want the stall's 2 h", moved)
	}
	c.sweepTick(back.Add(time.Hour+2*every), back, time.Hour+every)
	if s := state("127.0.0.1:7001"); s != wire.NodeDead {
		t.Fatalf("a node silent past DeadAfter after the controller's return is %v; want dead", s)
	}
}
