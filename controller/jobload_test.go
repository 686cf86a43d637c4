package controller

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/pocketstore/pocket/orchestrator"
	"github.com/pocketstore/pocket/wire"
)

// TestJobLoadsSmoothed: a job's own traffic on a node is the larger of
// its rx and tx averaged over the node's last heartbeats, a heartbeat
// that does not list the job counting as none; the latest heartbeat
// decides whether the node reports per-job figures.
func TestJobLoadsSmoothed(t *testing.T) {
	var l jobLoads
	if l.mbps("a", 3) != 0 || l.reports || l.latest("a") != (wire.JobLoad{}) {
		t.Fatal("an empty record reports figures")
	}
	l.add([]wire.JobLoad{{Job: "a", RxMbps: 100, TxMbps: 40}}, true)
	l.add([]wire.JobLoad{{Job: "a", RxMbps: 10, TxMbps: 300, Bytes: 7}, {Job: "b", RxMbps: 50}}, true)
	if !l.reports || l.mbps("a", 1) != 300 || l.mbps("a", 2) != 200 || l.mbps("a", 9) != 200 || l.mbps("b", 2) != 25 {
		t.Fatalf("a over 1, 2, 9: %v %v %v; b over 2: %v; want 300, 200, 200, 25",
			l.mbps("a", 1), l.mbps("a", 2), l.mbps("a", 9), l.mbps("b", 2))
	}
	if got := l.latest("a"); got.Bytes != 7 || got.TxMbps != 300 {
		t.Fatalf("latest %+v", got)
	}
	l.add(nil, true) // a node that counts per job, which no job used
	if !l.reports || l.mbps("a", 1) != 0 {
		t.Fatalf("a counting node listing no job: reports %v, a over 1 %v; want true, 0", l.reports, l.mbps("a", 1))
	}
	l.add(nil, false) // an older node's heartbeat
	if l.reports || l.mbps("a", 4) != (100+300)/4.0 {
		t.Fatalf("after a heartbeat without figures: reports %v, a over 4 %v", l.reports, l.mbps("a", 4))
	}
	for i := 0; i < 2*jobLoadLen; i++ {
		l.add([]wire.JobLoad{{Job: "c", RxMbps: float64(i)}}, true)
	}
	if l.n != jobLoadLen || l.mbps("a", 100) != 0 || l.mbps("c", 100) != float64(2*jobLoadLen-1+jobLoadLen)/2 {
		t.Fatalf("bounded: %d kept, a %v, c %v", l.n, l.mbps("a", 100), l.mbps("c", 100))
	}
}

// heartbeatLoads sends addr's heartbeat at rx Mb/s with the per-job
// figures loads (nil: an older node's, with none), as an agent does (see
// scaleRig.heartbeat).
func (r *scaleRig) heartbeatLoads(addr string, rx float64, loads []wire.JobLoad) {
	r.t.Helper()
	r.beatTraffic(addr, rx, 0, loads)
}

