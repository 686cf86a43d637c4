package pocket

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// TestBusyWaitEndsWithTheContextsError: a call that waits out a node's
// busy answers and whose context ends meanwhile fails with the context's
// error, keeping the node's refusal for errors.Is and unexecuted. Before,
// it returned the busy answer alone (a hostile trial: 1-10 List calls in
// 15 s failed "busy: too many listings ... waiting", their deadline
// already past). Fails on the old code.
func TestBusyWaitEndsWithTheContextsError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	busy := &wire.Error{Code: wire.CodeBusy, Msg: "too many listings waiting"}
	_, err := untilNotBusy(ctx, func() (client.Reply, error) { return client.Reply{}, busy })
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, wire.ErrBusy) || !unexecuted(err) {
		t.Fatalf("busy until the deadline: %v; want the deadline's error, with the busy refusal (unexecuted)", err)
	}
}
