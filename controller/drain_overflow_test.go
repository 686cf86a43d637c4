package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// pairJob registers two nodes on c (1 GiB of DRAM, 1,000 Mb/s each) and a
// job placed over both, and returns the nodes' addresses.
func pairJob(t *testing.T, c *Controller) (a, b string) {
	t.Helper()
	a, b = "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	if m, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000}); err != nil || len(m.Nodes) != 2 {
		t.Fatalf("register: %+v %v", m, err)
	}
	return a, b
}

// usedBeat reports that the node at addr holds used bytes of its 1 GiB
// DRAM tier.
func usedBeat(c *Controller, addr string, used int64) {
	c.heartbeat(&wire.Heartbeat{Addr: addr, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: used, Mbps: 1000}}})
}

// TestDrainRefusedWhenTheOthersCannotHoldIt: a drain whose values the
// job's other node has no room for (700 MiB to a node with 424 MiB free)
// is refused with CodeNoSpace, naming the node and the room, and changes
// nothing; with LoseOverflow, or once the values fit, it goes ahead.
// Before, the drain was accepted, its moves failed "no space" on the
// other node, and what did not fit was lost at its deadline.
func TestDrainRefusedWhenTheOthersCannotHoldIt(t *testing.T) {
	c := newTest(t, Config{})
	a, b := pairJob(t, c)
	usedBeat(c, a, 700<<20)
	usedBeat(c, b, 600<<20)
	epoch := c.Status().Jobs[0].Epoch
	_, err := c.Drain(a, time.Minute)
	if !errors.Is(err, wire.ErrNoSpace) {
		t.Fatalf("drain of 700 MiB onto 424 MiB free: %v; want no space", err)
	}
	for _, want := range []string{"cannot drain node " + a, "700MiB on node " + b, "424MiB of 1GiB free", "--lose-overflow"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	if st, _ := nodeState(c, a); st != wire.NodeActive || c.Status().Jobs[0].Epoch != epoch {
		t.Fatalf("a refused drain changed the cluster: node %v, epoch %d (was %d)", st, c.Status().Jobs[0].Epoch, epoch)
	}

	// Over the network the choice is in the proof: added on the way, it
	// is refused; ordered, the drain goes ahead.
	nonce := []byte("nonce-0123456789")
	plain := token.DrainProof(testSecret, nonce, a, 0)
	if _, err := c.drainRequest(nonce, &wire.DrainNode{Addr: a, Proof: plain, LoseOverflow: true}); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("lose-overflow added to a plain order: %v", err)
	}
	if _, err := c.drainRequest(nonce, &wire.DrainNode{Addr: a, Proof: plain}); !errors.Is(err, wire.ErrNoSpace) {
		t.Fatalf("plain order over the network: %v", err)
	}
	ordered := token.DrainOrderProof(testSecret, nonce, a, 0, token.DrainLoseOverflow)
	if _, err := c.drainRequest(nonce, &wire.DrainNode{Addr: a, Proof: ordered, LoseOverflow: true}); err != nil {
		t.Fatalf("order with lose-overflow: %v", err)
	}
	if st, _ := nodeState(c, a); st != wire.NodeDraining {
		t.Fatalf("node %v after the order with lose-overflow", st)
	}

	// What fits drains as before: 300 MiB onto 424 MiB free.
	c2 := newTest(t, Config{})
	pairJob(t, c2)
	usedBeat(c2, a, 300<<20)
	usedBeat(c2, b, 600<<20)
	if _, err := c2.Drain(a, time.Minute); err != nil {
		t.Fatalf("drain of 300 MiB onto 424 MiB free: %v", err)
	}
}

// TestDrainOfALoneNodeCountsItsAdopter: a job whose only node drains is
// given another, which must hold its values too: 700 MiB onto a node
// with 424 MiB free is refused before the job's map changes.
func TestDrainOfALoneNodeCountsItsAdopter(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	m, err := c.RegisterJob("sort", wire.JobHints{})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("register: %+v %v", m, err)
	}
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	usedBeat(c, a, 700<<20)
	usedBeat(c, b, 600<<20)
	if _, err := c.Drain(a, time.Minute); !errors.Is(err, wire.ErrNoSpace) || !strings.Contains(err.Error(), "on node "+b) {
		t.Fatalf("drain of a lone node onto a node without room: %v", err)
	}
	if got, _ := c.GetMap(m.Job, m.Token); len(got.Nodes) != 1 || got.Epoch != m.Epoch {
		t.Fatalf("the refused drain changed the job's map: %+v", got)
	}
}