// sharedNodeRig is a scale rig whose first node holds the jobs named,
// each hinted at 300 Mb/s (of the node's 1000) and past its cool-down,
// and two more nodes with room to grow onto (started after the jobs
// registered, so both are placed on the first). It returns the jobs' maps
// and the shared node.
func sharedNodeRig(t *testing.T, names ...string) (*scaleRig, []*wire.PlacementMap, string) {
	t.Helper()
	// MinNodes 3: the cluster keeps the three nodes (no scale-in).
	r := newScaleRig(t, 1, AutoscaleConfig{Cooldown: time.Hour, Smooth: 1, JobCooldown: time.Second, MinNodes: 3})
	var ms []*wire.PlacementMap
	for _, name := range names {
		ms = append(ms, oneNodeJob(t, r, name, 300, true))
	}
	home := ms[0].Nodes[0].Addr
	for _, m := range ms {
		if m.Nodes[0].Addr != home {
			t.Fatalf("jobs placed on %s and %s; want one node", home, m.Nodes[0].Addr)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := r.orch.Start(context.Background(), orchestrator.NodeSpec{}); err != nil {
			t.Fatal(err)
		}
	}
	return r, ms, home
}

// loadShared heartbeats every node: home at the jobs' summed traffic,
// listing each job's (perJob false: as an older node, without them), the
// others idle.
func (r *scaleRig) loadShared(home string, ms []*wire.PlacementMap, mbps []float64, perJob bool) {
	r.t.Helper()
	var sum float64
	var loads []wire.JobLoad
	for i, m := range ms {
		sum += mbps[i]
		loads = append(loads, wire.JobLoad{Job: m.Job, RxMbps: mbps[i], Bytes: 1 << 20})
	}
	if !perJob {
		loads = nil
	}
	for _, n := range r.c.Status().Nodes {
		if n.Addr == home {
			r.heartbeatLoads(n.Addr, sum, loads)
		} else {
			r.heartbeatLoads(n.Addr, 0, nil)
		}
	}
}

func jobUtilOf(a *Autoscaler, job string) JobUtil {
	for _, u := range a.JobUtilization() {
		if u.Job == job {
			return u
		}
	}
	return JobUtil{}
}

// TestIdleJobBesideBusyDoesNotGrow: two jobs share a node running at 95 %,
// one busy (940 Mb/s, beyond its 300 Mb/s allotment), one idle (10 Mb/s).
// With the node's per-job figures the busy one grows and the idle one
// keeps its node. The old controller split the node's traffic by
// allotment (475 Mb/s each, both over 1.1x 300) and grew both; that split
// stays for a node that reports no per-job figures.
func TestIdleJobBesideBusyDoesNotGrow(t *testing.T) {
	r, ms, home := sharedNodeRig(t, "busy", "idle")
	busy, idle := ms[0], ms[1]
	r.loadShared(home, ms, []float64{0, 0}, false)
	r.loadShared(home, ms, []float64{940, 10}, false) // an older node
	if b, i := jobUtilOf(r.a, busy.Job), jobUtilOf(r.a, idle.Job); math.Abs(b.Mbps-475) > 1e-6 || math.Abs(i.Mbps-475) > 1e-6 {
		t.Fatalf("without per-job figures: busy %.1f, idle %.1f Mb/s; want the split by allotment, 475 each", b.Mbps, i.Mbps)
	}
	r.loadShared(home, ms, []float64{940, 10}, true)
	b, i := jobUtilOf(r.a, busy.Job), jobUtilOf(r.a, idle.Job)
	if b.Mbps != 940 || i.Mbps != 10 || b.Net < 0.94 || i.Net < 0.94 {
		t.Fatalf("with per-job figures: busy %+v, idle %+v; want their own 940 and 10 Mb/s on a node at 95%%", b, i)
	}
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if n := len(jobNodes(r.c, idle)); n != 1 {
		t.Errorf("the idle job grew to %d nodes beside a busy one: %s", n, r.logs.msgs())
	}
	if n := len(jobNodes(r.c, busy)); n != 2 {
		t.Errorf("the busy job, over its allotment on a node at 95%%, has %d node(s); want 2", n)
	}
}

// TestJobsOverAllotmentOnASharedBusyNodeGrow: the network's test is the
// nodes' load (the band) and the job's own traffic against its allotment,
// not the job's own share of its nodes: two jobs at 470 Mb/s each (each
// under half of the node, beyond its 300 Mb/s allotment) on a node at
// 94 % both grow; at 250 Mb/s each (within their allotments) on a node at
// 50 % neither does; at 250 Mb/s each on a node at 90 % because of 400
// Mb/s that no job whose map holds the node sends (requests from outside
// the maps: no growth of their owner relieves it), both grow, moving part
// of their keys away. Before, that last case grew neither: the node sat
// over the band with nothing reacting (hostile review).
func TestJobsOverAllotmentOnASharedBusyNodeGrow(t *testing.T) {
	for _, c := range []struct {
		mbps, node float64
		nodes      int
	}{{470, 940, 2}, {250, 500, 1}, {250, 900, 2}} {
		r, ms, home := sharedNodeRig(t, "a", "b")
		r.loadShared(home, ms, []float64{c.mbps, c.mbps}, true)
		r.heartbeatLoads(home, c.node, []wire.JobLoad{{Job: ms[0].Job, RxMbps: c.mbps}, {Job: ms[1].Job, RxMbps: c.mbps}})
		r.clock.advance(2 * time.Second)
		r.a.Step()
		for _, m := range ms {
			if n := len(jobNodes(r.c, m)); n != c.nodes {
				t.Errorf("two jobs at %.0f Mb/s on a node at %.0f: %s has %d node(s), want %d", c.mbps, c.node, m.Job, n, c.nodes)
			}
		}
	}
}

// TestNeighbourOfASkewedJobMovesAway: a job within its whole allotment
// (1200 Mb/s over two nodes) that sends 750 Mb/s to the one node it shares
// with a neighbour (a hot key, or keys chosen to hash there) is beyond its
// allotment on that node, which runs at 100 %. Growing it would not move
// a hot key; the neighbour, within its own allotment there, grows once and
// moves part of its keys away. Before the per-job figures' follow-up,
// neither grew and the cluster added nothing (hostile review).
func TestNeighbourOfASkewedJobMovesAway(t *testing.T) {
	r := newScaleRig(t, 2, AutoscaleConfig{Cooldown: time.Hour, Smooth: 1, JobCooldown: time.Second, MinNodes: 3})
	v := oneNodeJob(t, r, "neighbour", 300, true)
	home := v.Nodes[0].Addr
	a, err := r.c.RegisterJob("skewed", wire.JobHints{PeakMbps: 1200})
	if err != nil || len(a.Nodes) != 2 {
		t.Fatalf("skewed job: %v, %+v", err, a)
	}
	r.c.mu.Lock()
	r.c.jobs[a.Job].created = r.clock.now().Add(-time.Minute)
	r.c.mu.Unlock()
	if _, err := r.orch.Start(context.Background(), orchestrator.NodeSpec{}); err != nil {
		t.Fatal(err)
	}
	beatHome(r, home, 1000, []wire.JobLoad{{Job: a.Job, RxMbps: 750}, {Job: v.Job, RxMbps: 250}})
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if n := len(jobNodes(r.c, v)); n != 2 {
		t.Fatalf("the neighbour has %d nodes, want 2: %s", n, r.logs.msgs())
	}
	if n := len(jobNodes(r.c, a)); n != 2 {
		t.Fatalf("the skewed job, within its whole allotment, has %d nodes", n)
	}
}

// TestCapacityHogDoesNotGrowIdle: a job holding 950 MiB of a shared 1 GiB
// node grows; the job beside it, holding nothing there, does not. Before,
// the capacity test was the node's used share alone and both grew
// (hostile review).
func TestCapacityHogDoesNotGrowIdle(t *testing.T) {
	r, ms, home := sharedNodeRig(t, "hog", "idle")
	hog, idle := ms[0], ms[1]
	for _, n := range r.c.Status().Nodes {
		var used int64
		var loads []wire.JobLoad
		if n.Addr == home {
			used = 950 << 20
			loads = []wire.JobLoad{{Job: hog.Job, RxMbps: 1, Bytes: 950 << 20}, {Job: idle.Job, RxMbps: 0.1}}
		}
		hb := &wire.Heartbeat{Addr: n.Addr, Proof: dramNode(n.Addr, 0, 0).Proof, RxMbps: 1, Loads: loads,
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: used, Mbps: 1000}}}
		if _, err := r.c.Heartbeat(hb); err != nil {
			t.Fatal(err)
		}
	}
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if n := len(jobNodes(r.c, idle)); n != 1 {
		t.Errorf("the idle job grew to %d nodes for another's bytes", n)
	}
	if n := len(jobNodes(r.c, hog)); n != 2 {
		t.Errorf("the hog has %d node(s), want 2", n)
	}
}

