package controller

import (
	"context"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// dropped returns the jobs an ack orders dropped.
func dropped(ack *wire.NodeAck) map[string]bool {
	out := map[string]bool{}
	for _, h := range ack.Drop {
		out[h.Job] = true
	}
	return out
}

// TestOrphansDroppedAfterGrace (issue 12 item 2): a held job the
// controller never knew is dropped once the node has reported it for the
// grace, not before, and counted; a job it revoked is dropped at once; a
// live job is never dropped however long it is reported.
func TestOrphansDroppedAfterGrace(t *testing.T) {
	const grace = 300 * time.Millisecond
	c := newTest(t, Config{OrphanGrace: grace, DeadAfter: time.Hour})
	addr := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(addr, 1<<30, 8000))
	live, err := c.RegisterJob("live", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := c.RegisterJob("gone", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeregisterJob(context.Background(), gone.Job, gone.Token); err != nil {
		t.Fatal(err)
	}
	held := []wire.HeldJob{{Job: "stranger-7", Bytes: 650 << 20}, {Job: live.Job, Bytes: 10}, {Job: gone.Job, Bytes: 20}}
	beat := func() map[string]bool {
		t.Helper()
		ack, err := c.Heartbeat(&wire.Heartbeat{Addr: addr, Held: held})
		if err != nil {
			t.Fatal(err)
		}
		return dropped(ack)
	}
	start := time.Now()
	d := beat()
	if !d[gone.Job] || d["stranger-7"] || d[live.Job] {
		t.Fatalf("first report: drops %v; want only the revoked %s", d, gone.Job)
	}
	if got := c.OrphansHeld(); got != 2 {
		t.Fatalf("OrphansHeld = %d; want 2 (the stranger and the revoked job)", got)
	}
	for time.Since(start) < grace {
		if d := beat(); d["stranger-7"] && time.Since(start) < grace {
			t.Fatal("an unknown job was dropped before the grace")
		}
		time.Sleep(grace / 10)
	}
	time.Sleep(grace / 10)
	d = beat()
	if !d["stranger-7"] || d[live.Job] {
		t.Fatalf("after the grace: drops %v; want the stranger, never the live job", d)
	}
	if n, b := c.OrphansDropped(), c.OrphanBytesDropped(); n != 2 || b != 650<<20+20 {
		t.Fatalf("counted %d drops of %d bytes; want 2 of %d", n, b, 650<<20+20)
	}
	beat() // an order repeated (the node has not dropped yet) is not counted again
	if n := c.OrphansDropped(); n != 2 {
		t.Fatalf("a repeated order was counted: %d", n)
	}
}

// TestOrphanGraceOff: with a negative grace nothing unknown is dropped.
func TestOrphanGraceOff(t *testing.T) {
	c := newTest(t, Config{OrphanGrace: -1, DeadAfter: time.Hour})
	addr := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(addr, 1<<30, 8000))
	for range 3 {
		ack, err := c.Heartbeat(&wire.Heartbeat{Addr: addr, Held: []wire.HeldJob{{Job: "stranger-7", Bytes: 1}}})
		if err != nil || len(ack.Drop) != 0 {
			t.Fatalf("grace off: %+v %v", ack, err)
		}
		time.Sleep(time.Millisecond)
	}
}
