package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestAdoptedJobSpreadsOffAnOversubscribedNode: two jobs of 700 Mb/s on
// nodes of 1,000, one on each; the second's node is lost, and it is
// adopted by the only node left, now allotted 1,400 Mb/s. When a node
// joins the cluster, the job that lost its node gets it in its map. Before,
// it was left there: its node alone carries its own 700 Mb/s, so it was
// "held" as on an idle node, and the cluster stayed oversubscribed (a
// restarted controller's trial: three jobs at 1.3x on one node with
// --max-nodes allowing 4).
func TestAdoptedJobSpreadsOffAnOversubscribedNode(t *testing.T) {
	c := deadTest(t, time.Minute)
	x := "127.0.0.1:7003"
	newElasticRig(t, c, "127.0.0.1:7001", "127.0.0.1:7002")
	m1, err := c.RegisterJob("one", wire.JobHints{PeakMbps: 700})
	if err != nil || len(m1.Nodes) != 1 {
		t.Fatalf("register one: %+v %v", m1, err)
	}
	m2, err := c.RegisterJob("two", wire.JobHints{PeakMbps: 700})
	if err != nil || len(m2.Nodes) != 1 || m2.Nodes[0].Addr == m1.Nodes[0].Addr {
		t.Fatalf("register two: %+v %v", m2, err)
	}
	home, lost := m1.Nodes[0].Addr, m2.Nodes[0].Addr
	if err := c.SetNodeState(lost, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c)
	j2 := c.jobs[m2.Job]
	if len(j2.nodes) != 1 || j2.nodes[0].Addr != home {
		t.Fatalf("job two after its node was lost: %+v; want adopted by %s", j2.nodes, home)
	}
	if got := c.loads[home].mbps; got <= 1000 {
		t.Fatalf("%s allotted %.0f Mb/s: the test needs it oversubscribed", home, got)
	}
	r := newElasticRig(t, c, x)
	c.sweep(time.Now().Add(4 * time.Minute))
	if !j2.has(x) {
		t.Fatalf("job two's map %+v after %s joined the cluster; want %s in it (%s allotted %.0f of 1000 Mb/s)",
			j2.nodes, x, x, home, c.loads[home].mbps)
	}
	// Once x holds its share, nothing changes again: no node outside the
	// map has bandwidth to spare.
	r.beat(x, nil)
	r.beat(home, []wire.MoveReport{{Job: m2.Job, Epoch: j2.epoch}})
	r.beat(home, nil)
	r.beat(x, nil)
	if j2.move != nil || len(j2.nodes) != 2 {
		t.Fatalf("job two's change did not end: %+v (move %+v)", j2.nodes, j2.move)
	}
	epoch := j2.epoch
	c.sweep(time.Now().Add(8 * time.Minute))
	if j2.epoch != epoch || j2.grown != 0 {
		t.Fatalf("job two's map changed again (epoch %d, was %d; grown %d): %+v", j2.epoch, epoch, j2.grown, j2.nodes)
	}
}