// TestStatusShowsOwnFigures: the status reply gives each job its own
// traffic and bytes as its nodes report them (pocket status's USED
// columns), the idle job beside a busy one its own near nothing.
func TestStatusShowsOwnFigures(t *testing.T) {
	r, ms, home := sharedNodeRig(t, "busy", "idle")
	for i := 0; i < 3; i++ {
		r.loadShared(home, ms, []float64{900, 2}, true)
	}
	got := map[string]wire.JobStatus{}
	for _, js := range r.c.Status().Jobs {
		got[js.Job] = js
	}
	if b, i := got[ms[0].Job], got[ms[1].Job]; b.UsedMbps != 900 || i.UsedMbps != 2 || b.UsedBytes != 1<<20 {
		t.Fatalf("status: busy %.0f Mb/s %d B, idle %.0f Mb/s; want 900, 1 MiB and 2", b.UsedMbps, b.UsedBytes, i.UsedMbps)
	}
}

// TestCountingNodeListingNoJob: a node that counts per job (its
// heartbeat carries its incarnation) and lists no job has bytes and
// traffic of no job: none of its jobs is charged with them. Before, an
// empty list read as an older node's, and the node's figures were split
// among its jobs by allotment: pocket status showed a job that never put
// a byte holding most of another job's first values (and the per-job
// policy and the profiles read the same figures).
func TestCountingNodeListingNoJob(t *testing.T) {
	r, _, home := sharedNodeRig(t, "never", "other")
	for i := 0; i < 3; i++ {
		hb := &wire.Heartbeat{Addr: home, Proof: dramNode(home, 0, 0).Proof, RxMbps: 400, Incarnation: 7,
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 64 << 20, Mbps: 1000}}}
		if _, err := r.c.Heartbeat(hb); err != nil {
			t.Fatal(err)
		}
	}
	for _, js := range r.c.Status().Jobs {
		if js.UsedBytes != 0 || js.UsedMbps != 0 {
			t.Errorf("job %s: %d B, %.0f Mb/s on a node that lists no job; want 0 and 0", js.Job, js.UsedBytes, js.UsedMbps)
		}
	}
}

