package metaclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestReplyThatCameDuringTheClientsStallIsRead: the client's process
// does not run between a request's write and the read of its reply (a
// stop, as SIGSTOP), past the call's deadline; the controller's reply
// came meanwhile. The call returns that reply: a registration the
// controller's answer, a status its figures. Before, it failed ("outcome unknown" for the
// registration, whose job stayed registered: a hostile trial with a real
// stop, 3 of 4 runs).
func TestReplyThatCameDuringTheClientsStallIsRead(t *testing.T) {
	addr := startCtl(t, controller.Config{Secret: secret, Logger: quiet})
	mc := metaclient.New(addr, metaclient.Options{Logger: quiet})
	defer mc.Close()
	if _, err := mc.Status(context.Background()); err != nil { // a connection that has served
		t.Fatal(err)
	}
	undo := metaclient.SetAfterWrite(func(op wire.Op) {
		if op == wire.OpRegisterJob || op == wire.OpStatus {
			time.Sleep(600 * time.Millisecond)
		}
	})
	defer undo()
	// No node runs: the controller's answer is a refusal, read as such.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := mc.RegisterJob(ctx, "stalled", wire.JobHints{})
	cancel()
	if wire.CodeOf(err) != wire.CodeUnavailable || errors.Is(err, metaclient.ErrOutcomeUnknown) {
		t.Fatalf("register whose reply came during the client's stall: %v; want the controller's answer (no node)", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	st, err := mc.Status(ctx)
	cancel()
	if err != nil || st == nil {
		t.Fatalf("status whose reply came during the client's stall: %+v %v", st, err)
	}
}
