package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Attacks on maps that change under a running job (elastic.go): move
// reports the controller must not believe, and changes whose jobs go away.

// growing registers a job on a and b of a rig of a, b, x and starts a
// grow onto x, confirmed by every node (the map is handed out).
func growing(t *testing.T) (*Controller, *elasticRig, *wire.PlacementMap, *wire.PlacementMap) {
	t.Helper()
	c := newTest(t, Config{})
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	r := newElasticRig(t, c, a, b, x)
	m0, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000})
	if err != nil || len(m0.Nodes) != 2 {
		t.Fatalf("register: %+v %v", m0, err)
	}
	if err := c.GrowJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{a, b, x} {
		r.beat(n, nil)
	}
	m1 := r.mapOf(m0)
	if stateIn(m1, x) != wire.NodeJoining {
		t.Fatalf("map while %s joins: %+v", x, m1)
	}
	return c, r, m0, m1
}

func moving(c *Controller, job string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.jobs[job]
	return j != nil && j.move != nil
}

// TestAttackMoveReportsFromOutsiders: "nothing left" reports that end no
// change: from the joining node itself, from a node outside the map, for a
// job that does not exist, below the change's epoch, and a full list of
// them in one heartbeat. Only the map's other members end it.
func TestAttackMoveReportsFromOutsiders(t *testing.T) {
	c, r, m0, m1 := growing(t)
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	outsider := "127.0.0.1:7004"
	mustRegister(t, c, dramNode(outsider, 1<<30, 1000))
	c.mu.Lock()
	r.since[outsider] = c.rev
	c.mu.Unlock()
	done := wire.MoveReport{Job: m0.Job, Epoch: m1.Epoch}
	flood := make([]wire.MoveReport, 0, wire.MaxMoveReports)
	for i := 0; len(flood) < wire.MaxMoveReports-2; i++ {
		flood = append(flood, wire.MoveReport{Job: fmt.Sprintf("nosuchjob-%d", i), Epoch: ^uint64(0)})
	}
	flood = append(flood, done, wire.MoveReport{Job: m0.Job, Epoch: m1.Epoch - 1})
	r.beat(x, flood)                                             // the joining node: its report is not needed, nor counted for another
	r.beat(outsider, flood)                                      // not in the map
	r.beat(a, []wire.MoveReport{{Job: m0.Job, Epoch: m0.Epoch}}) // below the change's epoch
	if !moving(c, m0.Job) {
		t.Fatal("the change ended on reports from nodes that do not move its values")
	}
	r.beat(a, []wire.MoveReport{done})
	if !moving(c, m0.Job) {
		t.Fatalf("the change ended with %s's values unmoved", b)
	}
	// A member that reported nothing left and then finds values again
	// (a retry found one) holds the change open.
	r.beat(a, []wire.MoveReport{{Job: m0.Job, Epoch: m1.Epoch, Left: 3}})
	r.beat(b, []wire.MoveReport{done})
	if !moving(c, m0.Job) {
		t.Fatalf("the change ended while %s reported values left", a)
	}
	r.beat(a, []wire.MoveReport{done})
	if moving(c, m0.Job) {
		t.Fatal("the change did not end once every member had moved its values")
	}
	for _, n := range []string{a, b, x} {
		r.beat(n, nil)
	}
	if m := r.mapOf(m0); stateIn(m, x) != wire.NodeActive || m.Epoch <= m1.Epoch {
		t.Fatalf("map after the change: %+v", m)
	}
}

// TestAttackDeregisterMidChange: a job deregistered while its map grows
// leaves no change behind (the sweeper's set of changes forgets it), later
// reports for it are ignored, and it cannot be grown or shrunk.
func TestAttackDeregisterMidChange(t *testing.T) {
	c, r, m0, m1 := growing(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.DeregisterJob(ctx, m0.Job, m0.Token); err != nil {
		t.Fatal(err)
	}
	c.movesTick(time.Now())
	c.mu.Lock()
	left := len(c.moving)
	c.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d changes in progress after the job was deregistered", left)
	}
	done := []wire.MoveReport{{Job: m0.Job, Epoch: m1.Epoch}}
	r.beat("127.0.0.1:7001", done)
	r.beat("127.0.0.1:7002", done)
	if err := c.GrowJob(m0.Job, ""); err == nil {
		t.Fatal("a deregistered job grew")
	}
	if err := c.ShrinkJob(m0.Job, ""); err == nil {
		t.Fatal("a deregistered job shrank")
	}
	if _, err := c.GetMap(m0.Job, m0.Token); err == nil {
		t.Fatal("a deregistered job's map is still handed out")
	}
}
