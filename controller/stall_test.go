package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestStalledControllerJudgesNodesFromItsReturn: the sweep loop's tick
// comes two hours late (the controller's process was stopped; the
// nodes' heartbeats wait in its sockets). Its first sweep marks no node
// dead for the silence, loses no node that was dead within its grace
// when the stall began (it may have come back meanwhile), and gives a
// drain back the time it was stopped (two heartbeats from the return,
// on d40ed52: a hostile trial's drains then ran out of time and lost
// values). A node
// still silent DeadAfter after the return is marked dead. On the code
// before, the loop swept at once: the live node read dead, the dead one
// left its job's map as lost, and the drain's deadline had passed.
func TestStalledControllerJudgesNodesFromItsReturn(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, ForgetAfter: 24 * time.Hour, DeadNodeGrace: time.Minute})
	const live, died, draining = "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	for _, a := range []string{live, died, draining} {
		mustRegister(t, c, dramNode(a, 1<<30, 8000))
	}
	m, err := c.RegisterJob("j", wire.JobHints{PeakMbps: 24000})
	if err != nil || len(m.Nodes) != 3 {
		t.Fatalf("%+v %v", m, err)
	}
	if err := c.SetNodeState(died, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Drain(draining, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	state := func(addr string) wire.NodeState {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.nodes[addr].state
	}
	done, every := time.Now(), time.Second
	back := done.Add(2 * time.Hour)
	c.sweepTick(back, done, every)
	if s := state(live); s != wire.NodeActive {
		t.Fatalf("after the controller's own 2 h stall the live node is %v; want active", s)
	}
	c.mu.Lock()
	lost := append([]wire.LostNode(nil), c.jobs[m.Job].lost...)
	c.mu.Unlock()
	if len(lost) != 0 {
		t.Fatalf("after the stall the job lost %+v; want the node dead within its grace kept", lost)
	}
	c.mu.Lock()
	deadline := c.nodes[draining].drain.deadline
	c.mu.Unlock()
	if left := deadline.Sub(back); left < 9*time.Minute {
		t.Fatalf("the drain's deadline is %v after the return; want the 10 min it had less the time before the stall", left)
	}
	c.sweepTick(back.Add(time.Hour+2*every), back, time.Hour+every)
	if s := state(live); s != wire.NodeDead {
		t.Fatalf("a node silent past DeadAfter after the controller's return is %v; want dead", s)
	}
}

// TestStallInsideTheSweepIsExcused: the controller stops inside a sweep
// tick's work (a debugger held it 10 s in drainTick in a hostile trial),
// no heartbeat heard meanwhile; the next tick, due at once, judges the
// nodes from the return (sweepDone gives it the tick's start as the
// previous work's end). Before, the work's end was taken: the tick was
// not late, and a heartbeating node read dead. A tick as slow whose
// heartbeats went on beside it (a slow flush) counts from its end.
func TestStallInsideTheSweepIsExcused(t *testing.T) {
	c := newTest(t, Config{DeadAfter: 3 * time.Second, ForgetAfter: time.Hour})
	const live = "127.0.0.1:7001"
	mustRegister(t, c, dramNode(live, 1<<30, 1000))
	every := time.Second
	start := time.Now()
	end := start.Add(10 * time.Second) // the work, stopped inside
	if got := sweepDone(start, end, every, true); !got.Equal(end) {
		t.Fatalf("a slow tick with heartbeats beside it counts as done at %v, want its end", got.Sub(start))
	}
	done := sweepDone(start, end, every, false)
	c.sweepTick(end.Add(time.Millisecond), done, every)
	c.mu.Lock()
	st := c.nodes[live].state
	c.mu.Unlock()
	if st != wire.NodeActive {
		t.Fatalf("after a 10 s stop inside the sweep the heartbeating node is %v; want active", st)
	}
}