// TestScaleInDrainsNoNodeWhoseValuesOverflow: scale-in drains no node
// whose values would leave a node taking them over the band's middle on
// capacity: the cluster holds 43 % of its bytes, but each node's values
// would fill another past 70 %. Before, scale-in weighed the bandwidth
// alone and drained the emptiest node, filling its partner to 70.3 %.
func TestScaleInDrainsNoNodeWhoseValuesOverflow(t *testing.T) {
	r := newScaleRig(t, 3, AutoscaleConfig{Smooth: 1, MinNodes: 2, JobCooldown: time.Hour})
	pair := oneNodeJob(t, r, "pair", 100, true)
	var grow string
	for _, n := range r.c.Status().Nodes {
		if n.Addr != pair.Nodes[0].Addr && grow == "" {
			grow = n.Addr
		}
	}
	r.grown(pair.Job, grow)
	lone := oneNodeJob(t, r, "lone", 100, true)
	if a := lone.Nodes[0].Addr; a == pair.Nodes[0].Addr || a == grow {
		t.Fatalf("lone placed on a node of pair: %+v", lone)
	}
	r.clock.advance(time.Minute)
	for _, n := range r.c.Status().Nodes {
		used := int64(360 << 20)
		if n.Addr == lone.Nodes[0].Addr {
			used = 600 << 20
		}
		r.heartbeat(n.Addr, 0, used, nil)
	}
	if d := r.a.Step(); d.Action != ActionNone || r.active() != 3 {
		t.Fatalf("scale-in with every node's values overflowing another: %+v, %d active; %s", d, r.active(), r.logs.msgs())
	}
	if !r.logs.contains("no node can be drained: 3 hold values their jobs' other nodes have no room for under 70% of a tier") {
		t.Fatalf("hold not logged with its reason: %s", r.logs.msgs())
	}
}

// TestDrainCountsTheDrainsRunning: a drain is checked beside the drains
// running, whose values still to move go to the same node: two lone jobs'
// nodes (600 MiB each) drained one after the other would both be adopted
// by the one other node (1 GiB). The first is taken, the second refused,
// naming the running drain. Before, each was checked alone and both were
// taken (a hostile review: 45 of 150 values lost).
func TestDrainCountsTheDrainsRunning(t *testing.T) {
	c := newTest(t, Config{})
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	if _, err := c.RegisterJob("one", wire.JobHints{PeakMbps: 100}); err != nil {
		t.Fatal(err)
	}
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	if m, err := c.RegisterJob("two", wire.JobHints{PeakMbps: 100}); err != nil || m.Nodes[0].Addr != b {
		t.Fatalf("register: %+v %v", m, err)
	}
	mustRegister(t, c, dramNode(x, 1<<30, 1000))
	usedBeat(c, a, 600<<20)
	usedBeat(c, b, 600<<20)
	usedBeat(c, x, 0)
	if _, err := c.Drain(a, time.Minute); err != nil {
		t.Fatalf("first drain, 600 MiB onto an empty node: %v", err)
	}
	_, err := c.Drain(b, time.Minute)
	if !errors.Is(err, wire.ErrNoSpace) || !strings.Contains(err.Error(), "1 node(s) draining now") || !strings.Contains(err.Error(), "1.17GiB on node "+x) {
		t.Fatalf("second drain onto the node the first fills: %v; want no space, counting the running drain", err)
	}
	if st, _ := nodeState(c, b); st != wire.NodeActive {
		t.Fatalf("the refused node is %v", st)
	}
}

