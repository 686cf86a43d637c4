package pocket

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	valA, valB := []byte("value A, at the old owner"), []byte("value B, put at the live owner meanwhile")
	r := newOldOwnerRig(t, ctx, valA)
	j, key := r.j, r.key
	other := staticJob(t, Config{}, []string{r.b.addr})
	done := r.holdDeleteReply(func() error { return other.Put(ctx, key, valB) })
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
