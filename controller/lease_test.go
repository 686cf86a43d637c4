package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Every ack gives the node its lease (wire.NodeAck.Lease): DeadAfter plus
// the dead-node grace, the least silence after which the controller takes
// it for lost; DeadAfter alone once it drains (a draining node that dies
// is retired as lost at once); none when the grace is negative (never
// lost). The node serves its jobs only within it (dataplane/lease.go).
func TestAcksCarryTheNodesLease(t *testing.T) {
	c := newTest(t, Config{DeadAfter: 3 * time.Second, DeadNodeGrace: 30 * time.Second})
	reg := dramNode("127.0.0.1:7001", 1<<30, 8000)
	ack, err := c.RegisterNode(reg)
	if err != nil || ack.Lease != 33*time.Second {
		t.Fatalf("registration ack's lease %v (%v), want 33s", ack.Lease, err)
	}
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 8000))
	beat := func(addr string) *wire.NodeAck {
		t.Helper()
		ack, err := c.Heartbeat(&wire.Heartbeat{Addr: addr})
		if err != nil || !ack.Known {
			t.Fatalf("heartbeat: %+v %v", ack, err)
		}
		return ack
	}
	if l := beat(reg.Addr).Lease; l != 33*time.Second {
		t.Fatalf("heartbeat ack's lease %v, want 33s", l)
	}
	if _, err := c.Drain(reg.Addr, time.Minute); err != nil {
		t.Fatal(err)
	}
	if a := beat(reg.Addr); a.State != wire.NodeDraining || a.Lease != 3*time.Second {
		t.Fatalf("draining node's ack: state %v, lease %v; want draining, 3s", a.State, a.Lease)
	}

	never := newTest(t, Config{DeadAfter: 3 * time.Second, DeadNodeGrace: -1})
	if ack, err := never.RegisterNode(reg); err != nil || ack.Lease != 0 {
		t.Fatalf("lease with a negative grace: %v (%v), want none", ack.Lease, err)
	}
}

// A node frozen as its drain began (it never read the ack with the
// draining lease, DeadAfter) serves within the lease an earlier ack gave
// it: the controller does not retire it as lost ("died while draining")
// before that lease has ended. Before, it did at once, and the node, on
// resuming, acknowledged the puts queued meanwhile (a hostile trial: 200
// of 200, then lost).
func TestFrozenDrainingNodeIsNotLostWithinItsLease(t *testing.T) {
	c := newTest(t, Config{DeadAfter: 3 * time.Second, DeadNodeGrace: 30 * time.Second, ForgetAfter: time.Hour})
	reg := dramNode("127.0.0.1:7001", 1<<30, 8000)
	mustRegister(t, c, reg) // lease 33 s from now
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 8000))
	if _, err := c.Drain(reg.Addr, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.sweep(time.Now().Add(4 * time.Second)) // silent past DeadAfter: dead
	c.mu.Lock()
	dead := c.nodes[reg.Addr].state == wire.NodeDead
	c.mu.Unlock()
	if !dead {
		t.Fatal("the silent node is not dead")
	}
	gone := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, retired := c.gone[reg.Addr]
		return retired
	}
	c.drainTick(time.Now().Add(10 * time.Second))
	if gone() {
		t.Fatal("the draining node was retired as lost within the lease an ack gave it")
	}
	c.drainTick(time.Now().Add(40 * time.Second))
	if !gone() {
		t.Fatal("the draining node was not retired once its lease had ended")
	}
}