// TestScaleInChecksItsVictimsTogether: scale-in drains its victims one at
// a time, each checked beside those begun before it: two started nodes
// holding 400 MiB of a lone job each, whose values would both go to the
// one node with bandwidth to spare (1 GiB, up to 70 % full), drain one;
// the other stays. Before, each victim was checked alone and both drained
// onto that node.
func TestScaleInChecksItsVictimsTogether(t *testing.T) {
	r := newScaleRig(t, 2, AutoscaleConfig{Smooth: 1, MinNodes: 2})
	one := oneNodeJob(t, r, "one", 100, true)
	two := oneNodeJob(t, r, "two", 100, true)
	if one.Nodes[0].Addr == two.Nodes[0].Addr {
		t.Fatalf("both jobs on %s", one.Nodes[0].Addr)
	}
	// Two nodes started by hand (scale-in drains the orchestrator's
	// first): one with bandwidth to spare, one with almost none.
	spare, slow := "127.0.0.1:7101", "127.0.0.1:7102"
	mustRegister(t, r.c, dramNode(spare, 1<<30, 1000))
	mustRegister(t, r.c, dramNode(slow, 1<<30, 10))
	r.clock.advance(time.Minute)
	for _, n := range r.c.Status().Nodes {
		switch n.Addr {
		case one.Nodes[0].Addr, two.Nodes[0].Addr:
			r.heartbeat(n.Addr, 0, 400<<20, nil)
		case spare:
			r.heartbeat(n.Addr, 0, 0, nil)
		}
	}
	r.c.heartbeat(&wire.Heartbeat{Addr: slow, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 10}}})
	d := r.a.Step()
	if d.Action != ActionRemove || len(d.Drain) != 2 {
		t.Fatalf("scale-in: %+v; want two victims", d)
	}
	if k := countNodes(r.c, wire.NodeDraining); k != 1 {
		t.Fatalf("%d node(s) draining; want 1: the second would fill %s past 70 %%", k, spare)
	}
	if !r.logs.contains("autoscale: drain") || !r.logs.contains("no space") {
		t.Fatalf("the refused victim is not logged: %s", r.logs.msgs())
	}
}

// TestRefusedDrainGivesNoJobANode: a drain refused because one job's data
// has nowhere to go (the node's NVMe job, no other NVMe node) changes no
// other job's map. Before, the DRAM jobs visited first were each given a
// node at a new epoch, which nothing then filled (a hostile review); map
// order decided which, so eight DRAM jobs make the old code fail in 8 of
// 9 orders.
func TestRefusedDrainGivesNoJobANode(t *testing.T) {
	c := newTest(t, Config{})
	a := "127.0.0.1:7001"
	mustRegister(t, c, &wire.NodeRegister{Addr: a, Cores: 2, Tiers: []wire.TierStat{
		{Kind: kindDRAM, CapacityBytes: 8 << 30, Mbps: 8000}, {Kind: kindNVMe, CapacityBytes: 100 << 30, Mbps: 4000}}})
	var maps []*wire.PlacementMap
	for i := range 8 {
		m, err := c.RegisterJob(fmt.Sprintf("lat%d", i), wire.JobHints{LatencySensitive: true, PeakMbps: 100})
		if err != nil || m.Tier != kindDRAM {
			t.Fatalf("register: %+v %v", m, err)
		}
		maps = append(maps, m)
	}
	if m, err := c.RegisterJob("bulk", wire.JobHints{CapacityBytes: 50 << 30, PeakMbps: 100}); err != nil || m.Tier != kindNVMe {
		t.Fatalf("register: %+v %v", m, err)
	}
	mustRegister(t, c, dramNode("127.0.0.1:7002", 8<<30, 8000))
	if _, err := c.Drain(a, time.Minute); !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "nvme") {
		t.Fatalf("drain with the NVMe job's data nowhere to go: %v", err)
	}
	for _, m := range maps {
		if got, _ := c.GetMap(m.Job, m.Token); got.Epoch != m.Epoch || len(got.Nodes) != 1 {
			t.Fatalf("the refused drain changed job %s's map: %+v", m.Job, got)
		}
	}
}

// TestDrainWaitsForRoomAtItsDeadline: a drain past its deadline whose
// node reports values their owners have no room for waits (the node stays,
// draining, serving them) instead of losing them; once the node reports
// none waiting for room it ends as before, and an order with LoseOverflow
// ends it at once. Before, the values were lost at the deadline, also when
// the room check at the order had passed on figures a burst of puts made
// stale (a new user's trial: 19 values lost, 16 of them untouched for
// minutes).
func TestDrainWaitsForRoomAtItsDeadline(t *testing.T) {
	for _, how := range []string{"room made", "lose-overflow ordered"} {
		t.Run(how, func(t *testing.T) {
			logs := &logSink{}
			c := newTest(t, Config{Logger: logs.logger()})
			a, _ := pairJob(t, c)
			if _, err := c.Drain(a, time.Minute); err != nil {
				t.Fatal(err)
			}
			report := func(left, noRoom float64) {
				c.heartbeat(&wire.Heartbeat{Addr: a, Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 0},
					{Name: MetricDrainLeft, Value: left}, {Name: MetricDrainNoRoom, Value: noRoom}},
					Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 19 << 20, Mbps: 1000}}})
			}
			report(19, 19)
			c.drainTick(time.Now().Add(2 * time.Minute))
			if st, _ := nodeState(c, a); st != wire.NodeDraining || len(c.Status().Retired) != 0 {
				t.Fatalf("past its deadline with 19 values waiting for room: node %v, retired %+v", st, c.Status().Retired)
			}
			if !logs.contains("drain waits past its deadline") {
				t.Fatalf("the wait is not logged: %s", logs.msgs())
			}
			if how == "room made" {
				report(0, 0)
				c.heartbeat(&wire.Heartbeat{Addr: a, Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 1}}})
			} else {
				if _, err := c.DrainWith(a, DrainOptions{Deadline: time.Minute, LoseOverflow: true}); err != nil {
					t.Fatal(err)
				}
			}
			c.drainTick(time.Now().Add(2 * time.Minute))
			r := c.Status().Retired
			if len(r) != 1 || r[0].Lost != (how != "room made") {
				t.Fatalf("after %s: retired %+v", how, r)
			}
		})
	}
}

