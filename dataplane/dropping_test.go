package dataplane

import (
	"errors"
	"sync"
	"testing"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// faultyTokenNode is tokenNode over a Faulty DRAM tier.
func faultyTokenNode(t *testing.T) (*Node, *Faulty) {
	t.Helper()
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := NewFaulty(d)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: f, Guard: NewTokenGuard(jtSecret), Net: netio.Config{Loops: 2}}, d)
	return n, f
}

// holdDrops makes the first drop of job block until the returned release
// is called; entered is closed once that drop has begun.
func holdDrops(f *Faulty, job string) (entered <-chan struct{}, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.SetHook(func(op FaultOp, j, _ []byte) error {
		if op != FaultDrop || string(j) != job {
			return nil
		}
		first := false
		once.Do(func() { first = true })
		if first {
			close(in)
			<-out
		}
		return nil
	})
	var rel sync.Once
	return in, func() { rel.Do(func() { close(out) }) }
}

// revokeAsync applies the controller's revocation of job (gen 99) in the
// background, as the agent does; the returned channel closes when the
// node has dropped the job's data.
func revokeAsync(n *Node, job string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.ApplyAck(&wire.NodeAck{Known: true, Rev: 101, Jobs: []wire.JobEpoch{{Job: job, Gen: 99, Revoked: true}}})
		n.bg.awaitListed([]wire.JobEpoch{{Job: job}}) // the drop runs off ApplyAck (bgdrop.go)
	}()
	return done
}

// TestDroppingJobAnswersBusy: while a node drops a revoked job's data, the
// job's reads, listings and deletes answer busy (retry), not revoked, on a
// new connection and on one whose token the guard had cached, and its
// puts are refused; once the drop ends its persisted value reads and its
// temporary one is gone. Before, every request of the job answered
// revoked during the drop, which the SDKs take from a deregistered job's
// handle for "this node holds none of the job's values": a count by a
// retired handle came up short while 400,000 temporary values dropped.
func TestDroppingJobAnswersBusy(t *testing.T) {
	n, f := faultyTokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "r-1", Gen: 99}))
	tok := jobTok("r-1", 99)
	if err := jobOp(t, n, wire.OpPut, "r-1", "keep/a", tok, 0, wire.FlagPersist); err != nil {
		t.Fatal(err)
	}
	if err := jobOp(t, n, wire.OpPut, "r-1", "tmp", tok, 0, 0); err != nil {
		t.Fatal(err)
	}
	cached := dial(t, n, "r-1")
	if r := roundTrip(t, cached, wire.OpStat, 0, &wire.Request{Job: []byte("r-1"), Key: []byte("keep/a"), Token: tok}, nil); r.Err() != nil {
		t.Fatal(r.Err())
	}
	entered, release := holdDrops(f, "r-1")
	defer release()
	done := revokeAsync(n, "r-1")
	<-entered

	reads := []struct {
		op    wire.Op
		flags uint16
		key   string
	}{
		{wire.OpGet, 0, "keep/a"}, {wire.OpStat, 0, "keep/a"}, {wire.OpList, 0, ""},
		{wire.OpUsage, 0, ""}, {wire.OpDelete, 0, "keep/a"}, {wire.OpDelete, wire.FlagPrefix, "keep/"},
		{wire.OpGet, wire.FlagDeleteAfterRead, "keep/a"},
	}
	for _, rd := range reads {
		req := &wire.Request{Job: []byte("r-1"), Key: []byte(rd.key), Token: tok}
		if r := roundTrip(t, cached, rd.op, rd.flags, req, nil); !errors.Is(r.Err(), wire.ErrBusy) {
			err := r.Err()
			t.Errorf("%v (flags %#x) during the drop, cached token: %v, want busy", rd.op, rd.flags, err)
		}
		if r := roundTrip(t, dial(t, n, "r-1"), rd.op, rd.flags, req, nil); !errors.Is(r.Err(), wire.ErrBusy) {
			err := r.Err()
			t.Errorf("%v (flags %#x) during the drop, new connection: %v, want busy", rd.op, rd.flags, err)
		}
	}
	for _, flags := range []uint16{0, wire.FlagPersist} {
		if err := jobOp(t, n, wire.OpPut, "r-1", "more", tok, 0, flags); !errors.Is(err, wire.ErrRevoked) {
			t.Errorf("put (flags %#x) during the drop: %v, want revoked", flags, err)
		}
	}
	release()
	<-done
	if err := jobOp(t, n, wire.OpGet, "r-1", "keep/a", tok, 0, 0); err != nil {
		t.Fatalf("persisted value after the drop: %v", err)
	}
	if err := jobOp(t, n, wire.OpGet, "r-1", "tmp", tok, 0, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("temporary value after the drop: %v, want not found", err)
	}
}

// TestDroppingEnds: no drop leaves a job dropping. A job that kept
// nothing is revoked when its drop ends; one whose drop order arrives
// while the heartbeat's drop of it still runs is retired when the order's
// drop ends (its persisted value reads) and stays so when the first one
// ends; one whose tier drop failed still leaves the dropping state.
func TestDroppingEnds(t *testing.T) {
	n, f := faultyTokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "none-1", Gen: 99}, wire.JobEpoch{Job: "two-1", Gen: 99}, wire.JobEpoch{Job: "fail-1", Gen: 99}))
	for _, job := range []string{"none-1", "two-1", "fail-1"} {
		if err := jobOp(t, n, wire.OpPut, job, "tmp", jobTok(job, 99), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, job := range []string{"two-1", "fail-1"} {
		if err := jobOp(t, n, wire.OpPut, job, "kept", jobTok(job, 99), 0, wire.FlagPersist); err != nil {
			t.Fatal(err)
		}
	}

	entered, release := holdDrops(f, "none-1")
	done := revokeAsync(n, "none-1")
	<-entered
	if err := jobOp(t, n, wire.OpGet, "none-1", "tmp", jobTok("none-1", 99), 0, 0); !errors.Is(err, wire.ErrBusy) {
		t.Fatalf("during the drop: %v, want busy", err)
	}
	release()
	<-done
	if err := jobOp(t, n, wire.OpGet, "none-1", "tmp", jobTok("none-1", 99), 0, 0); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("a job that kept nothing, after its drop: %v, want revoked", err)
	}

	entered, release = holdDrops(f, "two-1")
	defer release()
	done = revokeAsync(n, "two-1")
	<-entered
	n.DropJob([]byte("two-1"), true) // the controller's drop order, beside the heartbeat's drop
	if err := jobOp(t, n, wire.OpGet, "two-1", "kept", jobTok("two-1", 99), 0, 0); err != nil {
		t.Fatalf("persisted value once the drop order's drop ended: %v", err)
	}
	release()
	<-done
	if err := jobOp(t, n, wire.OpGet, "two-1", "kept", jobTok("two-1", 99), 0, 0); err != nil {
		t.Fatalf("persisted value once both drops ended: %v", err)
	}

	f.SetHook(nil)
	f.FailNext(FaultDrop, 1, ErrIO)
	<-revokeAsync(n, "fail-1")
	if err := jobOp(t, n, wire.OpGet, "fail-1", "kept", jobTok("fail-1", 99), 0, 0); err != nil {
		t.Fatalf("persisted value after a failed drop: %v, want it read (not busy)", err)
	}
}