// finishMove ends a job's map change as if every node reported its
// values moved; false when none is in progress.
func finishMove(r *scaleRig, id string) bool {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	j := r.c.jobs[id]
	if j == nil || j.move == nil {
		return false
	}
	for _, mn := range j.nodes {
		j.move.done[mn.Addr] = j.epoch
	}
	r.c.finishMoveLocked(j, r.clock.now())
	return true
}

// holdsNode reports whether job id's map holds addr.
func holdsNode(c *Controller, id, addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, mn := range c.jobs[id].nodes {
		if mn.Addr == addr {
			return true
		}
	}
	return false
}

// beats every active node: home at homeRx with loads, the others idle.
func beatHome(r *scaleRig, home string, homeRx float64, loads []wire.JobLoad) {
	for _, n := range r.c.Status().Nodes {
		if n.State != wire.NodeActive {
			continue
		}
		if n.Addr == home {
			r.heartbeatLoads(n.Addr, homeRx, loads)
		} else {
			r.heartbeatLoads(n.Addr, 0, nil)
		}
	}
}

// changesOf counts a job's grow and shrink decisions.
func changesOf(r *scaleRig, id string) (grows, shrinks int) {
	for _, d := range r.a.Decisions() {
		switch {
		case d.Job == id && d.Action == ActionGrowJob:
			grows++
		case d.Job == id && d.Action == ActionShrinkJob:
			shrinks++
		}
	}
	return grows, shrinks
}

// TestOutsideTrafficGrowsAVictimOnce: a tenant sends 945 Mb/s to a node
// outside its map, where a victim has 5 Mb/s of its own. The victim grows
// once, moving part of its keys away, and keeps that node while its node
// stays hot; it does not grow every cool-down onto started nodes. Before,
// it grew to 5 nodes, 3 of them started for it (second hostile review).
func TestOutsideTrafficGrowsAVictimOnce(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{Cooldown: time.Second, Smooth: 1, JobCooldown: time.Second, MinNodes: 1, MaxNodes: 6})
	v := oneNodeJob(t, r, "victim", 300, true)
	if _, err := r.orch.Start(context.Background(), orchestrator.NodeSpec{}); err != nil {
		t.Fatal(err)
	}
	x := oneNodeJob(t, r, "attacker", 700, true)
	home := v.Nodes[0].Addr
	if holdsNode(r.c, x.Job, home) {
		t.Fatal("the attacker was placed on the victim's node")
	}
	grows, shrinks := steadyHome(r, v.Job, home, 950, []wire.JobLoad{{Job: v.Job, RxMbps: 5}, {Job: x.Job, RxMbps: 945}})
	if n := len(jobNodes(r.c, v)); n != 2 || grows != 1 || shrinks != 0 {
		t.Fatalf("victim on %d nodes after %d grows and %d shrinks; want 2, 1 and 0", n, grows, shrinks)
	}
}

// steadyHome runs 30 rounds of 2 s in which home's heartbeat reports rx
// Mb/s and the per-job loads, the autoscaler steps and job's changes
// finish, and returns job's grows and shrinks.
func steadyHome(r *scaleRig, job, home string, rx float64, loads []wire.JobLoad) (grows, shrinks int) {
	for range 30 {
		beatHome(r, home, rx, loads)
		r.clock.advance(2 * time.Second)
		r.a.Step()
		finishMove(r, job)
		r.awaitStarts()
	}
	return changesOf(r, job)
}

