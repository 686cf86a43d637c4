package dataplane

import (
	"errors"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// orphanedNode returns a node whose table held "old-1" (gen 90, with a
// value stored) and "idle-1" (gen 91, never used here), then synced with
// a controller run (revision 500) that lists neither.
func orphanedNode(t *testing.T) *Node {
	t.Helper()
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "old-1", Gen: 90}, wire.JobEpoch{Job: "idle-1", Gen: 91}))
	if err := jobOp(t, n, wire.OpPut, "old-1", "k", jobTok("old-1", 90), 0, 0); err != nil {
		t.Fatal(err)
	}
	n.ApplyAck(syncAck(500, wire.JobEpoch{Job: "live-1", Gen: 450}))
	return n
}

// TestHeldOrphanDroppedOnOrder: an orphan is refused and kept, reported
// held (an unused unlisted job is not), and dropped only when the
// controller names it; a live job named by mistake is kept.
func TestHeldOrphanDroppedOnOrder(t *testing.T) {
	n := orphanedNode(t)
	if err := jobOp(t, n, wire.OpGet, "old-1", "k", jobTok("old-1", 90), 0, 0); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("orphan's get: %v; want refused", err)
	}
	held := n.HeldJobs(wire.MaxHeldJobs)
	if len(held) != 1 || held[0].Job != "old-1" || held[0].Bytes != n.jobUsage([]byte("old-1")) || held[0].Bytes == 0 {
		t.Fatalf("held %v; want only old-1 with its bytes", held)
	}
	if err := jobOp(t, n, wire.OpPut, "live-1", "k", jobTok("live-1", 450), 0, 0); err != nil {
		t.Fatal(err)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 501})
	n.DropHeld([]wire.HeldJob{{Job: "old-1"}, {Job: "live-1"}})
	n.bg.wait() // drops run off the heartbeat's goroutine (bgdrop.go)
	if u := n.jobUsage([]byte("old-1")); u != 0 {
		t.Fatalf("ordered drop left %d bytes", u)
	}
	if h := n.HeldJobs(wire.MaxHeldJobs); len(h) != 0 {
		t.Fatalf("held after the drop: %v", h)
	}
	if u := n.jobUsage([]byte("live-1")); u == 0 {
		t.Fatal("a live job's data was dropped on a drop order")
	}
	if err := jobOp(t, n, wire.OpGet, "old-1", "k", jobTok("old-1", 90), 0, 0); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("dropped orphan's get: %v; want refused", err)
	}
}

// TestHeldOrphanRevived: a controller that lists an orphan again with the
// same gen (restarted on its own state after a run that had lost it)
// makes it live with its data; under another gen (another job with the
// id) the orphan's data is dropped first.
func TestHeldOrphanRevived(t *testing.T) {
	n := orphanedNode(t)
	n.ApplyAck(syncAck(600, wire.JobEpoch{Job: "old-1", Gen: 90, Epoch: 1}))
	if err := jobOp(t, n, wire.OpGet, "old-1", "k", jobTok("old-1", 90), 1, 0); err != nil {
		t.Fatalf("revived orphan's get: %v", err)
	}
	if h := n.HeldJobs(wire.MaxHeldJobs); len(h) != 0 {
		t.Fatalf("held after the revival: %v", h)
	}

	n = orphanedNode(t)
	n.ApplyAck(syncAck(600, wire.JobEpoch{Job: "old-1", Gen: 550, Epoch: 1}))
	n.bg.wait()
	if u := n.jobUsage([]byte("old-1")); u != 0 {
		t.Fatalf("another job under the orphan's id sees %d bytes of the orphan's", u)
	}
	if err := jobOp(t, n, wire.OpGet, "old-1", "k", jobTok("old-1", 550), 1, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("new job's get of the orphan's key: %v; want not found", err)
	}
}
