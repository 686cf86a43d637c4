package controller

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// elasticRig is a controller with DRAM nodes that heartbeat like agents:
// each applies its acks' revisions (a node synced before the test).
type elasticRig struct {
	t     *testing.T
	c     *Controller
	since map[string]uint64
}

func newElasticRig(t *testing.T, c *Controller, addrs ...string) *elasticRig {
	r := &elasticRig{t: t, c: c, since: map[string]uint64{}}
	for _, a := range addrs {
		mustRegister(t, c, dramNode(a, 1<<30, 1000))
	}
	c.mu.Lock()
	rev := c.rev
	c.mu.Unlock()
	for _, a := range addrs {
		r.since[a] = rev
		r.beat(a, nil)
	}
	return r
}

// beat sends one heartbeat from addr with its revision and move reports,
// and heartbeats again at once while the ack says More, as the agent does.
func (r *elasticRig) beat(addr string, moves []wire.MoveReport) *wire.NodeAck {
	r.t.Helper()
	var ack *wire.NodeAck
	for i := 0; i < 10; i++ {
		var err error
		ack, err = r.c.Heartbeat(&wire.Heartbeat{Addr: addr, Since: r.since[addr], Moves: moves,
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 1000}}})
		if err != nil {
			r.t.Fatal(err)
		}
		was := r.since[addr]
		r.since[addr] = ack.Rev
		if !ack.More && was == ack.Rev {
			break // the controller knows the node's table is at its revision
		}
	}
	return ack
}

func (r *elasticRig) mapOf(m *wire.PlacementMap) *wire.PlacementMap {
	r.t.Helper()
	got, err := r.c.GetMap(m.Job, m.Token)
	if err != nil {
		r.t.Fatal(err)
	}
	return got
}

func stateIn(m *wire.PlacementMap, addr string) wire.NodeState {
	st, _ := mapState(m, addr)
	return st
}

// TestJobMapGrowsAndShrinks walks the protocol of elastic.go: a node
// joins a running job's map (published once the map's nodes confirmed the
// epoch, active once the others moved their values), then leaves it
// (marked draining in that map only, gone once every node moved).
func TestJobMapGrowsAndShrinks(t *testing.T) {
	c := newTest(t, Config{})
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	r := newElasticRig(t, c, a, b, x)
	m0, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000})
	if err != nil || len(m0.Nodes) != 2 || m0.Nodes[0].Addr != a || m0.Nodes[1].Addr != b {
		t.Fatalf("register: %+v %v", m0, err)
	}
	for _, n := range []string{a, b, x} {
		r.beat(n, nil)
	}
	if err := c.GrowJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	if err := c.GrowJob(m0.Job, ""); !errors.Is(err, wire.ErrBusy) {
		t.Fatalf("a second change while one runs: %v", err)
	}
	// Not handed out before the map's nodes know the epoch.
	if m := r.mapOf(m0); m.Epoch != m0.Epoch || len(m.Nodes) != 2 {
		t.Fatalf("map handed out before its nodes confirmed it: %+v", m)
	}
	r.beat(a, nil)
	if m := r.mapOf(m0); m.Epoch != m0.Epoch {
		t.Fatalf("map handed out with node %s unconfirmed: %+v", b, m)
	}
	r.beat(b, nil)
	ackX := r.beat(x, nil)
	m1 := r.mapOf(m0)
	if m1.Epoch <= m0.Epoch || len(m1.Nodes) != 3 || stateIn(m1, x) != wire.NodeJoining ||
		stateIn(m1, a) != wire.NodeActive || math.Abs(weightSum(m1.Nodes)-1) > 1e-9 {
		t.Fatalf("map while %s joins: %+v", x, m1)
	}
	if len(ackX.Jobs) != 0 || r.since[x] < c.jobs[m0.Job].epochRev {
		t.Fatalf("joining node's table not at the job's epoch change: %+v", ackX)
	}
	for _, n := range c.Status().Nodes {
		if n.State != wire.NodeActive {
			t.Fatalf("node %s is %s in the cluster: a job's change is the job's only", n.Addr, n.State)
		}
	}
	// Reports below the change's epoch, or with values left, end nothing.
	r.beat(a, []wire.MoveReport{{Job: m0.Job, Epoch: m0.Epoch}})
	r.beat(b, []wire.MoveReport{{Job: m0.Job, Epoch: m1.Epoch, Left: 7}})
	if c.jobs[m0.Job].move == nil {
		t.Fatal("the change ended before every node moved its values")
	}
	r.beat(a, []wire.MoveReport{{Job: m0.Job, Epoch: m1.Epoch}})
	r.beat(b, []wire.MoveReport{{Job: m0.Job, Epoch: m1.Epoch}})
	for _, n := range []string{a, b, x} {
		r.beat(n, nil)
	}
	m2 := r.mapOf(m0)
	if m2.Epoch <= m1.Epoch || stateIn(m2, x) != wire.NodeActive || len(m2.Nodes) != 3 {
		t.Fatalf("map after %s joined: %+v", x, m2)
	}

	// Shrink: the node leaves this job's map only.
	if err := c.ShrinkJob(m0.Job, "127.0.0.1:9999"); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("shrinking by a node not in the map: %v", err)
	}
	if err := c.ShrinkJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{a, b, x} {
		r.beat(n, nil)
	}
	m3 := r.mapOf(m0)
	if stateIn(m3, x) != wire.NodeDraining || countNodes(c, wire.NodeActive) != 3 {
		t.Fatalf("map while %s leaves: %+v", x, m3)
	}
	r.beat(a, []wire.MoveReport{{Job: m0.Job, Epoch: m3.Epoch}})
	r.beat(b, []wire.MoveReport{{Job: m0.Job, Epoch: m3.Epoch}})
	if c.jobs[m0.Job].move == nil {
		t.Fatal("the leaving node left before reporting its own values moved")
	}
	r.beat(x, []wire.MoveReport{{Job: m0.Job, Epoch: m3.Epoch}})
	for _, n := range []string{a, b, x} {
		r.beat(n, nil)
	}
	m4 := r.mapOf(m0)
	if _, in := mapState(m4, x); in || len(m4.Nodes) != 2 || m4.Epoch <= m3.Epoch || math.Abs(weightSum(m4.Nodes)-1) > 1e-9 {
		t.Fatalf("map after %s left: %+v", x, m4)
	}
	if err := c.ShrinkJob(m0.Job, a); err != nil {
		t.Fatal(err)
	}
}