// TestHotKeyGrowsOnce: a job whose traffic, 950 Mb/s against a 300 Mb/s
// allotment, is one key's grows once for its own load and then stays: the
// hot key stays on its node, so more nodes would not relieve it, and the
// job does not shed a node while that node is over the band. Before, it
// grew to MaxNodes and then shrank and grew again for ever (second hostile
// review: 11 grows, 6 shrinks in 30 rounds).
func TestHotKeyGrowsOnce(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{Cooldown: time.Second, Smooth: 1, JobCooldown: time.Second, MinNodes: 1, MaxNodes: 6})
	v := oneNodeJob(t, r, "hotkey", 300, true)
	home := v.Nodes[0].Addr
	grows, shrinks := steadyHome(r, v.Job, home, 950, []wire.JobLoad{{Job: v.Job, RxMbps: 950}})
	if n := len(jobNodes(r.c, v)); n != 2 || grows != 1 || shrinks != 0 {
		t.Fatalf("one-key job on %d nodes after %d grows and %d shrinks; want 2, 1 and 0", n, grows, shrinks)
	}
}

// TestIdlePartnersAreReleased: three jobs share node A at 750 Mb/s (under
// the band) and each was grown onto its own idle node. The idle nodes are
// shed or drained: taking an idle partner out of a map adds nothing to A.
// Before, both the jobs' shrink and scale-in spread A's load over one node
// fewer and held the three idle nodes for ever (second hostile review).
func TestIdlePartnersAreReleased(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{Cooldown: time.Second, Smooth: 1, JobCooldown: time.Second, MinNodes: 1, MaxNodes: 8})
	var ms []*wire.PlacementMap
	for i := 0; i < 3; i++ {
		ms = append(ms, oneNodeJob(t, r, fmt.Sprintf("j%d", i), 100, true))
	}
	home := ms[0].Nodes[0].Addr
	for i := 0; i < 3; i++ {
		if _, err := r.orch.Start(context.Background(), orchestrator.NodeSpec{}); err != nil {
			t.Fatal(err)
		}
	}
	var others []string
	for _, n := range r.c.Status().Nodes {
		if n.Addr != home {
			others = append(others, n.Addr)
		}
	}
	for i, m := range ms {
		if err := r.c.GrowJob(m.Job, others[i]); err != nil {
			t.Fatal(err)
		}
		finishMove(r, m.Job)
	}
	r.clock.advance(time.Minute)
	loads := []wire.JobLoad{{Job: ms[0].Job, RxMbps: 250}, {Job: ms[1].Job, RxMbps: 250}, {Job: ms[2].Job, RxMbps: 250}}
	for round := 0; round < 10; round++ {
		beatHome(r, home, 750, loads)
		r.clock.advance(5 * time.Second)
		r.a.Step()
		for _, m := range ms {
			finishMove(r, m.Job)
		}
	}
	var released int
	for _, d := range r.a.Decisions() {
		released += len(d.Drain)
	}
	if released == 0 {
		t.Fatalf("no idle partner shed or drained in 10 rounds: %s", r.logs.msgs())
	}
}

// TestFullNodeWithinSlackPlusOutsider: two jobs each within 1.1x of their
// 400 Mb/s allotments (440 each) share a node, and 120 Mb/s come from no
// job whose map holds it (a node counts such traffic too): the node runs
// at 100 %, and the two jobs move part of their keys away. Before, nothing reacted (second hostile
// review): the mapped jobs' traffic alone was over the band, so the
// outside load was not counted.
func TestFullNodeWithinSlackPlusOutsider(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{Cooldown: time.Hour, Smooth: 1, JobCooldown: time.Second, MinNodes: 3})
	ms := []*wire.PlacementMap{oneNodeJob(t, r, "a", 400, true), oneNodeJob(t, r, "b", 400, true)}
	home := ms[0].Nodes[0].Addr
	if ms[1].Nodes[0].Addr != home {
		t.Fatal("the jobs do not share a node")
	}
	for i := 0; i < 2; i++ {
		if _, err := r.orch.Start(context.Background(), orchestrator.NodeSpec{}); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 2; round++ {
		beatHome(r, home, 1000, []wire.JobLoad{{Job: ms[0].Job, RxMbps: 440}, {Job: ms[1].Job, RxMbps: 440}, {Job: "outsider-1", RxMbps: 120}})
		r.clock.advance(2 * time.Second)
		r.a.Step()
	}
	for _, m := range ms {
		if n := len(jobNodes(r.c, m)); n != 2 {
			t.Errorf("%s on %d node(s) on a node at 100%%; want 2", m.Job, n)
		}
	}
}