// TestRestoredDrainWaitsForItsNode: a drain held for room, its deadline
// past, is not ended by a controller restart before its node reports.
// Before, the restored drain knew of no values waiting for room, and the
// first tick after the restart retired the node as lost (a hostile
// re-check: 26 values lost 0.75 s after the restart).
func TestRestoredDrainWaitsForItsNode(t *testing.T) {
	r := newRestartable(t, Config{}, false)
	a, _ := pairJob(t, r.ctl)
	if _, err := r.ctl.Drain(a, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r.ctl.heartbeat(&wire.Heartbeat{Addr: a, Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 0},
		{Name: MetricDrainLeft, Value: 26}, {Name: MetricDrainNoRoom, Value: 26}}})
	r.ctl.drainTick(time.Now().Add(time.Second))
	if st, _ := nodeState(r.ctl, a); st != wire.NodeDraining {
		t.Fatalf("held drain before the restart: node %v", st)
	}
	r.restart()
	r.ctl.drainTick(time.Now().Add(time.Second))
	if st, _ := nodeState(r.ctl, a); st != wire.NodeDraining || len(r.ctl.Status().Retired) != 0 {
		t.Fatalf("held drain after a restart, its node not heard yet: node %v, retired %+v", st, r.ctl.Status().Retired)
	}
}

// TestRestoredDrainKeepsItsOrder: a drain held for room and then ordered
// with LoseOverflow, or ordered with DiscardPersisted, keeps that order
// across a controller restart: past its deadline it ends (its values lost,
// as ordered) once its node reports. Before, the order was kept in memory
// only, and the restarted controller held the drain again until an
// operator ordered it a second time.
func TestRestoredDrainKeepsItsOrder(t *testing.T) {
	r := newRestartable(t, Config{}, false)
	a, _ := pairJob(t, r.ctl)
	if _, err := r.ctl.Drain(a, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	report := func() {
		r.ctl.heartbeat(&wire.Heartbeat{Addr: a, Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 0},
			{Name: MetricDrainLeft, Value: 26}, {Name: MetricDrainNoRoom, Value: 26}}})
	}
	report()
	r.ctl.drainTick(time.Now().Add(time.Second))
	if st, _ := nodeState(r.ctl, a); st != wire.NodeDraining {
		t.Fatalf("held drain before the order: node %v", st)
	}
	if _, err := r.ctl.DrainWith(a, DrainOptions{Deadline: time.Minute, DiscardPersisted: true, LoseOverflow: true}); err != nil {
		t.Fatal(err)
	}
	r.restart()
	r.ctl.mu.Lock()
	ad := *r.ctl.nodes[a].drain
	r.ctl.mu.Unlock()
	if !ad.discard || !ad.loseOverflow {
		t.Fatalf("a drain ordered with both options, after a restart: %+v", ad)
	}
	report()
	r.ctl.drainTick(time.Now().Add(2 * time.Minute))
	if st, _ := nodeState(r.ctl, a); st == wire.NodeDraining {
		t.Fatalf("a drain ordered with LoseOverflow, after a restart and past its deadline: still held; retired %+v", r.ctl.Status().Retired)
	}
	if ret := r.ctl.Status().Retired; len(ret) != 1 || ret[0].Addr != a || !ret[0].Lost {
		t.Fatalf("retired %+v; want %s, lost", ret, a)
	}
}
