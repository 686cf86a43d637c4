package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// allotOf is the allotment status shows for a job, Mb/s.
func allotOf(t *testing.T, c *Controller, id string) float64 {
	t.Helper()
	for _, j := range c.Status().Jobs {
		if j.Job == id {
			return j.AllocMbps
		}
	}
	t.Fatalf("job %s not in status", id)
	return 0
}

// TestHintlessJobAllottedWhatItsNodesHave: a job without hints or profile
// is placed as Pocket placed it (the nodes covering 16 Gb/s, at least 2),
// and allotted the bandwidth those nodes have room for, at most 16 Gb/s:
// on 8 Gb/s nodes 2 nodes and 16 Gb/s without an autoscaler (Pocket's
// default), 12.8 Gb/s under an autoscaler's 80 % band; on one 200 Mb/s
// node 200 Mb/s (160 under the band), not 16 Gb/s (as status showed it,
// with its cost, before).
func TestHintlessJobAllottedWhatItsNodesHave(t *testing.T) {
	register := func(c *Controller, n int, mbps float64) {
		for i := 0; i < n; i++ {
			mustRegister(t, c, dramNode(fmt.Sprintf("127.0.0.1:%d", 7001+i), 60e9, mbps))
		}
	}
	cases := []struct {
		name      string
		nodes     int
		mbps      float64
		autoscale bool
		wantNodes int
		wantMbps  float64
	}{
		{"Pocket's nodes", 4, 8000, false, 2, 16000},
		{"Pocket's nodes, autoscaled", 4, 8000, true, 2, 12800},
		{"one small node", 1, 200, false, 1, 200},
		{"one small node, autoscaled", 1, 200, true, 1, 160},
		{"small nodes, autoscaled", 3, 200, true, 3, 480},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c *Controller
			if tc.autoscale {
				c = newScaleRigWith(t, 0, AutoscaleConfig{}, func(c *Controller) { register(c, tc.nodes, tc.mbps) }).c
			} else {
				c = newTest(t, Config{})
				register(c, tc.nodes, tc.mbps)
			}
			m, err := c.RegisterJob("hot", wire.JobHints{})
			if err != nil {
				t.Fatal(err)
			}
			if got := allotOf(t, c, m.Job); len(m.Nodes) != tc.wantNodes || got != tc.wantMbps {
				t.Fatalf("%d nodes, allotted %.0f Mb/s; want %d and %.0f", len(m.Nodes), got, tc.wantNodes, tc.wantMbps)
			}
		})
	}
}

// TestHintlessJobGrows (new-user trial): a job registered without hints
// on one 1000 Mb/s node of an autoscaling cluster, driven at 3000 Mb/s,
// gets a node started and its map grown onto it. Before, its allotment
// was Pocket's 16 Gb/s, and its map grows only for its own traffic beyond
// 1.1 x its allotment: it never grew.
func TestHintlessJobGrows(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{MaxNodes: 4, Smooth: 1, Cooldown: time.Second, JobCooldown: time.Second})
	m, err := r.c.RegisterJob("hot", wire.JobHints{})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("register: %+v %v", m, err)
	}
	home := m.Nodes[0].Addr
	r.c.mu.Lock()
	r.c.jobs[m.Job].created = r.clock.now().Add(-time.Minute)
	r.c.mu.Unlock()
	for i := 0; i < 10; i++ {
		for _, n := range r.c.Status().Nodes {
			if n.State != wire.NodeActive {
				continue
			}
			rx := 0.0
			if n.Addr == home {
				rx = 3000
			}
			r.heartbeat(n.Addr, rx, 0, nil)
		}
		r.clock.advance(2 * time.Second)
		r.a.Step()
		r.awaitStarts()
		for _, d := range r.a.Decisions() {
			if d.Action == ActionGrowJob && d.Job == m.Job {
				return
			}
		}
	}
	t.Fatalf("a job without hints at 300%% of its one node did not grow: decisions %+v, jobs %+v", r.a.Decisions(), r.a.JobUtilization())
}

// TestHintlessJobLetsIdleNodesGo (new-user trial): while a job registered
// without hints holds one node, the nodes a hinted job had started are
// drained once it ends. Before, the job's 16 Gb/s allotment counted on
// its 1000 Mb/s node (the cluster "at 533 %"), so no idle node was ever
// drained until it ended.
func TestHintlessJobLetsIdleNodesGo(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{MaxNodes: 4})
	m, err := r.c.RegisterJob("hot", wire.JobHints{})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("register: %+v %v", m, err)
	}
	h, err := r.c.RegisterJob("h", wire.JobHints{PeakMbps: 1500})
	if err != nil || r.active() != 3 {
		t.Fatalf("hinted job: %v, %d active nodes; want 3", err, r.active())
	}
	if _, err := r.c.DeregisterJob(context.Background(), h.Job, h.Token); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r.beat(0, 0)
		r.clock.advance(11 * time.Second)
	}
	d := r.a.Step()
	if d.Action != ActionRemove || len(d.Drain) != 1 || d.Drain[0] == m.Nodes[0].Addr {
		t.Fatalf("decision %+v; want one of the idle nodes drained (3 nodes at 27%%)", d)
	}
}

// TestLearnedJobsAllottedWhatTheirNodesCarry: a job sized without hints
// is allotted at most what its nodes have room for, from a profile as
// from Pocket's default (a profile recorded on a larger cluster asked for
// 55000 Mb/s on 16000 Mb/s of nodes, and a new user saw 5668 Mb/s on 1000),
// and at least one lambda's bandwidth (a default job placed on nodes that
// earlier jobs fill was allotted 0 Mb/s). Both failed on the old code.
func TestLearnedJobsAllottedWhatTheirNodesCarry(t *testing.T) {
	c := newTest(t, Config{})
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002"} {
		mustRegister(t, c, dramNode(a, 1<<30, 8000))
	}
	alloc := func(id string) float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.jobs[id].allocMbps
	}
	first, err := c.RegisterJob("first", wire.JobHints{})
	if err != nil || alloc(first.Job) != 16000 {
		t.Fatalf("first job without hints: %v, allotted %v; want 16000", err, alloc(first.Job))
	}
	second, err := c.RegisterJob("second", wire.JobHints{})
	if err != nil || alloc(second.Job) != 600 {
		t.Fatalf("job without hints on full nodes: %v, allotted %v; want one lambda's 600", err, alloc(second.Job))
	}
	c.prof.record("big", state.Run{Job: "big-1", PeakMbps: 50000})
	big, err := c.RegisterJob("big", wire.JobHints{})
	if err != nil || alloc(big.Job) > 600 {
		t.Fatalf("job sized from a profile of 50000 Mb/s on full nodes: %v, allotted %v; want at most 600", err, alloc(big.Job))
	}
}