// TestJobMapChangeWaitsForADeadNode: a joining node that dies holds the
// change open (it may come back: values not moved to it yet are still at
// their old owners), and so does a dead member that has not moved its
// values; once the dead node is lost (it leaves the map), the change ends.
// Ending it at the death lost a quarter of the values of a node that came
// back (hostile review).
func TestJobMapChangeWaitsForADeadNode(t *testing.T) {
	c := newTest(t, Config{})
	a, x := "127.0.0.1:7001", "127.0.0.1:7003"
	r := newElasticRig(t, c, a, x)
	m0, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 500})
	if err != nil || len(m0.Nodes) != 1 {
		t.Fatalf("register: %+v %v", m0, err)
	}
	home, other := m0.Nodes[0].Addr, x
	if home == x {
		other = a
	}
	if err := c.GrowJob(m0.Job, other); err != nil {
		t.Fatal(err)
	}
	if err := c.SetNodeState(other, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	r.beat(home, []wire.MoveReport{{Job: m0.Job, Epoch: c.jobs[m0.Job].epoch}})
	c.movesTick(time.Now())
	j := c.jobs[m0.Job]
	if j.move == nil {
		t.Fatal("the change ended when its joining node died")
	}
	if err := c.GrowJob(m0.Job, ""); !errors.Is(err, wire.ErrBusy) {
		t.Fatalf("a second change while one waits: %v", err)
	}
	c.mu.Lock()
	c.loseNodeLocked(j, other, false)
	c.mu.Unlock()
	c.movesTick(time.Now())
	if j.move != nil || len(c.moving) != 0 {
		t.Fatal("the change outlived its lost node")
	}
	if m := c.mapLocked(j); len(m.Nodes) != 1 || m.Nodes[0].Addr != home || len(m.Lost) != 1 {
		t.Fatalf("map after the joining node was lost: %+v", m)
	}
}

