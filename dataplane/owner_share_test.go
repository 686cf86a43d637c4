package dataplane

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
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

// unfinishedCount is how many owners' unfinished shares n keeps.
func unfinishedCount(n *Node) int {
	n.unfinished.mu.Lock()
	defer n.unfinished.mu.Unlock()
	return len(n.unfinished.m)
}

// One owner's jobs together hold the bound on unfinished puts one job
// could (a quarter of a 64 MiB DRAM tier, past half full): job t-1's two
// announced 12 MiB puts hold 24 MiB, and a 12 MiB put of t-2, of the same
// owner, is refused busy, while another owner's job puts as much. A put
// held under its job key before the table named its owner is given back
// there when it ends, leaving no share behind. On the old code (per job)
// t-2's put was taken, its job's only unfinished one: 36 MiB held.
func TestUnfinishedBoundPerOwner(t *testing.T) {
	d := newDRAMTier(t, 64<<20)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Guard: NewTokenGuard(jtSecret),
		Net: netio.Config{Loops: 1, MinSinkRate: -1}}, d)
	jobs := []wire.JobEpoch{{Job: "t-1", Gen: 90, Owner: "tenant-t"}, {Job: "t-2", Gen: 91, Owner: "tenant-t"},
		{Job: "u-1", Gen: 92, Owner: "tenant-u"}, {Job: "p-1", Gen: 93}}
	n.ApplyAck(syncAck(100, jobs...))
	late := announcePut(t, n, "p-1", "late", jobTok("p-1", 93), 4<<20) // owner not named yet
	for i := 0; i < 2; i++ {
		announcePut(t, n, "t-1", "big", jobTok("t-1", 90), 12<<20)
	}
	for deadline := time.Now().Add(5 * time.Second); d.Usage().Used < 28<<20; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the announced puts reserved %d bytes, want 28 MiB", d.Usage().Used)
		}
	}
	jobs[3].Owner = "tenant-t"
	n.ApplyAck(syncAck(101, jobs...))

	whole := make([]byte, 12<<20)
	r := roundTrip(t, dial(t, n, "t-2"), wire.OpPut, 0, &wire.Request{Job: []byte("t-2"), Key: []byte("k"), Token: jobTok("t-2", 91)}, whole)
	if !errors.Is(r.Err(), wire.ErrBusy) || !strings.Contains(r.Err().Error(), "still arriving") {
		t.Fatalf("a 12 MiB put of the owner's second job beside its first job's 24 MiB unfinished: %v, want busy", r.Err())
	}
	r = roundTrip(t, dial(t, n, "u-1"), wire.OpPut, 0, &wire.Request{Job: []byte("u-1"), Key: []byte("k"), Token: jobTok("u-1", 92)}, whole)
	if r.Err() != nil {
		t.Fatalf("another owner's 12 MiB put: %v", r.Err())
	}
	if got := n.unfinished.held("o tenant-t", 0); got != 24<<20 {
		t.Fatalf("the owner holds %d unfinished bytes, want its first job's 24 MiB", got)
	}
	late.Close()
	for deadline := time.Now().Add(5 * time.Second); n.unfinished.held("j p-1", 0) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still held under the job key once its put was dropped", n.unfinished.held("j p-1", 0))
		}
	}
	if got, shares := n.unfinished.held("o tenant-t", 0), unfinishedCount(n); got != 24<<20 || shares != 1 {
		t.Fatalf("after the early put ended: the owner holds %d unfinished bytes in %d shares, want 24 MiB in 1", got, shares)
	}
}
