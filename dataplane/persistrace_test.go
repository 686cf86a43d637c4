package dataplane

import (
	"bytes"
	"testing"
	"time"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// A persistent put checked before its job's revocation and committed
// while the drop runs (an NVMe commit behind the device queue: here a
// commit held in a fault hook) is waited for: the drop keeps it with the
// job's other persistent values, and the checks that follow leave them
// all. On the old code the drop did not wait; the retired job, found
// holding more than it kept, lost every persistent value (a hostile
// trial: 20 of 20 in 10 of 11 runs on an NVMe node), and this test found
// "old" gone.
func TestPersistentPutRacingTheDropKeepsTheJobsValues(t *testing.T) {
	t.Run("waited for", func(t *testing.T) { persistRace(t, 50*time.Millisecond) })
	// A commit that outlasts the drop's wait lands after it: the retired
	// job's check keeps it, acknowledged as it was, with the others.
	defer func(w time.Duration) { commitWait = w }(commitWait)
	commitWait = 10 * time.Millisecond
	t.Run("past the wait", func(t *testing.T) { persistRace(t, 100*time.Millisecond) })
}

// persistRace is the race above, the commit held for hold after the
// revocation began.
func persistRace(t *testing.T, hold time.Duration) {
	d := newDRAMTier(t, 64<<20)
	f := NewFaulty(d)
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: f, Net: netio.Config{Loops: 1}}, d)
	n.AwaitSync()
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 5, Full: true, Jobs: []wire.JobEpoch{{Job: "j", Gen: 1, Epoch: 3}}})
	c := dial(t, n, "j")
	put := func(key string, val []byte) error {
		r := roundTrip(t, c, wire.OpPut, wire.FlagPersist, &wire.Request{Job: []byte("j"), Key: []byte(key), Epoch: 3}, val)
		return r.Err()
	}
	if err := put("old", []byte("persisted before the end")); err != nil {
		t.Fatal(err)
	}

	entered, release := make(chan struct{}), make(chan struct{})
	f.SetHook(func(op FaultOp, _, key []byte) error {
		if op == FaultCommit && string(key) == "late" {
			close(entered)
			<-release
		}
		return nil
	})
	late := bytes.Repeat([]byte{9}, 256<<10)
	lateErr := make(chan error, 1)
	go func() {
		id, err := c.Send(wire.OpPut, wire.FlagPersist, &wire.Request{Job: []byte("j"), Key: []byte("late"), Epoch: 3}, late)
		if err == nil {
			err = c.Flush()
		}
		if err != nil {
			lateErr <- err
			return
		}
		r, err := c.Recv()
		if err == nil && r.ID != id {
			t.Errorf("reply %d, want %d", r.ID, id)
		}
		if err == nil {
			err = r.Err()
		}
		lateErr <- err
	}()
	<-entered
	revoked := make(chan struct{})
	go func() {
		defer close(revoked)
		n.ApplyAck(&wire.NodeAck{Known: true, Rev: 6, Jobs: []wire.JobEpoch{{Job: "j", Gen: 1, Revoked: true}}})
	}()
	time.Sleep(hold) // the drop is under way
	close(release)
	<-revoked
	if err := <-lateErr; err != nil {
		t.Fatalf("the put checked before the revocation: %v", err)
	}
	for rev := uint64(7); rev < 10; rev++ { // the retired job's checks (sweepRevoked)
		n.ApplyAck(&wire.NodeAck{Known: true, Rev: rev})
	}
	for _, key := range []string{"old", "late"} {
		if _, err := d.Stat([]byte("j"), []byte(key)); err != nil {
			t.Errorf("persistent value %q after the job's end: %v", key, err)
		}
	}
}