// grownRestartable starts a restartable controller (bolt or memory store)
// with nodes 7001-7003 (newElasticRig), registers job "sort" and grows it
// onto 7003; it returns the controller, the job's map at its registration
// and the three nodes.
func grownRestartable(t *testing.T, bolt bool) (*restartable, *wire.PlacementMap, [3]string) {
	t.Helper()
	rs := newRestartable(t, Config{}, bolt)
	nodes := [3]string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	newElasticRig(t, rs.ctl, nodes[0], nodes[1], nodes[2])
	m, err := rs.ctl.RegisterJob("sort", wire.JobHints{PeakMbps: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.ctl.GrowJob(m.Job, nodes[2]); err != nil {
		t.Fatal(err)
	}
	return rs, m, nodes
}

// TestJobMapChangeSurvivesRestart: a controller restarted on its state in
// the middle of a change keeps the node's role and waits for the reports.
func TestJobMapChangeSurvivesRestart(t *testing.T) {
	for _, bolt := range []bool{false, true} {
		rs, m0, nodes := grownRestartable(t, bolt)
		a, b, x := nodes[0], nodes[1], nodes[2]
		c := rs.restart()
		r := &elasticRig{t: t, c: c, since: map[string]uint64{}}
		for _, n := range []string{a, b, x} {
			mustRegister(t, c, dramNode(n, 1<<30, 1000))
		}
		j := c.jobs[m0.Job]
		if j == nil || j.move == nil || j.move.addr != x || j.grown != 1 {
			t.Fatalf("bolt %v: change not restored: %+v", bolt, j)
		}
		// No node has synced with this run: the map waits for them (a
		// restart must not hand out an epoch its nodes have not heard of;
		// hostile review).
		got := make(chan *wire.PlacementMap, 1)
		go func() {
			m, _ := c.GetMap(m0.Job, m0.Token)
			got <- m
		}()
		select {
		case m := <-got:
			t.Fatalf("bolt %v: map handed out before any node synced after the restart: %+v", bolt, m)
		case <-time.After(200 * time.Millisecond):
		}
		for _, n := range []string{a, b, x} {
			r.beat(n, nil)
		}
		if m := <-got; stateIn(m, x) != wire.NodeJoining {
			t.Fatalf("bolt %v: map after restart: %+v", bolt, m)
		}
		r.beat(a, []wire.MoveReport{{Job: m0.Job, Epoch: j.epoch}})
		r.beat(b, []wire.MoveReport{{Job: m0.Job, Epoch: j.epoch}})
		for _, n := range []string{a, b, x} {
			r.beat(n, nil) // confirm the new epoch
		}
		if m := r.mapOf(m0); stateIn(m, x) != wire.NodeActive || j.move != nil {
			t.Fatalf("bolt %v: map after the reports: %+v", bolt, m)
		}
	}
}

// TestAutoscalerGrowsAndShrinksAJob: the per-job policy adds a node to a
// job whose nodes run over the band, and sheds it when the load is gone,
// never below the nodes it was sized with.
func TestAutoscalerGrowsAndShrinksAJob(t *testing.T) {
	r := newScaleRig(t, 3, AutoscaleConfig{Cooldown: time.Hour, Smooth: 1, LowFor: 1, JobCooldown: time.Second, MinNodes: 3})
	m0 := oneNodeJob(t, r, "long", 500, false)
	home := m0.Nodes[0].Addr
	load := func(rx float64) { r.loadHome(home, rx, 0) }
	nodes := func() int {
		m, _ := r.c.GetMap(m0.Job, m0.Token)
		return len(m.Nodes)
	}
	load(950)
	r.a.Step()
	if nodes() != 1 {
		t.Fatal("grew within the job cool-down of its registration")
	}
	r.clock.advance(2 * time.Second)
	r.c.mu.Lock()
	r.c.jobs[m0.Job].created = r.clock.now().Add(-time.Minute)
	r.c.mu.Unlock()
	r.a.Step()
	load(950) // the nodes hear of the grown map: it is handed out
	if nodes() != 2 {
		t.Fatalf("job on %d node(s) after its node ran at 95%%: %s", nodes(), r.logs.msgs())
	}
	var grew bool
	for _, d := range r.a.Decisions() {
		grew = grew || (d.Action == ActionGrowJob && d.Job == m0.Job)
	}
	if !grew {
		t.Fatalf("no grow-job decision recorded: %+v", r.a.Decisions())
	}
	// The fake nodes report every value moved.
	r.c.mu.Lock()
	j := r.c.jobs[m0.Job]
	for _, mn := range j.nodes {
		j.move.done[mn.Addr] = j.epoch
	}
	r.c.finishMoveLocked(j, r.clock.now())
	r.c.mu.Unlock()
	load(100)
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if nodes() != 2 || r.c.jobs[m0.Job].move != nil {
		t.Fatal("shed a node within three job cool-downs of the last change")
	}
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if nodes() != 2 || r.c.jobs[m0.Job].move == nil {
		t.Fatalf("job did not start shedding its grown node at 10%% (%d nodes): %+v grown %d last %v now %v hist %+v", nodes(), r.a.JobUtilization(), j.grown, j.lastChange, r.clock.now(), r.c.History(home))
	}
	r.c.mu.Lock()
	for _, mn := range j.nodes {
		j.move.done[mn.Addr] = j.epoch
	}
	r.c.finishMoveLocked(j, r.clock.now())
	r.c.mu.Unlock()
	load(100) // the nodes hear of the map without the node: it is handed out
	if nodes() != 1 || j.grown != 0 {
		t.Fatalf("job on %d node(s) after shedding", nodes())
	}
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if nodes() != 1 || j.move != nil {
		t.Fatal("shrank below the nodes it was sized with")
	}
}

// TestAutoscalerStartsANodeForAJob: a job over the band with no node that
// has room gets one started through the orchestrator, and grows onto it.
func TestAutoscalerStartsANodeForAJob(t *testing.T) {
	r := newScaleRig(t, 2, AutoscaleConfig{Cooldown: time.Second, Smooth: 1, JobCooldown: time.Second, MinNodes: 2})
	m0 := oneNodeJob(t, r, "long", 500, true)
	// The job's node at 95 %, the other at 62 % (over Low, so no room):
	// the cluster (78.5 %) is inside the band.
	r.loadHome(m0.Nodes[0].Addr, 950, 620)
	r.clock.advance(2 * time.Second)
	r.a.Step()
	r.settle(3)
	if n := len(jobNodes(r.c, m0)); n != 1 {
		t.Fatalf("job grew onto a busy node: %d nodes", n)
	}
	var forJob bool
	for _, d := range r.a.Decisions() {
		forJob = forJob || (d.Action == ActionAdd && strings.Contains(d.Reason, "a job's nodes"))
	}
	if !forJob {
		t.Fatalf("no node started for the job: %+v", r.a.Decisions())
	}
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if ns := jobNodes(r.c, m0); len(ns) != 2 || !r.orch.started(ns[1].Addr) {
		t.Fatalf("job not grown onto the started node: %+v (%s)", ns, r.logs.msgs())
	}
}

// jobNodes is a job's map as the controller holds it now.
func jobNodes(c *Controller, m *wire.PlacementMap) []wire.MapNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mapLocked(c.jobs[m.Job]).Nodes
}

// TestLaggingNodeHoldsTheMapBack: a node that heartbeats without its
// table catching up holds a new epoch back for at most DeadAfter when the
// map takes nothing from it, and, when it does (a grow takes keys from
// every member), until the lease it held at the change ends: its acks may
// not reach it (a trial's proxy dropped them, and the node served the
// older map). Before, DeadAfter in both cases.
func TestLaggingNodeHoldsTheMapBack(t *testing.T) {
	for _, losing := range []bool{false, true} {
		t.Run(fmt.Sprint("losing=", losing), func(t *testing.T) {
			c := newTest(t, Config{DeadAfter: 300 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond,
				DeadNodeGrace: time.Second})
			a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
			r := newElasticRig(t, c, a, b, x)
			m0, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000})
			if err != nil || len(m0.Nodes) != 2 || !slices.ContainsFunc(m0.Nodes, func(n wire.MapNode) bool { return n.Addr == b }) {
				t.Fatalf("register: %+v %v", m0, err)
			}
			stuck := r.since[b]
			start := time.Now()
			if losing {
				err = c.GrowJob(m0.Job, x)
			} else {
				err = c.SetNodeState(a, wire.NodeDead) // the epoch moves; nothing leaves b
			}
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := 250*time.Millisecond, 1*time.Second
			if losing {
				lo, hi = 1200*time.Millisecond, 3*time.Second // b's lease: DeadAfter + the grace
			}
			for {
				r.beat(x, nil)
				// b heartbeats but never applies its acks.
				if _, err := c.Heartbeat(&wire.Heartbeat{Addr: b, Since: stuck}); err != nil {
					t.Fatal(err)
				}
				if losing {
					r.beat(a, nil)
				}
				if m := r.mapOf(m0); m.Epoch > m0.Epoch {
					if took := time.Since(start); took < lo {
						t.Fatalf("published %v after the change with node %s behind; want %v at least", took, b, lo)
					}
					return
				}
				if time.Since(start) > hi {
					t.Fatalf("a lagging node held the map back past %v", hi)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestHintedJobKeepsItsNodesAtTheBand: a job whose hints sized its nodes
// for the load it runs (its nodes just over 80 %) does not grow: growth
// answers load beyond the allotment.
func TestHintedJobKeepsItsNodesAtTheBand(t *testing.T) {
	r := newScaleRig(t, 3, AutoscaleConfig{Cooldown: time.Hour, Smooth: 1, JobCooldown: time.Second, MinNodes: 3})
	m0 := oneNodeJob(t, r, "sort", 800, true) // one node at the band's high
	r.loadHome(m0.Nodes[0].Addr, 870, 0)
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if n := len(jobNodes(r.c, m0)); n != 1 {
		t.Fatalf("a job running at its hint grew to %d nodes", n)
	}
}

// TestHurriedHeartbeatKeepsRates: a heartbeat an ack asked for at once
// (its rates cover a sliver of time) does not move the node's figures.
func TestHurriedHeartbeatKeepsRates(t *testing.T) {
	c := newTest(t, Config{})
	a := "127.0.0.1:7001"
	r := newElasticRig(t, c, a)
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: a, Since: r.since[a], RxMbps: 100}); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.nodes[a].hurried = true // as after an ack with More
	c.mu.Unlock()
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: a, Since: r.since[a], RxMbps: 4500}); err != nil {
		t.Fatal(err)
	}
	if h := c.History(a); len(h) == 0 || h[len(h)-1].RxMbps != 100 {
		t.Fatalf("a hurried heartbeat's rates entered the history: %+v", h)
	}
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: a, Since: r.since[a], RxMbps: 300}); err != nil {
		t.Fatal(err)
	}
	if h := c.History(a); h[len(h)-1].RxMbps != 300 {
		t.Fatalf("the next heartbeat's rates were dropped: %+v", h)
	}
}

