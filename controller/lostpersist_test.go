package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

func TestLostSurvivesRestart(t *testing.T) {
	st := state.NewMemory()
	c := newTest(t, Config{Store: st, DeadAfter: time.Hour, ForgetAfter: time.Hour, DeadNodeGrace: time.Minute})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 8000))
	m, _ := c.RegisterJob("j", wire.JobHints{})
	c.SetNodeState("127.0.0.1:7002", wire.NodeDead)
	sweepPastGrace(c)
	c.flush()
	c.Close()
	c2 := newTest(t, Config{Store: st, DeadAfter: time.Hour, ForgetAfter: time.Hour, DeadNodeGrace: time.Minute})
	m2, err := c2.GetMap(m.Job, m.Token)
	if err != nil || len(m2.Lost) != 1 || m2.Lost[0].Addr != "127.0.0.1:7002" || m2.Epoch != 3 {
		t.Fatalf("%+v %v", m2, err)
	}
	c2.mu.Lock()
	defer c2.mu.Unlock()
	if !c2.lostByLocked(c2.jobs[m.Job], "127.0.0.1:7002") {
		t.Fatal("index not restored")
	}
}

// TestReturnedCleanNodeGetsNoDropOrder: a node a job lost and knows
// clean (it restarted since, or dropped the job's data by order and forgot
// the job) that is dead and back again is sent no drop order for that
// job: the order would revoke the job there while the job may take the
// node back (its puts then answered "token revoked" for the order's
// linger). A job that lost it and does not know it clean gets its order,
// also when a restarted controller first hears from the node.
func TestReturnedCleanNodeGetsNoDropOrder(t *testing.T) {
	st := state.NewMemory()
	cfg := Config{Store: st, DeadAfter: time.Hour, ForgetAfter: time.Hour, DeadNodeGrace: time.Minute}
	c := newTest(t, cfg)
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	mustRegister(t, c, dramNode(b, 1<<30, 8000))
	clean, _ := c.RegisterJob("clean", wire.JobHints{})
	stale, _ := c.RegisterJob("stale", wire.JobHints{})
	c.SetNodeState(b, wire.NodeDead)
	sweepPastGrace(c)
	c.mu.Lock()
	if !c.lostByLocked(c.jobs[clean.Job], b) || !c.lostByLocked(c.jobs[stale.Job], b) {
		c.mu.Unlock()
		t.Fatalf("both jobs should have lost %s", b)
	}
	c.cleanLostLocked(c.jobs[clean.Job], b)
	c.mu.Unlock()
	dropsFor := func(c *Controller) map[string]bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		out := map[string]bool{}
		for _, d := range c.lostDrops {
			if d.addr == b {
				out[d.job] = true
			}
		}
		return out
	}
	c.heartbeat(&wire.Heartbeat{Addr: b})
	if got := dropsFor(c); got[clean.Job] || !got[stale.Job] {
		t.Fatalf("drop orders for the returned node: %v; want %s's only", got, stale.Job)
	}
	c.flush()
	c.Close()
	c2 := newTest(t, cfg)
	c2.heartbeat(&wire.Heartbeat{Addr: b})
	if got := dropsFor(c2); got[clean.Job] || !got[stale.Job] {
		t.Fatalf("drop orders when a restarted controller first hears from the node: %v; want %s's only", got, stale.Job)
	}
}
