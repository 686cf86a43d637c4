package dataplane

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// One owner's jobs together hold lanePerJob requests on the scan lane,
// as one job could: with the lane held, 16 listings of job t-1 wait, and
// those of t-2, of the same owner, are answered busy naming the owner,
// while another owner's job still gets in. On the old code (shares per
// job) t-2's listings waited too: an owner with two jobs held twice the
// room, and two turns.
func TestLaneSharePerOwner(t *testing.T) {
	n, entered, release, _ := laneNode(t)
	n.ApplyAck(syncAck(100,
		wire.JobEpoch{Job: "t-1", Gen: 90, Owner: "tenant-t"},
		wire.JobEpoch{Job: "t-2", Gen: 91, Owner: "tenant-t"},
		wire.JobEpoch{Job: "u-1", Gen: 92, Owner: "tenant-u"},
		wire.JobEpoch{Job: "slow", Gen: 93, Owner: "tenant-s"}))
	replies := make(chan error, 64)
	send := lister(t, n, replies)
	send("slow", 1)
	<-entered
	for k := 0; k < lanePerJob/lanePerConn; k++ {
		send("t-1", lanePerConn)
	}
	send("t-2", lanePerConn)
	for i := 0; i < lanePerConn; i++ {
		select {
		case err := <-replies:
			if !errors.Is(err, wire.ErrBusy) || !strings.Contains(err.Error(), "owner") {
				t.Fatalf("a listing of the owner's second job past the owner's %d waiting: %v, want busy naming the owner", lanePerJob, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of the owner's second job's %d listings answered busy while the lane was held; the rest waited", i, lanePerConn)
		}
	}
	send("u-1", 1)
	release()
	for ok := 0; ok < 1+lanePerJob+1; ok++ {
		select {
		case err := <-replies:
			if err != nil {
				t.Fatalf("listing %d after the lane moved: %v", ok, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d listings answered after the lane moved", ok, 2+lanePerJob)
		}
	}
}

// A job's requests waiting on the lane under its job key (its owner not
// known yet) move to its owner's queue when the owner becomes known
// (rekey): they count once, in the owner's bound, and every one still
// runs. Without the move the owner's jobs held 16 more.
func TestLaneRekeyMergesIntoOwner(t *testing.T) {
	l := &scanLane{owners: map[string]*laneJob{}, wake: make(chan struct{}, 1)}
	ran := 0
	work := func(bool) { ran++ }
	for i := 0; i < lanePerJob/2; i++ {
		for _, key := range []string{"j a", "o T"} {
			if err := l.submit(key, work); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.rekey("j a", "o T")
	if err := l.submit("o T", work); !errors.Is(err, errLaneJob) {
		t.Fatalf("the owner's request past %d waiting, its job's moved in: %v, want %v", lanePerJob, err, errLaneJob)
	}
	if len(l.owners) != 1 || len(l.ring) != 1 || l.n != lanePerJob {
		t.Fatalf("after the move: %d queues, %d in turn, %d waiting; want 1, 1, %d", len(l.owners), len(l.ring), l.n, lanePerJob)
	}
	for ran < lanePerJob {
		f, ok := l.next()
		if !ok {
			t.Fatal("lane closed")
		}
		f(true)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n != 0 || len(l.ring) != 0 {
		t.Fatalf("%d waiting, %d in turn once all ran", l.n, len(l.ring))
	}
}