// oneNodeJob registers a job with a bandwidth hint that fits one node and
// checks that it got one; aged, its registration is past any job
// cool-down on the rig's clock.
func oneNodeJob(t *testing.T, r *scaleRig, name string, mbps float64, aged bool) *wire.PlacementMap {
	t.Helper()
	m, err := r.c.RegisterJob(name, wire.JobHints{PeakMbps: mbps})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("register: %+v %v", m, err)
	}
	if aged {
		r.c.mu.Lock()
		r.c.jobs[m.Job].created = r.clock.now().Add(-time.Minute)
		r.c.mu.Unlock()
	}
	return m
}

// loadHome heartbeats every node: home at rx Mb/s, the others at other.
func (r *scaleRig) loadHome(home string, rx, other float64) {
	for _, n := range r.c.Status().Nodes {
		v := other
		if n.Addr == home {
			v = rx
		}
		r.heartbeat(n.Addr, v, 0, nil)
	}
}

// grown grows job id's map onto addr and ends the change at once, as if
// every node had reported its values moved; it returns the job.
func (r *scaleRig) grown(id, addr string) *job {
	r.t.Helper()
	if err := r.c.GrowJob(id, addr); err != nil {
		r.t.Fatal(err)
	}
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	j := r.c.jobs[id]
	for _, mn := range j.nodes {
		j.move.done[mn.Addr] = j.epoch
	}
	r.c.finishMoveLocked(j, r.clock.now())
	return j
}
