package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
)

// TestDeleteRacingAMoveLeavesNothing: the single-key twin of
// TestPrefixDeleteRacingAMoveLeavesNothing. B's delete of one key
// (ops.go delete) checks for a move (Node.moving) and then deletes: a move
// that marks the key between the two has its push in flight while the
// delete removes the local copy, so once Delete returned nil the key is
// back at its new owner A until the mover's undo runs. Here the check ->
// delete window is widened by a hook in B's tier delete (in a live node it
// is the time between the check and tier.Delete on the loop; for a
// delete-after-read on an NVMe tier, the worker queue and the device
// read).
func TestDeleteRacingAMoveLeavesNothing(t *testing.T) {
	t.Run("delete", func(t *testing.T) { testKeyDeleteRacingAMove(t, false) })
	t.Run("delete-after-read", func(t *testing.T) { testKeyDeleteRacingAMove(t, true) })
}

func testKeyDeleteRacingAMove(t *testing.T, dar bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := dropMoveCluster(t, 2)
	a, b := ns[0], ns[1]
	j := staticJob(t, Config{ChunkSize: 16 << 10}, []string{a.addr, b.addr})
	m0 := j.Map()
	set := placement.NewSet(placementNodes(m0.Nodes))
	var key string
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("obj-%d", i); set.Node(set.Pick([]byte(k), 0)).ID == b.addr {
			key = k
		}
	}
	val := randBytes(100, 9)
	if err := j.Put(ctx, key, val); err != nil {
		t.Fatal(err)
	}
	m := m0
	m.Epoch, m.Draining = m0.Epoch+1, map[string]bool{b.addr: true}
	j.setMap(m)

	hs := &raceSender{inner: client.New(client.Options{}), key: key, owner: a.addr,
		pushing: make(chan struct{}), releasePush: make(chan struct{}),
		undoing: make(chan struct{}), releaseUndo: make(chan struct{})}
	t.Cleanup(func() { hs.inner.Close() })
	type moveResult struct {
		st  dataplane.MigrateStats
		err error
	}
	moved := make(chan moveResult, 1)
	var once sync.Once
	hooked := false
	var early *moveResult
	b.faulty.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
		if op != dataplane.FaultDelete || string(k) != key {
			return nil
		}
		once.Do(func() {
			hooked = true
			go func() {
				st, err := b.node.Migrate(ctx, dataplane.MigrateJob{Job: j.ID(), Epoch: m.Epoch,
					Nodes: []placement.Node{{ID: a.addr, Weight: 1}}}, hs, 1)
				moved <- moveResult{st, err}
			}()
			// The mover pushes (the race), or, with deletes and marks
			// excluding each other, waits for this delete to end.
			select {
			case <-hs.pushing:
			case r := <-moved:
				early = &r
			case <-time.After(time.Second):
			}
		})
		return nil
	})
	if dar {
		got, err := j.Get(ctx, key, DeleteAfterRead())
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("first delete-after-read: %d bytes, %v", len(got), err)
		}
	} else if err := j.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	b.faulty.SetHook(nil)
	if !hooked {
		t.Fatal("B's delete never reached its tier: the test proves nothing")
	}
	close(hs.releasePush)
	if early != nil {
		t.Logf("mover finished before the delete went on: %+v %v", early.st, early.err)
		return
	}
	select {
	case <-hs.undoing:
		heldA := holds(a.faulty, j.ID(), []byte(key))
		var got []byte
		var err error
		// A plain get (a second delete-after-read waits: B answers busy
		// while the key is marked, until the undo).
		gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
		got, err = j.Get(gctx, key)
		gcancel()
		t.Logf("after the call returned, before the mover's undo: A holds %q: %v; get: %d bytes, %v", key, heldA, len(got), err)
		if heldA || !errors.Is(err, ErrNotFound) {
			what := "Delete returned nil"
			if dar {
				what = "one delete-after-read took the value"
			}
			t.Errorf("after %s, %q is back at A (holds %v) and a get answers %d bytes, %v; want not found", what, key, heldA, len(got), err)
		}
		close(hs.releaseUndo)
	case res := <-moved:
		t.Logf("mover finished without an undo: %+v %v", res.st, res.err)
		if holds(a.faulty, j.ID(), []byte(key)) {
			t.Errorf("%q at A after the delete and the move", key)
		}
		return
	case <-ctx.Done():
		t.Fatal("mover stuck")
	}
	res := <-moved
	t.Logf("mover: %+v, err %v", res.st, res.err)
}
