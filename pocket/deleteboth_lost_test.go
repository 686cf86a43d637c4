package pocket

import (
	"context"
	"errors"
	"testing"
	"time"

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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := newOldOwnerRig(t, ctx, []byte("value A, at the old owner"))
	a, j, key := r.a, r.j, r.key
	done := r.holdDeleteReply(func() error { return nil })
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
