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

// TestRetiredReadDeleteOldOwnerFails: an ended job whose final map was
// changing (its old owner a draining, reached through a proxy) reads a
// key with delete-after-read (retiredKeyDo): the live owner b holds the
// key's value B, the old owner an older copy A, which must go too (it
// would read again). When the old owner's delete fails (its reply lost
// after it deleted A, or refused with an I/O error), the call must not
// both fail and have taken B: either it hands B out, or it fails and B
// stays for a retry. Before, B was read and deleted at b first, then the
// old owner's failure was the call's answer: B gone, handed to no one.
// A retry then answered "not found" (reply lost) or, worse, A, the older
// value (I/O error: A stayed at a).
func TestRetiredReadDeleteOldOwnerFails(t *testing.T) {
	t.Run("old owner's reply lost", func(t *testing.T) { testRetiredReadDeleteOldOwnerFails(t, true) })
	t.Run("old owner refuses", func(t *testing.T) { testRetiredReadDeleteOldOwnerFails(t, false) })
}

func testRetiredReadDeleteOldOwnerFails(t *testing.T, lost bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	valA, valB := []byte("value A, the older copy at the old owner"), []byte("value B, at the live owner")
	ns := dropMoveCluster(t, 2)
	a, b := ns[0], ns[1]
	px := newHoldProxy(t, a.addr)
	whole := placement.NewSet(placementNodes([]Node{{Addr: px.addr, Weight: 1}, {Addr: b.addr, Weight: 1}}))
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("obj-%d", i); whole.Node(whole.Pick([]byte(k), 0)).ID == px.addr {
			key = k
		}
	}
	if err := staticJob(t, Config{}, []string{px.addr}).Put(ctx, key, valA); err != nil {
		t.Fatal(err)
	}
	if err := staticJob(t, Config{}, []string{b.addr}).Put(ctx, key, valB); err != nil {
		t.Fatal(err)
	}
	// The job ended while a drained: its final map marks a draining, and
	// no value moves any more.
	j := staticJob(t, Config{}, []string{px.addr, b.addr})
	m := j.Map()
	m.Draining = map[string]bool{px.addr: true}
	m.Ended = true
	m.Epoch++
	j.setMap(m)
	j.retired.Store(true)
	if r := j.route([]byte(key), 0); r.old != px.addr || r.addr != b.addr {
		t.Fatalf("route %+v: want live %s, old %s", r, b.addr, px.addr)
	}
	var armed atomic.Bool
	armed.Store(true)
	cut := make(chan struct{})
	a.faulty.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
		if op != dataplane.FaultDelete || string(k) != key || !armed.CompareAndSwap(true, false) {
			return nil
		}
		if !lost {
			return dataplane.ErrIO
		}
		px.hold()
		go func() {
			defer close(cut)
			if px.waitHeld(10 * time.Second) {
				px.cut()
			}
		}()
		return nil
	})
	got, callErr := j.Get(ctx, key, DeleteAfterRead())
	if armed.Load() {
		t.Fatal("the old owner was never asked to delete: the test staged nothing")
	}
	if lost {
		<-cut
	}
	atB, errB := staticJob(t, Config{}, []string{b.addr}).Get(ctx, key)
	switch {
	case callErr == nil:
		if !bytes.Equal(got, valB) {
			t.Fatalf("the delete-after-read returned %q; want B", got)
		}
		if !errors.Is(errB, ErrNotFound) {
			t.Fatalf("the live owner after the delete-after-read that returned B: %q, %v; want not found", atB, errB)
		}
	case errors.Is(errB, ErrNotFound):
		t.Fatalf("the delete-after-read failed (%v) and B is gone from the live owner: taken, handed to no one", callErr)
	case errB != nil || !bytes.Equal(atB, valB):
		t.Fatalf("the live owner after the failed call: %q, %v; want B", atB, errB)
	default:
		// Failed, B kept: a retry takes B, and nothing older is left.
		if got, err := j.Get(ctx, key, DeleteAfterRead()); err != nil || !bytes.Equal(got, valB) {
			t.Fatalf("the delete-after-read again: %q, %v; want B", got, err)
		}
	}
	if got, err := j.Get(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the key once B was taken: %q, %v; want not found (A, the older copy, must not read again)", got, err)
	}
}
