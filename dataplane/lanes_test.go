package dataplane

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestSlowOwnerLeavesTheQuickLane (hostile re-check, 2026-12-07): an
// owner one of whose lane requests ran longer than laneSlowRun has its
// next ones run on the slow lane, so another owner's listing is answered
// while such a request runs. On one lane, a tenant's first-page listings
// over 3 million keys (1 to 1.5 s each) held another tenant's listing of
// 10 keys 1.0-1.5 s p50; here the held listing would hold it forever.
func TestSlowOwnerLeavesTheQuickLane(t *testing.T) {
	big, small, entered, out := heldListingsNode(t)
	list := func(job string) {
		if _, err := big.Send(wire.OpList, 0, &wire.Request{Job: []byte(job)}, nil); err != nil || big.Flush() != nil {
			t.Fatal(err)
		}
	}
	// The first listing runs on the quick lane, and longer than
	// laneSlowRun.
	list("big")
	<-entered
	time.Sleep(2 * laneSlowRun)
	out <- struct{}{}
	if r, err := big.Recv(); err != nil || r.Err() != nil {
		t.Fatal(err, r.Err())
	}
	// The next is held on the slow lane; another owner's is answered.
	list("big")
	<-entered
	within(t, 10*time.Second, "another owner's listing while a slow owner's ran", func() error {
		r, err := exchange(small, wire.OpList, 0, &wire.Request{Job: []byte("small")}, nil)
		if err != nil {
			return err
		}
		return r.Err()
	})
	out <- struct{}{}
	if r, err := big.Recv(); err != nil || r.Err() != nil {
		t.Fatal(err, r.Err())
	}
}

// TestSlowMarksAreBounded: the lanes remember at most laneSlowOwners slow
// owners, the expired going first; a mark ends after laneSlowFor.
func TestSlowMarksAreBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	s := &lanes{quick: newScanLane(), slow: newScanLane(), now: func() time.Time { return now }, slowUntil: map[string]time.Time{}}
	for i := range laneSlowOwners + 10 {
		s.markSlow(string(rune(i)), now)
	}
	if len(s.slowUntil) != laneSlowOwners {
		t.Fatalf("%d owners marked slow, want at most %d", len(s.slowUntil), laneSlowOwners)
	}
	if s.pick(string(rune(laneSlowOwners+9))) != s.slow {
		t.Fatal("the owner marked last is not on the slow lane")
	}
	now = now.Add(laneSlowFor)
	if s.pick(string(rune(laneSlowOwners+9))) != s.quick {
		t.Fatalf("an owner marked %v ago is still on the slow lane", laneSlowFor)
	}
}

// TestQueuedRequestsFollowTheirOwnerToTheSlowLane (hostile re-check,
// 2026-12-08): requests an owner queued on the quick lane before its
// first long one ended move to the slow lane when it ends. Before, they
// stayed: a tenant sending 16 first pages at once, each time its mark
// had lapsed, held the quick lane about 7 s a burst.
func TestQueuedRequestsFollowTheirOwnerToTheSlowLane(t *testing.T) {
	big, small, entered, out := heldListingsNode(t)
	for range 3 { // one runs, two wait on the quick lane
		if _, err := big.Send(wire.OpList, 0, &wire.Request{Job: []byte("big")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := big.Flush(); err != nil {
		t.Fatal(err)
	}
	<-entered
	time.Sleep(2 * laneSlowRun)
	out <- struct{}{} // the first ends, long: the owner is slow
	<-entered         // the second runs, on the slow lane
	within(t, 10*time.Second, "another owner's listing while the slow owner's queued ones ran", func() error {
		r, err := exchange(small, wire.OpList, 0, &wire.Request{Job: []byte("small")}, nil)
		if err != nil {
			return err
		}
		return r.Err()
	})
	out <- struct{}{}
	<-entered
	out <- struct{}{}
	for range 3 {
		if r, err := big.Recv(); err != nil || r.Err() != nil {
			t.Fatal(err, r.Err())
		}
	}
}

// heldListingsNode runs a node of one loop whose listings of job "big"
// each wait, once begun (a value on entered), for a value on out; it
// returns a connection of "big" and one of "small".
func heldListingsNode(t *testing.T) (big, small *client.Conn, entered <-chan struct{}, out chan<- struct{}) {
	t.Helper()
	f := NewFaulty(newDRAMTier(t, 64<<20))
	in, release := make(chan struct{}, 4), make(chan struct{}, 4)
	f.SetHook(func(op FaultOp, job, _ []byte) error {
		if op == FaultList && string(job) == "big" {
			in <- struct{}{}
			<-release
		}
		return nil
	})
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: f, Net: netio.Config{Loops: 1}}, f)
	t.Cleanup(func() { close(release) })
	return dial(t, n, "big"), dial(t, n, "small"), in, release
}
