package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// pairJobBeside is pairJob with a third node, x (1 GiB of DRAM, 1,000
// Mb/s), registered after the job: outside its map.
func pairJobBeside(t *testing.T, c *Controller) (a, b, x string) {
	t.Helper()
	a, b = pairJob(t, c)
	x = "127.0.0.1:7003"
	mustRegister(t, c, dramNode(x, 1<<30, 1000))
	return a, b, x
}

// theJob is the one job of c, with a copy of its map's nodes.
func theJob(t *testing.T, c *Controller) (*job, *wire.PlacementMap) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(c.jobs))
	}
	for _, j := range c.jobs {
		return j, &wire.PlacementMap{Nodes: append([]wire.MapNode(nil), j.nodes...)}
	}
	return nil, nil
}

// TestDrainGrowsAJobOntoANodeWithRoom: a drain whose values the job's
// other node has no room for (1,300 MiB of the job's onto a 1 GiB node)
// goes ahead when an empty node is active beside them: the job's map
// gains it, joining, and the drained node's share goes to it. Once the
// drained node has left and the node kept has moved the job's values the
// joined one owns, it is an ordinary member. On the old code the drain was
// refused (no space) beside the empty node: a job's map did not grow while
// a node of it drained.
func TestDrainGrowsAJobOntoANodeWithRoom(t *testing.T) {
	logs := &logSink{}
	c := newTest(t, Config{Logger: logs.logger()})
	a, b, x := pairJobBeside(t, c)
	usedBeat(c, a, 700<<20)
	usedBeat(c, b, 600<<20)
	usedBeat(c, x, 0)
	_, before := theJob(t, c)
	if _, err := c.Drain(a, time.Minute); err != nil {
		t.Fatalf("drain of 700 MiB beside an empty node: %v", err)
	}
	j, nodes := theJob(t, c)
	if st, _ := nodeState(c, a); len(nodes.Nodes) != 3 || stateIn(nodes, x) != wire.NodeJoining || st != wire.NodeDraining || stateIn(nodes, b) != wire.NodeActive {
		t.Fatalf("map after the drain's order: %+v (before %+v); want %s joining, %s draining", nodes, before, x, a)
	}
	if !logs.contains("job map grows to take a draining node's values") {
		t.Fatalf("the growth is not logged: %s", logs.msgs())
	}
	for _, mn := range nodes.Nodes {
		if mn.Weight < 0.33 || mn.Weight > 0.34 {
			t.Fatalf("weights %+v; want the joining node at the draining one's weight, a third each", nodes)
		}
	}

	// The drained node, its table synced, leaves; the node kept reports
	// its move done.
	syncNode(t, c, a)
	c.heartbeat(&wire.Heartbeat{Addr: a, Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 1}}})
	c.drainTick(time.Now())
	if _, nodes = theJob(t, c); len(nodes.Nodes) != 2 || stateIn(nodes, x) != wire.NodeJoining {
		t.Fatalf("map after the drained node left: %+v; want %s still joining", nodes, x)
	}
	c.mu.Lock()
	epoch := j.epoch
	c.mu.Unlock()
	c.heartbeat(&wire.Heartbeat{Addr: b, Moves: []wire.MoveReport{{Job: j.id, Epoch: epoch, Left: 0}},
		Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 650 << 20, Mbps: 1000}}})
	if _, nodes = theJob(t, c); len(nodes.Nodes) != 2 || stateIn(nodes, x) != wire.NodeActive || stateIn(nodes, b) != wire.NodeActive {
		t.Fatalf("map once the move is done: %+v; want %s and %s active", nodes, b, x)
	}
}

