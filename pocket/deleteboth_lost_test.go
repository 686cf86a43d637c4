package pocket

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// TestDeleteAtOldOwnerReplyLostNotNotFound: during a map change a delete
// of one key deletes at the old owner, then at the live owner
// (movingKey.deleteBoth). When the old owner's delete is executed (the
// value deleted) and its reply lost, the live owner, holding nothing,
// answers "not found", and the call returns that: "not found" for a delete
// that deleted, the very answer resendable says a maybe-sent delete must
// not give (its outcome is unknown: ErrUnavailable).
func TestDeleteAtOldOwnerReplyLostNotNotFound(t *testing.T) {
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
	if err := j.Put(ctx, key, []byte("value A, at the old owner")); err != nil {
		t.Fatal(err)
	}
	m := j.Map()
	m.Nodes = []Node{{px.addr, 1}, {b.addr, 1}}
	m.Draining = map[string]bool{px.addr: true}
	m.Epoch++
	j.setMap(m)
	if r := j.route([]byte(key), 0); r.old != px.addr || r.addr != b.addr {
		t.Fatalf("route %+v: want live %s, old %s", r, b.addr, px.addr)
	}
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
				px.cut()
				done <- nil
			}()
		}
		return nil
	})
	callErr := j.Delete(ctx, key)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := staticJob(t, Config{}, []string{a.addr}).Get(ctx, key); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("the old owner after the delete: %v; want the value deleted", err)
	}
	if errors.Is(callErr, wire.ErrNotFound) {
		t.Errorf("the delete that deleted the value (its reply lost) answered %v", callErr)
	} else if !errors.Is(callErr, ErrUnavailable) {
		t.Errorf("the delete whose reply was lost: %v; want unavailable (outcome unknown)", callErr)
	}
}
