package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestEndedMapOutlivesAForgottenNode: a node that keeps an ended job's
// persisted values falls silent (a partition, a stalled host): it is
// marked dead, and a dead node in no live job's map is forgotten after
// Config.ForgetAfter (a minute). Its process did not necessarily leave:
// when it comes back it registers again with what it held, and reports
// the job's persisted values. The job's final map must still find them.
// On the code under test forgetting the node counts as "keeps none"
// (mayKeepLocked), so the sweep that forgets it drops the final map too:
// the values the node reports again are unreachable by the job's token,
// and hold the node's drains until a discarding drain destroys them.
func TestEndedMapOutlivesAForgottenNode(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	m := expireNow(t, c, "kept")
	keep := []wire.HeldJob{{Job: m.Job, Bytes: 6}}
	syncKeeping(t, c, a, keep)
	if err := c.SetNodeState(a, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	c.sweep(time.Now().Add(2 * time.Minute)) // past ForgetAfter
	// The node comes back with the value.
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	syncKeeping(t, c, a, keep)
	sweepNow(t, c)
	wantFinal(t, c, m)
}
