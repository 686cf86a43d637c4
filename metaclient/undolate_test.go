package metaclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// replyDelayer is a replyProxy holding each job registration's reply back
// for delay (a controller slow to answer, say while nodes start for the
// job).
func replyDelayer(t *testing.T, to string, delay time.Duration) string {
	addr, _ := replyProxy(t, to, func(h wire.Header) bool {
		if h.Op == wire.OpRegisterJob.Reply() {
			time.Sleep(delay)
		}
		return true
	})
	return addr
}

// TestLateRegistrationIsUndone (a new user's trial, 2026-12-07): a job
// registration whose context ends after the request was sent, on a
// connection still whole, fails with its outcome unknown, saying the
// answer is awaited; when the answer comes the job is deregistered, and
// the client's next registration works. Before, the job stayed live,
// holding its allotment with a token nobody had: 3-4 of 60 registrations
// cut at 0.8-2.3 ms.
func TestLateRegistrationIsUndone(t *testing.T) {
	ctl, ctlAddr := startController(t, "127.0.0.1:0")
	defer ctl.Close()
	node := startNode(t, ctlAddr)
	defer node.stop()
	direct := metaclient.New(ctlAddr, metaclient.Options{Logger: quiet})
	defer direct.Close()
	waitActive(t, direct, 1)

	mc := metaclient.New(replyDelayer(t, ctlAddr, 300*time.Millisecond), metaclient.Options{Logger: quiet})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := mc.RegisterJob(ctx, "late", wire.JobHints{})
	cancel()
	var oe *metaclient.OutcomeUnknownError
	if !errors.As(err, &oe) || !oe.Undo || !strings.Contains(err.Error(), "the job deregistered") {
		t.Fatalf("a registration cut before its answer: %v; want the outcome unknown, the answer awaited", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v does not match the context's deadline", err)
	}
	wait, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	registered := false
	for {
		st, err := direct.Status(wait)
		if err != nil {
			t.Fatal(err)
		}
		registered = registered || st.JobCount > 0 // live for the reply's 300 ms at least
		if st.JobCount == 0 && registered {
			break
		}
		if wait.Err() != nil {
			t.Fatalf("%d live job(s) 20 s after the cut registration (registered: %v); want it ended", st.JobCount, registered)
		}
		time.Sleep(20 * time.Millisecond)
	}
	m, err := mc.RegisterJob(wait, "next", wire.JobHints{})
	if err != nil {
		t.Fatalf("the client's next registration: %v", err)
	}
	if _, err := mc.DeregisterJob(wait, m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
}
