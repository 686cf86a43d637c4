package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
)

// TestReadDeleteAtOldOwnerReplyLostNotSentAgain: during a map change a
// delete-after-read whose live owner holds nothing reads and deletes at
// the old owner (movingKey.readDelete). When that get-delete's connection
// is lost after the old owner executed it (value A consumed, reply lost),
// its outcome is unknown and, by resendable's rule for a get that deletes,
// the call must not take another value: it must fail unavailable. The
// old-owner step's error is ignored and a second get-delete goes to the
// live owner, which consumes value B, put there meanwhile by another
// writer: one call took two values, A lost with no one having read it.
func TestReadDeleteAtOldOwnerReplyLostNotSentAgain(t *testing.T) {
	ns := dropMoveCluster(t, 2)
	a, b := ns[0], ns[1]
	px := newHoldProxy(t, a.addr)
	whole := placement.NewSet(placementNodes([]Node{{px.addr, 1}, {b.addr, 1}}))
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("obj-%d", i); whole.Node(whole.Pick([]byte(k), 0)).ID == px.addr {
			key = k
		}
	}
	j := staticJob(t, Config{}, []string{px.addr})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	valA, valB := []byte("value A, at the old owner"), []byte("value B, put at the live owner meanwhile")
	if err := j.Put(ctx, key, valA); err != nil {
		t.Fatal(err)
	}
	// The old owner drains: the key's live owner is b, its old owner a.
	m := j.Map()
	m.Nodes = []Node{{px.addr, 1}, {b.addr, 1}}
	m.Draining = map[string]bool{px.addr: true}
	m.Epoch++
	j.setMap(m)
	if r := j.route([]byte(key), 0); r.old != px.addr || r.addr != b.addr {
		t.Fatalf("route %+v: want live %s, old %s", r, b.addr, px.addr)
	}
	other := staticJob(t, Config{}, []string{b.addr})
	var armed atomic.Bool
	armed.Store(true)
	done := make(chan error, 1)
	a.faulty.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
		if op == dataplane.FaultDelete && string(k) == key && armed.CompareAndSwap(true, false) {
			px.hold()
			go func() {
				if !waitUntil(10*time.Second, func() bool {
					px.mu.Lock()
					defer px.mu.Unlock()
					return px.victim != nil
				}) {
					done <- errors.New("the old owner's reply never came")
					return
				}
				err := other.Put(ctx, key, valB)
				px.cut()
				done <- err
			}()
		}
		return nil
	})
	got, callErr := j.Get(ctx, key, DeleteAfterRead())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if callErr == nil && bytes.Equal(got, valB) {
		t.Errorf("the delete-after-read whose get-delete at the old owner consumed A (reply lost) returned B: it took two values")
	} else if !errors.Is(callErr, ErrUnavailable) {
		t.Errorf("the delete-after-read whose reply was lost: %q, %v; want unavailable (outcome unknown)", got, callErr)
	}
	if got, err := other.Get(ctx, key); err != nil || !bytes.Equal(got, valB) {
		t.Fatalf("the key after the call: %q, %v; want B, put after A was consumed and read by no one", got, err)
	}
}
