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
