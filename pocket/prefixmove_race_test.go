package pocket

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// TestPrefixDeleteRacingAMoveLeavesNothing: a key under a prefix is being moved off
// node B (B drains from the job's map; A owns the key under the new map)
// while RemoveAll of the prefix runs. B's prefix delete passes scan's
// moving check before the mover marks the key, and lists and deletes it
// after the mover has read it and while its push to A is in flight. Once
// RemoveAll has returned nil, the key must be found nowhere: not readable
// at A (resurrected), and no manifest left at A whose chunks were dropped
// (torn). The mover's push is released only after RemoveAll has returned,
// and its undo (the conditional delete at A) is held while the test looks.
// Static nodes, a map set by hand, the mover run by the test: deterministic.
func TestPrefixDeleteRacingAMoveLeavesNothing(t *testing.T) {
	t.Run("chunked", func(t *testing.T) { testPrefixDeleteRacingAMove(t, 3*(16<<10)+100, false) })
	t.Run("small", func(t *testing.T) { testPrefixDeleteRacingAMove(t, 100, false) })
	// The undo's request fails (as a lost connection, or the mover's
	// context ended): nothing sends it again, and what the push left at A
	// stays.
	t.Run("chunked undo lost", func(t *testing.T) { testPrefixDeleteRacingAMove(t, 3*(16<<10)+100, true) })
}

func testPrefixDeleteRacingAMove(t *testing.T, size int, undoLost bool) {
	const cs = 16 << 10
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := dropMoveCluster(t, 2)
	a, b := ns[0], ns[1]
	j := staticJob(t, Config{ChunkSize: cs}, []string{a.addr, b.addr})
	m0 := j.Map()
	set := placement.NewSet(placementNodes(m0.Nodes))
	var key string
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("dir/obj-%d", i); set.Node(set.Pick([]byte(k), 0)).ID == b.addr {
			key = k
		}
	}
	if err := j.Put(ctx, key, randBytes(size, 7)); err != nil {
		t.Fatal(err)
	}
	// B leaves the job's map: the SDK asks B first, then A (movePhases).
	m := m0
	m.Epoch, m.Draining = m0.Epoch+1, map[string]bool{b.addr: true}
	j.setMap(m)

	hs := &raceSender{inner: client.New(client.Options{}), key: key, owner: a.addr,
		pushing: make(chan struct{}), releasePush: make(chan struct{}),
		undoing: make(chan struct{}), releaseUndo: make(chan struct{}), undoLost: undoLost}
	t.Cleanup(func() { hs.inner.Close() })
	type moveResult struct {
		st  dataplane.MigrateStats
		err error
	}
	moved := make(chan moveResult, 1)
	startMove := func() {
		go func() {
			st, err := b.node.Migrate(ctx, dataplane.MigrateJob{Job: j.ID(), Epoch: m.Epoch,
				Nodes: []placement.Node{{ID: a.addr, Weight: 1}}}, hs, 1)
			moved <- moveResult{st, err}
		}()
	}
	// B's prefix delete lists its keys (past scan's moving check): the
	// mover starts now, and the listing goes on once the mover has read
	// the key and is pushing it to A (or the mover is done).
	var once sync.Once
	var moveDone, waited bool
	var early moveResult
	b.faulty.SetHook(func(op dataplane.FaultOp, _, prefix []byte) error {
		if op != dataplane.FaultList || string(prefix) != "dir/" {
			return nil
		}
		once.Do(func() {
			startMove()
			// With marks waiting for running deletes (markWaiting), the
			// mover marks the key and waits for this delete to end.
			select {
			case <-hs.pushing:
			case early = <-moved:
				moveDone = true
			case <-time.After(time.Second):
				waited = true // the mover waits for this delete: taken below
			case <-ctx.Done():
			}
		})
		return nil
	})
	if err := j.RemoveAll(ctx, "dir"); err != nil {
		t.Fatalf("RemoveAll: %v", err)
	}
	b.faulty.SetHook(nil)
	ran := false
	once.Do(func() { ran = true })
	if ran {
		t.Fatal("B's prefix delete did not list its keys: the test did not run its move")
	}
	if waited {
		early, moveDone = <-moved, true
	}
	t.Logf("RemoveAll(dir) returned nil; mover had pushed before B's listing went on: %v", !moveDone)

	// RemoveAll has returned: release the push, and look while the undo
	// is held.
	close(hs.releasePush)
	var res moveResult
	if moveDone {
		res = early
	} else {
		select {
		case <-hs.undoing:
			heldA := holds(a.faulty, j.ID(), []byte(key))
			got, err := j.Get(ctx, key)
			t.Logf("window after RemoveAll returned, before the mover's undo: A holds %q: %v; Get: %d bytes, %v",
				key, heldA, len(got), err)
			if heldA || !errors.Is(err, ErrNotFound) {
				t.Errorf("after RemoveAll returned nil, %q is back at A (holds: %v); Get: %d bytes, %v; want not found",
					key, heldA, len(got), err)
			}
			close(hs.releaseUndo)
			res = <-moved
		case res = <-moved:
		case <-ctx.Done():
			t.Fatal("the mover did not finish")
		}
	}
	t.Logf("mover: %+v, err %v", res.st, res.err)

	// Settled: nothing of the key anywhere.
	for i, n := range ns {
		if holds(n.faulty, j.ID(), []byte(key)) {
			t.Errorf("node %d still holds %q after RemoveAll and the move", i, key)
		}
	}
	got, err := j.Get(ctx, key)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Get %q after RemoveAll and the move: %d bytes, %v; want not found", key, len(got), err)
	}
	for i, n := range ns {
		if u := n.faulty.Usage(); u.Values != 0 {
			t.Errorf("node %d holds %d values (%d bytes) after RemoveAll and the move", i, u.Values, u.Used)
		}
	}
	// A later pass of the mover leaves nothing behind either.
	if left := b.node.JobValues(j.ID()); left != 0 {
		t.Errorf("B still holds %d values of the job", left)
	}
}

// raceSender passes requests to inner, but holds the mover's push of key
// to owner until releasePush, and its undo (a conditional delete of key at
// owner) until releaseUndo; with undoLost the undo fails unsent.
type raceSender struct {
	inner                *client.Client
	key, owner           string
	pushing, releasePush chan struct{}
	undoing, releaseUndo chan struct{}
	undoLost             bool
	pushOnce, undoOnce   sync.Once
}

func (s *raceSender) Do(ctx context.Context, addr string, op wire.Op, flags uint16, req *wire.Request, payload, dst []byte) (client.Reply, error) {
	if addr == s.owner && string(req.Key) == s.key {
		switch {
		case op == wire.OpPut:
			s.pushOnce.Do(func() {
				close(s.pushing)
				<-s.releasePush
			})
		case op == wire.OpDelete && flags&wire.FlagIfVersion != 0:
			held := false
			s.undoOnce.Do(func() {
				held = true
				close(s.undoing)
				<-s.releaseUndo
			})
			if held && s.undoLost {
				return client.Reply{}, errors.New("injected: the undo's connection failed")
			}
		}
	}
	return s.inner.Do(ctx, addr, op, flags, req, payload, dst)
}
