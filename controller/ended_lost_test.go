package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestEndedMapKeepsItsLostNodes: a job's map records the nodes that left
// it dead (wire.PlacementMap.Lost), so a client reading a key whose owner
// was such a node answers "lost" (recompute it) instead of "not found"
// (package pocket, lost.go). An ended job's persisted values are read by
// the final map the controller kept, so that map must carry them too. On
// the code under test the final map (endedJob) keeps nodes, weights and
// roles but no lost nodes: a persisted value that went with a dead node
// reads through the job's token as not found, a definite "never written,
// or deleted", while the live job's handle read it as lost.
func TestEndedMapKeepsItsLostNodes(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, ForgetAfter: time.Hour, DeadNodeGrace: time.Minute})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	mustRegister(t, c, dramNode(b, 1<<30, 8000))
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 2 {
		t.Fatalf("job map %+v: want both nodes", m.Nodes)
	}
	if err := c.SetNodeState(b, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c)
	syncKeeping(t, c, a, nil)
	live, err := c.GetMap(m.Job, m.Token)
	if err != nil || len(live.Lost) != 1 || live.Lost[0].Addr != b {
		t.Fatalf("live map after %s left it dead: %+v %v; want %s lost", b, live, err, b)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	syncKeeping(t, c, a, []wire.HeldJob{{Job: m.Job, Bytes: 6}})
	final, err := c.GetMapOrEnded(m.Job, m.Token)
	if err != nil || !final.Ended {
		t.Fatalf("final map: %+v %v", final, err)
	}
	if len(final.Lost) != 1 || final.Lost[0].Addr != b || final.Lost[0].Epoch != live.Lost[0].Epoch {
		t.Fatalf("final map's lost nodes %+v; want the live map's %+v", final.Lost, live.Lost)
	}
}