// TestDrainGrowthThatDoesNotFitChangesNothing: the only node beside the
// job's has 124 MiB spare; joining with that share, it leaves the node
// kept with more than it holds. The drain is refused, naming the node
// kept, and neither the map nor the epoch changes.
func TestDrainGrowthThatDoesNotFitChangesNothing(t *testing.T) {
	c := newTest(t, Config{})
	a, b, x := pairJobBeside(t, c)
	usedBeat(c, a, 700<<20)
	usedBeat(c, b, 600<<20)
	usedBeat(c, x, 900<<20)
	j, before := theJob(t, c)
	c.mu.Lock()
	epoch := j.epoch
	c.mu.Unlock()
	_, err := c.Drain(a, time.Minute)
	if !errors.Is(err, wire.ErrNoSpace) || !strings.Contains(err.Error(), "on node "+b) || !strings.Contains(err.Error(), "start another node") {
		t.Fatalf("drain with too little room beside: %v; want no space on %s", err, b)
	}
	_, after := theJob(t, c)
	c.mu.Lock()
	moving, now := j.move != nil, j.epoch
	c.mu.Unlock()
	if len(after.Nodes) != len(before.Nodes) || stateIn(after, x) != 0 || moving || now != epoch {
		t.Fatalf("the refused drain changed the job: %+v (epoch %d, was %d), moving %v", after, now, epoch, moving)
	}
	if st, _ := nodeState(c, a); st != wire.NodeActive {
		t.Fatalf("refused node is %v", st)
	}
}

// TestRunningDrainGrowsNoJob: a job grows only as a drain of its node
// begins. A drain accepted on figures that showed room, whose node then
// reports values their owners have no room for, leaves the job's map
// alone: values it moved already are at the node kept, which is neither
// their owner under a grown map nor their old one. Nor does a drain
// ordered while another node of the job drains grow the job: the same
// holds of the values that node moved. That drain is refused (busy: the
// node takes the other's values, TestDrainOfANodeTakingValuesIsRefused).
func TestRunningDrainGrowsNoJob(t *testing.T) {
	t.Run("stuck drain", func(t *testing.T) {
		c := newTest(t, Config{})
		a, b := pairJob(t, c)
		usedBeat(c, a, 300<<20)
		usedBeat(c, b, 600<<20)
		if _, err := c.Drain(a, time.Minute); err != nil {
			t.Fatal(err)
		}
		x := "127.0.0.1:7003"
		mustRegister(t, c, dramNode(x, 1<<30, 1000))
		usedBeat(c, x, 0)
		usedBeat(c, b, 1000<<20)
		c.heartbeat(&wire.Heartbeat{Addr: a, Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 0},
			{Name: MetricDrainLeft, Value: 19}, {Name: MetricDrainNoRoom, Value: 19}},
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 19 << 20, Mbps: 1000}}})
		c.drainTick(time.Now())
		if _, nodes := theJob(t, c); len(nodes.Nodes) != 2 || stateIn(nodes, x) != 0 {
			t.Fatalf("a running drain grew its job: %+v", nodes)
		}
	})
	t.Run("another node drains", func(t *testing.T) {
		c := newTest(t, Config{})
		a, b, d := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7004"
		for _, addr := range []string{a, b, d} {
			mustRegister(t, c, dramNode(addr, 1<<30, 1000))
		}
		if m, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 3000}); err != nil || len(m.Nodes) != 3 {
			t.Fatalf("register: %+v %v", m, err)
		}
		x := "127.0.0.1:7003"
		mustRegister(t, c, dramNode(x, 1<<30, 1000))
		usedBeat(c, a, 600<<20)
		usedBeat(c, b, 500<<20)
		usedBeat(c, d, 10<<20)
		usedBeat(c, x, 0)
		if _, err := c.Drain(d, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Drain(a, time.Minute); !errors.Is(err, wire.ErrBusy) || !strings.Contains(err.Error(), "node "+d+" of that job's map drains") {
			t.Fatalf("drain beside a running drain of the job's: %v; want busy, naming %s", err, d)
		}
		if _, nodes := theJob(t, c); len(nodes.Nodes) != 3 || stateIn(nodes, x) != 0 {
			t.Fatalf("a job whose node drains grew: %+v", nodes)
		}
	})
}

