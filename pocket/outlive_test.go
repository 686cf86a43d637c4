package pocket

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
)

// A put or delete whose node is slow for longer than settle, while its
// caller's context still has time, waits for it: the calls the SDK sees to
// their end outlive the caller's context by settle, and do not end settle
// after they start. Before, a caller that gave a put 60 s had it fail
// after 10 s with "context deadline exceeded" while the node was frozen,
// and the put took effect when the node resumed (a new user's trial); on
// the old code (settle made a variable to run this) the put here failed
// after settle.
func TestSlowNodeWithinTheCallersDeadline(t *testing.T) {
	defer func(s time.Duration) { settle = s }(settle)
	settle = 100 * time.Millisecond
	n := dropMoveCluster(t, 1)[0]
	j := staticJob(t, Config{}, []string{n.addr})
	var hold atomic.Int32 // the faulted op to hold once, 300 ms
	n.faulty.SetHook(func(op dataplane.FaultOp, _, key []byte) error {
		if string(key) == "k" && hold.CompareAndSwap(int32(op)+1, 0) {
			time.Sleep(300 * time.Millisecond)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hold.Store(int32(dataplane.FaultCommit) + 1)
	if err := j.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("put with its node slow 300 ms, 10 s to go: %v", err)
	}
	hold.Store(int32(dataplane.FaultDelete) + 1)
	if err := j.Delete(ctx, "k"); err != nil {
		t.Fatalf("delete with its node slow 300 ms, 10 s to go: %v", err)
	}
	if _, err := j.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after the delete: %v", err)
	}
	if hold.Load() != 0 {
		t.Fatal("the hook held nothing: the test proves nothing")
	}
}