// TestDrainGrowthSurvivesRestart: the node a drain gave the job is still
// joining after a controller restart, its change restored, and joins once
// the drain and the move are over.
func TestDrainGrowthSurvivesRestart(t *testing.T) {
	r := newRestartable(t, Config{}, false)
	a, b, x := pairJobBeside(t, r.ctl)
	usedBeat(r.ctl, a, 700<<20)
	usedBeat(r.ctl, b, 600<<20)
	usedBeat(r.ctl, x, 0)
	if _, err := r.ctl.Drain(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	c := r.restart()
	j, nodes := theJob(t, c)
	c.mu.Lock()
	mv := j.move
	c.mu.Unlock()
	if stateIn(nodes, x) != wire.NodeJoining || mv == nil || mv.addr != x {
		t.Fatalf("after a restart: map %+v, change %+v; want %s joining", nodes, mv, x)
	}
	for _, addr := range []string{a, b, x} {
		usedBeat(c, addr, 0)
	}
	syncNode(t, c, a)
	c.heartbeat(&wire.Heartbeat{Addr: a, Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 1}}})
	c.drainTick(time.Now())
	c.mu.Lock()
	epoch := j.epoch
	c.mu.Unlock()
	c.heartbeat(&wire.Heartbeat{Addr: b, Moves: []wire.MoveReport{{Job: j.id, Epoch: epoch, Left: 0}}})
	if _, nodes = theJob(t, c); len(nodes.Nodes) != 2 || stateIn(nodes, x) != wire.NodeActive {
		t.Fatalf("map once drained and moved after a restart: %+v", nodes)
	}
}

// TestDrainOfANodeTakingValuesIsRefused: a node that takes values of a
// job whose map changes is not drained until the change has ended (busy,
// naming the job and the change), and the refusal changes nothing: the
// node a drain gave a job (joining), and the node the job kept (taking
// the drained node's values). A value moved to either would move again
// and be where no reader looks: a hostile trial drained the joining node,
// and acknowledged values read "not found" while deleted ones came back.
// On the old code both drains were taken.
func TestDrainOfANodeTakingValuesIsRefused(t *testing.T) {
	logs := &logSink{}
	c := newTest(t, Config{Logger: logs.logger()})
	a, b, x := pairJobBeside(t, c)
	usedBeat(c, a, 700<<20)
	usedBeat(c, b, 600<<20)
	usedBeat(c, x, 0)
	if _, err := c.Drain(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	j, before := theJob(t, c)
	c.mu.Lock()
	epoch := j.epoch
	c.mu.Unlock()
	for addr, why := range map[string]string{x: "it joins that job's map", b: "node " + a + " of that job's map drains"} {
		_, err := c.DrainWith(addr, DrainOptions{Deadline: time.Minute, LoseOverflow: true})
		if !errors.Is(err, wire.ErrBusy) || !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), j.id) {
			t.Fatalf("drain of %s: %v; want busy, naming job %s and %q", addr, err, j.id, why)
		}
		if st, _ := nodeState(c, addr); st != wire.NodeActive {
			t.Fatalf("refused node %s is %v", addr, st)
		}
	}
	_, after := theJob(t, c)
	c.mu.Lock()
	now := j.epoch
	c.mu.Unlock()
	if now != epoch || len(after.Nodes) != len(before.Nodes) {
		t.Fatalf("the refused drains changed the job: %+v (epoch %d, was %d)", after.Nodes, now, epoch)
	}
	if !logs.contains("controller: drain refused") {
		t.Fatalf("the refusals are not logged: %s", logs.msgs())
	}
}

// TestDrainGrowthLeavesTheJoinerRoom: the node a drain gives a job takes
// at most seven eighths of its spare bytes of the job (DRAM chunks add up
// to an eighth to a value): 1,300 MiB of the job beside a node with 424
// MiB spare gives it at most 371 MiB. Before, the plan filled it to the
// byte, its values found no room in slabs, and the drain was held past its
// deadline (a hostile trial).
func TestDrainGrowthLeavesTheJoinerRoom(t *testing.T) {
	c := newTest(t, Config{})
	a, b, x := pairJobBeside(t, c)
	usedBeat(c, a, 700<<20)
	usedBeat(c, b, 600<<20)
	usedBeat(c, x, 600<<20)
	if _, err := c.Drain(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	_, m := theJob(t, c)
	var wx, wb float64
	for _, mn := range m.Nodes {
		switch mn.Addr {
		case x:
			wx = mn.Weight
		case b:
			wb = mn.Weight
		}
	}
	share := 1300 * wx / (wx + wb) // MiB, once a has left
	if wx == 0 || share > 424*7/8+0.5 {
		t.Fatalf("the joining node's share %.1f MiB of 424 MiB spare (weights %+v); want at most 371", share, m.Nodes)
	}
}

// TestDrainRefusalSaysWhyJobsDidNotGrow: three jobs on the drained node
// send the node they keep more than it holds; the one empty node beside
// them can join one job only. The refusal names the jobs left without a
// node and why.
func TestDrainRefusalSaysWhyJobsDidNotGrow(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	for _, name := range []string{"one", "two", "three"} {
		if m, err := c.RegisterJob(name, wire.JobHints{PeakMbps: 2000}); err != nil || len(m.Nodes) != 2 {
			t.Fatalf("register %s: %+v %v", name, m, err)
		}
	}
	x := "127.0.0.1:7003"
	mustRegister(t, c, dramNode(x, 1<<30, 1000))
	usedBeat(c, a, 900<<20)
	usedBeat(c, b, 900<<20)
	usedBeat(c, x, 0)
	_, err := c.Drain(a, time.Minute)
	if !errors.Is(err, wire.ErrNoSpace) || !strings.Contains(err.Error(), "no active node outside its map has room for its share (a node joins one job per drain)") {
		t.Fatalf("drain of three jobs' values beside one empty node: %v; want no space, saying why jobs did not grow", err)
	}
	if strings.Count(err.Error(), "no active node outside its map") != 2 {
		t.Fatalf("refusal %q; want the two jobs left without a node named", err)
	}
}

// TestDrainRefusalNamesOnlyJobsSending: the refusal's note names only the
// jobs whose values would go to the overflowing node, not one holding
// nothing on the drained node. Before, every job of the drained node's
// with that node in its map was named: a new user's trial read "job n2"
// for n1's values, n2 holding 0 B there.
func TestDrainRefusalNamesOnlyJobsSending(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	ids := map[string]string{}
	for _, name := range []string{"one", "two", "idle"} {
		m, err := c.RegisterJob(name, wire.JobHints{PeakMbps: 2000})
		if err != nil || len(m.Nodes) != 2 {
			t.Fatalf("register %s: %+v %v", name, m, err)
		}
		ids[name] = m.Job
	}
	x := "127.0.0.1:7003"
	mustRegister(t, c, dramNode(x, 1<<30, 1000))
	loads := []wire.JobLoad{{Job: ids["one"], Bytes: 450 << 20}, {Job: ids["two"], Bytes: 450 << 20}, {Job: ids["idle"]}}
	for _, addr := range []string{a, b} {
		c.heartbeat(&wire.Heartbeat{Addr: addr, Incarnation: 1, Loads: loads,
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 900 << 20, Mbps: 1000}}})
	}
	usedBeat(c, x, 0)
	_, err := c.Drain(a, time.Minute)
	if !errors.Is(err, wire.ErrNoSpace) || strings.Count(err.Error(), "no active node outside its map") != 1 {
		t.Fatalf("drain of two jobs' values beside one empty node: %v; want no space naming the one job left without a node", err)
	}
	if strings.Contains(err.Error(), ids["idle"]) {
		t.Fatalf("refusal %q names the job holding nothing on the drained node", err)
	}
}
