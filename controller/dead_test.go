package controller

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
)

// deadTest is a controller whose sweeps the test drives: nodes are never
// marked dead by silence (DeadAfter an hour), only by SetNodeState, and a
// sweep two minutes ahead is past the grace of one minute.
func deadTest(t *testing.T, grace time.Duration) *Controller {
	return newTest(t, Config{DeadAfter: time.Hour, ForgetAfter: time.Hour, DeadNodeGrace: grace})
}

// sweepPastGrace runs a sweep as if two minutes had passed.
func sweepPastGrace(c *Controller) { c.sweep(time.Now().Add(2 * time.Minute)) }

func owners(nodes []placement.Node, n int) []string {
	set := placement.NewSet(nodes)
	out := make([]string, n)
	for i := range out {
		out[i] = set.Node(set.Pick(fmt.Appendf(nil, "key-%d", i), 0)).ID
	}
	return out
}

func mapPlacement(m *wire.PlacementMap, withLost bool) []placement.Node {
	var out []placement.Node
	for _, n := range m.Nodes {
		out = append(out, placement.Node{ID: n.Addr, Weight: n.Weight})
	}
	if withLost {
		for _, l := range m.Lost {
			out = append(out, placement.Node{ID: l.Addr, Weight: l.Weight})
		}
	}
	return out
}

// TestDeadNodeLeavesMaps: past the grace a dead node leaves its job's map
// with an epoch bump, the others' weights sum to 1 again, and placing over
// the map plus its lost nodes gives every key the owner it had.
func TestDeadNodeLeavesMaps(t *testing.T) {
	c := deadTest(t, time.Minute)
	for i := 1; i <= 3; i++ {
		mustRegister(t, c, dramNode(fmt.Sprintf("127.0.0.1:700%d", i), 1<<30, 8000))
	}
	m, err := c.RegisterJob("j", wire.JobHints{PeakMbps: 24000})
	if err != nil || len(m.Nodes) != 3 {
		t.Fatalf("%+v %v", m, err)
	}
	before := owners(mapPlacement(m, false), 2000)
	dead := m.Nodes[1].Addr
	if err := c.SetNodeState(dead, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	c.sweep(time.Now()) // within the grace: still in the map, marked dead
	m2, _ := c.GetMap(m.Job, m.Token)
	if st, ok := mapState(m2, dead); !ok || st != wire.NodeDead || m2.Epoch != 2 || len(m2.Lost) != 0 {
		t.Fatalf("within the grace: %+v", m2)
	}
	sweepPastGrace(c)
	m3, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mapState(m3, dead); ok || len(m3.Nodes) != 2 || m3.Epoch != 3 {
		t.Fatalf("past the grace: %+v", m3)
	}
	if len(m3.Lost) != 1 || m3.Lost[0].Addr != dead || m3.Lost[0].Epoch != 3 {
		t.Fatalf("lost nodes %+v, want %s at epoch 3", m3.Lost, dead)
	}
	if sum := m3.Nodes[0].Weight + m3.Nodes[1].Weight; math.Abs(sum-1) > 1e-9 {
		t.Fatalf("remaining weights sum to %v", sum)
	}
	after := owners(mapPlacement(m3, true), 2000)
	moved := 0
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("key-%d: owner %s before, %s over the map and its lost nodes", i, before[i], after[i])
		}
		if before[i] == dead {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no key was on the dead node: the test proves nothing")
	}
	if c.inAnyJobLocked(dead) {
		t.Fatal("the lost node still carries the job's allotment")
	}
}

// jobLosingANode registers nodes a and b and job "j" on both, and has the
// job lose b (dead past the grace).
func jobLosingANode(t *testing.T, c *Controller) (a, b *wire.NodeRegister, m *wire.PlacementMap) {
	t.Helper()
	a, b = dramNode("127.0.0.1:7001", 1<<30, 8000), dramNode("127.0.0.1:7002", 1<<30, 8000)
	mustRegister(t, c, a)
	mustRegister(t, c, b)
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	if err := c.SetNodeState(b.Addr, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c)
	return a, b, m
}

// TestLostNodeComesBack: a lost node that heartbeats again is active and
// in no map; its job table holds the job that lost it at the job's
// current epoch (so clients with old maps are refused), and a drop order
// for that job is sent to it.
func TestLostNodeComesBack(t *testing.T) {
	c := deadTest(t, time.Minute)
	_, b, m := jobLosingANode(t, c)
	c.mu.Lock()
	c.lostDrops = nil // watch only what the return adds
	c.mu.Unlock()
	ack := c.heartbeat(&wire.Heartbeat{Addr: b.Addr})
	if !ack.Known || ack.State != wire.NodeActive || len(ack.Jobs) != 1 || ack.Jobs[0].Epoch != 3 {
		t.Fatalf("returning lost node's ack %+v, want active with %s at epoch 3", ack, m.Job)
	}
	c.mu.Lock()
	drops := append([]lostDrop(nil), c.lostDrops...)
	c.mu.Unlock()
	if len(drops) != 1 || drops[0] != (lostDrop{addr: b.Addr, job: m.Job}) {
		t.Fatalf("drop orders %+v, want %s's data of %s", drops, b.Addr, m.Job)
	}
	m2, _ := c.GetMap(m.Job, m.Token)
	if _, ok := mapState(m2, b.Addr); ok || m2.Epoch != 3 {
		t.Fatalf("the old job took its lost node back: %+v", m2)
	}
	// It rejoins as a new node: new jobs may use it.
	k, err := c.RegisterJob("k", wire.JobHints{})
	if _, ok := mapState(k, b.Addr); err != nil || !ok {
		t.Fatalf("new job %+v %v, want it on the returned node", k, err)
	}
	// Deregistering the job forgets that it lost the node.
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	n := len(c.lostFrom)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("lost-node index keeps %d node(s) of a deregistered job", n)
	}
}

// TestJobLosingEveryNodeGetsAnother: a job whose only node is lost gets
// an active node, and its lost node outweighs it for old keys.
func TestJobLosingEveryNodeGetsAnother(t *testing.T) {
	c := deadTest(t, time.Minute)
	a := dramNode("127.0.0.1:7001", 1<<30, 8000)
	mustRegister(t, c, a)
	m, err := c.RegisterJob("solo", wire.JobHints{})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("%+v %v", m, err)
	}
	if err := c.SetNodeState(a.Addr, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c) // no other node: the job keeps its dead one
	m2, _ := c.GetMap(m.Job, m.Token)
	if st, ok := mapState(m2, a.Addr); !ok || st != wire.NodeDead || len(m2.Lost) != 0 {
		t.Fatalf("job with nowhere to go: %+v", m2)
	}
	b := dramNode("127.0.0.1:7002", 1<<30, 8000)
	mustRegister(t, c, b)
	sweepPastGrace(c)
	m3, _ := c.GetMap(m.Job, m.Token)
	if len(m3.Nodes) != 1 || m3.Nodes[0].Addr != b.Addr || m3.Nodes[0].Weight != 1 || len(m3.Lost) != 1 {
		t.Fatalf("job after losing its only node: %+v", m3)
	}
	for i, o := range owners(mapPlacement(m3, true), 1000) {
		if o != a.Addr {
			t.Fatalf("key-%d: owner %s over the map and its lost node, want the lost %s", i, o, a.Addr)
		}
	}
}

// TestDeadNodeGraceNever: with a negative grace a dead node stays.
func TestDeadNodeGraceNever(t *testing.T) {
	c := deadTest(t, -1)
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 8000))
	m, _ := c.RegisterJob("j", wire.JobHints{})
	if err := c.SetNodeState("127.0.0.1:7002", wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c)
	m2, _ := c.GetMap(m.Job, m.Token)
	if len(m2.Nodes) != 2 || len(m2.Lost) != 0 {
		t.Fatalf("grace off, yet the map changed: %+v", m2)
	}
}

// TestLostListBounded: a map lists the newest wire.MaxLostNodes lost
// nodes, and the index forgets the ones that fell off.
func TestLostListBounded(t *testing.T) {
	c := deadTest(t, time.Minute)
	j := &job{id: "j-1"}
	var lost []wire.LostNode
	for i := range wire.MaxLostNodes + 3 {
		lost = append(lost, wire.LostNode{Addr: fmt.Sprintf("10.0.0.1:%d", 1000+i), Weight: 1, Epoch: uint64(i + 2)})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLostLocked(j, lost)
	if len(j.lost) != wire.MaxLostNodes || j.lost[0].Addr != "10.0.0.1:1003" {
		t.Fatalf("kept %d lost nodes starting at %s", len(j.lost), j.lost[0].Addr)
	}
	if c.lostByLocked(j, "10.0.0.1:1002") || !c.lostByLocked(j, "10.0.0.1:1003") || len(c.lostFrom) != wire.MaxLostNodes {
		t.Fatalf("index has %d nodes", len(c.lostFrom))
	}
}

// TestRegistrationCounted: RegisterJob counts its own outcome (it did
// not: the counter stayed at 0 whatever was registered).
func TestRegistrationCounted(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	if _, err := c.RegisterJob("j", wire.JobHints{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterJob("bad name!", wire.JobHints{}); err == nil {
		t.Fatal("bad name registered")
	}
	r := &c.regs
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.accepted != 1 || r.refused[metrics.CodeLabel(wire.CodeBadKey)] != 1 {
		t.Fatalf("accepted %d, refused %v; want 1 and 1 bad key", r.accepted, r.refused)
	}
}

// TestNodesOutOfAMapLearnItsEpochs: a node outside a job's map gets the
// job's epoch marked out, in a snapshot and in the deltas that follow each
// change of the map (so it refuses clients routing by a map it left, or
// never was in); a node in the map gets it unmarked, and so does a node
// the job lost. Before, deltas skipped the nodes outside the map and
// snapshots gave them epoch 0, which refuses no epoch.
func TestNodesOutOfAMapLearnItsEpochs(t *testing.T) {
	c := deadTest(t, time.Minute)
	var addrs []string
	for i := range 3 {
		n := dramNode(fmt.Sprintf("127.0.0.1:%d", 7001+i), 1<<30, 8000)
		mustRegister(t, c, n)
		addrs = append(addrs, n.Addr)
	}
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v, want the default 2 nodes", m, err)
	}
	member := func(addr string) bool { _, ok := mapState(m, addr); return ok }
	entry := func(ack *wire.NodeAck) (wire.JobEpoch, bool) {
		for _, je := range ack.Jobs {
			if je.Job == m.Job {
				return je, true
			}
		}
		return wire.JobEpoch{}, false
	}
	revs := map[string]uint64{}
	var out, in string
	for _, a := range addrs {
		hb := &wire.Heartbeat{Addr: a}
		if !member(a) { // full: it cannot join in the place of the node lost below (refill.go)
			hb.Tiers = []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 1 << 30, Mbps: 8000}}
		}
		ack := c.heartbeat(hb)
		je, ok := entry(ack)
		if !ok || je.Epoch != m.Epoch || je.Out == member(a) {
			t.Fatalf("snapshot for %s (in the map: %v): %+v, want epoch %d, out %v", a, member(a), je, m.Epoch, !member(a))
		}
		revs[a] = ack.Rev
		if member(a) {
			in = a
		} else {
			out = a
		}
	}
	// The map changes: the job loses its other node.
	var lost string
	for _, a := range addrs {
		if a != in && a != out {
			lost = a
		}
	}
	if err := c.SetNodeState(lost, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c)
	m2, err := c.GetMap(m.Job, m.Token)
	if err != nil || m2.Epoch <= m.Epoch {
		t.Fatalf("map after the loss %+v %v, want an epoch after %d", m2, err, m.Epoch)
	}
	for _, tc := range []struct {
		addr string
		out  bool
	}{{in, false}, {out, true}} {
		ack := c.heartbeat(&wire.Heartbeat{Addr: tc.addr, Since: revs[tc.addr]})
		je, ok := entry(ack)
		if ack.Full || !ok || je.Epoch < m2.Epoch || je.Out != tc.out {
			t.Fatalf("delta for %s: full %v, %+v, want epoch %d with out %v", tc.addr, ack.Full, je, m2.Epoch, tc.out)
		}
	}
}

// TestNodeLeavingLowersGrowth: a node that leaves a job's map by a drain
// from the cluster or as lost lowers the job's growth count, the shrink
// floor of a job sized without hints (a job sized with 2 nodes, grown to
// 3, with one of its 2 drained, must not shed down to 1). Before, only
// the job's own shrink lowered it.
func TestNodeLeavingLowersGrowth(t *testing.T) {
	c := deadTest(t, time.Minute)
	for i := range 4 {
		mustRegister(t, c, dramNode(fmt.Sprintf("127.0.0.1:%d", 7001+i), 1<<30, 8000))
	}
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v, want the default 2 nodes", m, err)
	}
	c.mu.Lock()
	j := c.jobs[m.Job]
	j.grown = 1 // as if growth had added a third node
	c.retireLocked(c.nodes[m.Nodes[0].Addr], time.Now(), "drained", false)
	drained := j.grown
	j.grown = 1
	c.mu.Unlock()
	if drained != 0 {
		t.Fatalf("growth count %d after a node of the map drained, want 0", drained)
	}
	if err := c.SetNodeState(m.Nodes[1].Addr, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c)
	c.mu.Lock()
	lost := j.grown
	c.mu.Unlock()
	if lost != 0 {
		t.Fatalf("growth count %d after a node of the map was lost, want 0", lost)
	}
}

// TestRestartedNodeLeavesItsMaps: a node that registers again with another
// incarnation restarted, empty: every job that had it loses it at once
// (the map lists it lost, so its keys answer "lost", not "not found"),
// whether the controller still thought it alive or had marked it dead
// within the grace; the same incarnation registering again (a retried
// registration) changes nothing. Before, the node kept its place and the
// values it had held read as never written (a new user's kill -9 and
// restart: 12 of 40 keys "not found").
func TestRestartedNodeLeavesItsMaps(t *testing.T) {
	for _, dead := range []bool{false, true} {
		c := deadTest(t, time.Minute)
		at := newIncServer(t, "127.0.0.1:0", 22, testSecret) // what serves at b's address
		a, b := dramNode("127.0.0.1:7001", 1<<30, 8000), dramNode(at.addr(), 1<<30, 8000)
		a.Incarnation, b.Incarnation = 11, 22
		mustRegister(t, c, a)
		mustRegister(t, c, b)
		m, err := c.RegisterJob("j", wire.JobHints{})
		if err != nil || len(m.Nodes) != 2 {
			t.Fatalf("%+v %v", m, err)
		}
		mustRegister(t, c, b) // the same process again
		if m2, _ := c.GetMap(m.Job, m.Token); m2.Epoch != m.Epoch {
			t.Fatalf("a registration retried by the same process changed the map: %+v", m2)
		}
		if dead {
			if err := c.SetNodeState(b.Addr, wire.NodeDead); err != nil {
				t.Fatal(err)
			}
		}
		b.Incarnation = 23 // restarted
		at.inc.Store(23)   // and serves at its address (the controller asks)
		mustRegister(t, c, b)
		m2, err := c.GetMap(m.Job, m.Token)
		if err != nil {
			t.Fatal(err)
		}
		if _, in := mapState(m2, b.Addr); in || len(m2.Lost) != 1 || m2.Lost[0].Addr != b.Addr {
			t.Fatalf("dead %v: map after its node restarted %+v; want it lost", dead, m2)
		}
	}
}

// TestRestartSeenAfterAControllerRestart: a controller restarted from its
// state knows no node's incarnation; a node that kept running heartbeats
// (and never registers again) and so teaches it, and its later restart
// is seen. Before heartbeats carried the incarnation, a restarted
// controller (or a failover) missed every later restart of its nodes: the
// jobs kept the empty node and its keys read "not found" (a hostile
// review).
func TestRestartSeenAfterAControllerRestart(t *testing.T) {
	c := deadTest(t, time.Minute)
	at := newIncServer(t, "127.0.0.1:0", 41, testSecret) // what serves at b's address
	a, b := dramNode("127.0.0.1:7001", 1<<30, 8000), dramNode(at.addr(), 1<<30, 8000)
	mustRegister(t, c, a)
	mustRegister(t, c, b) // as restored from state: incarnation unknown (0)
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	c.heartbeat(&wire.Heartbeat{Addr: b.Addr, Incarnation: 41})
	b.Incarnation = 42 // the node restarted
	at.inc.Store(42)   // and serves at its address (the controller asks)
	mustRegister(t, c, b)
	m2, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, in := mapState(m2, b.Addr); in || len(m2.Lost) != 1 {
		t.Fatalf("map after the node restarted: %+v; want it lost", m2)
	}
}

// TestRestartedOnlyNodeNotAdoptedBack: a job whose only node restarts
// loses it and adopts another active node, never the restarted one (an
// operator's trial: the job "lost its every node and gets another" and
// got the very node it had lost, its map back to that node alone, so its
// old keys named the wrong lost node).
func TestRestartedOnlyNodeNotAdoptedBack(t *testing.T) {
	c := deadTest(t, time.Minute)
	at := newIncServer(t, "127.0.0.1:0", 22, testSecret)
	b := dramNode(at.addr(), 4<<30, 8000)
	b.Incarnation = 22
	mustRegister(t, c, b)
	m, err := c.RegisterJob("solo", wire.JobHints{CapacityBytes: 256 << 20})
	if err != nil || len(m.Nodes) != 1 || m.Nodes[0].Addr != b.Addr {
		t.Fatalf("%+v %v", m, err)
	}
	// Too small for the job's 256 MiB where b has room, so b would win
	// the adoption if it could compete.
	a := dramNode("127.0.0.1:7001", 128<<20, 8000)
	a.Incarnation = 11
	mustRegister(t, c, a)
	if err := c.SetNodeState(b.Addr, wire.NodeDead); err != nil { // killed
		t.Fatal(err)
	}
	b.Incarnation = 23 // and started again
	at.inc.Store(23)
	mustRegister(t, c, b)
	m2, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Nodes) != 1 || m2.Nodes[0].Addr != a.Addr || len(m2.Lost) != 1 || m2.Lost[0].Addr != b.Addr {
		t.Fatalf("map after its only node restarted: %+v; want %s alone, %s lost", m2, a.Addr, b.Addr)
	}
}

// backThenNextDies kills back past the grace (its job takes next), brings
// back it with its data (a heartbeat, not a restart), then kills next past
// the grace.
func backThenNextDies(t *testing.T, c *Controller, back, next string) {
	t.Helper()
	for i, addr := range []string{back, next} {
		if err := c.SetNodeState(addr, wire.NodeDead); err != nil {
			t.Fatal(err)
		}
		sweepPastGrace(c)
		if i == 0 {
			c.heartbeat(&wire.Heartbeat{Addr: back})
		}
	}
}

// incNode registers a DRAM node of 1 GiB served by an incServer (whose
// address it takes) of incarnation inc.
func incNode(t *testing.T, c *Controller, inc uint64) (*incServer, *wire.NodeRegister) {
	t.Helper()
	at := newIncServer(t, "127.0.0.1:0", inc, testSecret)
	x := dramNode(at.addr(), 1<<30, 8000)
	x.Incarnation = inc
	mustRegister(t, c, x)
	return at, x
}

// restartNode kills node x and starts it again, empty, as incarnation inc.
func restartNode(t *testing.T, c *Controller, at *incServer, x *wire.NodeRegister, inc uint64) {
	t.Helper()
	if err := c.SetNodeState(x.Addr, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	x.Incarnation = inc
	at.inc.Store(inc)
	mustRegister(t, c, x)
}

// soloJob registers a 10 Mb/s job, which one node serves.
func soloJob(t *testing.T, c *Controller) *wire.PlacementMap {
	t.Helper()
	m, err := c.RegisterJob("solo", wire.JobHints{PeakMbps: 10})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("%+v %v", m, err)
	}
	return m
}

// TestJobAdoptsALostNodeThatRestartedEmpty (hostile trial): a job's only
// node restarts (the job loses it and adopts the other node), then that
// other node dies past the grace. The restarted node is the only active
// one, and holds none of the job's data: the job adopts it, as a node
// that holds its share from this loss on, and both lost nodes stay listed
// so old keys answer lost. Before, the job kept its dead node for good
// (every put "node ... is dead", 75 s and more beside an idle node).
// A lost node that came back with the job's data and was not known to
// have dropped it is never adopted: its old values would read again.
func TestJobAdoptsALostNodeThatRestartedEmpty(t *testing.T) {
	c := deadTest(t, time.Minute)
	at, x := incNode(t, c, 22)
	m := soloJob(t, c)
	y := dramNode("127.0.0.1:7002", 1<<30, 8000)
	mustRegister(t, c, y)
	restartNode(t, c, at, x, 23)
	m2, _ := c.GetMap(m.Job, m.Token)
	if len(m2.Nodes) != 1 || m2.Nodes[0].Addr != y.Addr || len(m2.Lost) != 1 {
		t.Fatalf("map after its node restarted: %+v; want %s alone, %s lost", m2, y.Addr, x.Addr)
	}
	if err := c.SetNodeState(y.Addr, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c)
	m3, _ := c.GetMap(m.Job, m.Token)
	if len(m3.Nodes) != 1 || m3.Nodes[0].Addr != x.Addr || m3.Nodes[0].State != wire.NodeActive || len(m3.Lost) != 2 {
		t.Fatalf("map after its second node died: %+v; want the restarted %s alone, two lost", m3, x.Addr)
	}
	for _, l := range m3.Lost {
		if m3.Nodes[0].Since < l.Epoch {
			t.Fatalf("adopted node holds its share from epoch %d, before lost %+v: it would take the lost node's keys", m3.Nodes[0].Since, l)
		}
	}

	// A node lost dead past the grace that then comes back restarted
	// (another incarnation: empty) is adopted the same way.
	c1 := deadTest(t, time.Minute)
	at1, x1 := incNode(t, c1, 31)
	m = soloJob(t, c1)
	y1 := dramNode("127.0.0.1:7022", 1<<30, 8000)
	mustRegister(t, c1, y1)
	if err := c1.SetNodeState(x1.Addr, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c1) // x1 lost, y1 adopted
	x1.Incarnation = 32
	at1.inc.Store(32)
	mustRegister(t, c1, x1)
	if err := c1.SetNodeState(y1.Addr, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c1)
	if m5, _ := c1.GetMap(m.Job, m.Token); len(m5.Nodes) != 1 || m5.Nodes[0].Addr != x1.Addr || len(m5.Lost) != 2 {
		t.Fatalf("map after its second node died: %+v; want %s, restarted after it was lost, alone", m5, x1.Addr)
	}

	// A lost node that came back with its data (heartbeats again; its
	// drop order not known done) is not adopted.
	c2 := deadTest(t, time.Minute)
	a, b := dramNode("127.0.0.1:7011", 1<<30, 8000), dramNode("127.0.0.1:7012", 1<<30, 8000)
	mustRegister(t, c2, a)
	m = soloJob(t, c2)
	mustRegister(t, c2, b)
	backThenNextDies(t, c2, a.Addr, b.Addr) // a lost, b adopted; a back with its data, b dead
	m4, _ := c2.GetMap(m.Job, m.Token)
	if len(m4.Nodes) != 1 || m4.Nodes[0].Addr != b.Addr {
		t.Fatalf("map after its second node died: %+v; want it kept on dead %s (%s may hold its old values)", m4, b.Addr, a.Addr)
	}
}

// TestOnlyNodeRestartedRecordsTheLoss (hostile trial): a job whose only
// node restarts (another incarnation: empty) and has no other node keeps
// that node, as a new one holding its share from the loss's epoch, and
// lists it lost, so its old keys answer lost. Before, nothing was
// recorded ("kept_for_lack_of_nodes") and its old keys read "not found".
func TestOnlyNodeRestartedRecordsTheLoss(t *testing.T) {
	c := deadTest(t, time.Minute)
	at, x := incNode(t, c, 41)
	m := soloJob(t, c)
	restartNode(t, c, at, x, 42)
	m2, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Nodes) != 1 || m2.Nodes[0].Addr != x.Addr || m2.Nodes[0].State != wire.NodeActive ||
		len(m2.Lost) != 1 || m2.Lost[0].Addr != x.Addr || m2.Nodes[0].Since < m2.Lost[0].Epoch {
		t.Fatalf("map after its only node restarted: %+v; want %s kept as a new node from the loss's epoch, and listed lost", m2, x.Addr)
	}
	if _, err := c.RegisterJob("next", wire.JobHints{PeakMbps: 10}); err != nil {
		t.Fatal(err)
	}

	// Kept, it holds the job's data: once it dies and comes back with
	// that data (not restarted), it is not taken back when the job's
	// next node dies. Before, its restart's mark stayed, and it was.
	y := dramNode("127.0.0.1:7052", 1<<30, 8000)
	mustRegister(t, c, y)
	backThenNextDies(t, c, x.Addr, y.Addr) // x lost again, y taken; x back with its data, y dead
	m3, _ := c.GetMap(m.Job, m.Token)
	if len(m3.Nodes) != 1 || m3.Nodes[0].Addr != y.Addr {
		t.Fatalf("map after its next node died: %+v; want it kept on dead %s (%s came back with its data)", m3, y.Addr, x.Addr)
	}
}

// TestRestoredUnheardNodeNotAdopted: after a controller restart, a job's
// only node restarts (a new incarnation at its address) and the job
// loses it. The other node is restored from the state and has not been
// heard from: it may not be running, so the job adopts the restarted
// node, empty, not it. Before, the job was moved onto the unheard node
// (a new user's trial: a restarted `pocket up` put every restored job on
// a node of its earlier run that was not running, and puts answered
// "node is dead" for 50 s).
func TestRestoredUnheardNodeNotAdopted(t *testing.T) {
	r := newRestartable(t, Config{DeadNodeGrace: time.Minute}, false)
	at, x := incNode(t, r.ctl, 22)
	m := soloJob(t, r.ctl)
	y := dramNode("127.0.0.1:7002", 4<<30, 8000) // more room: it would win
	mustRegister(t, r.ctl, y)
	c := r.restart()
	x.Incarnation = 23 // x comes back as a new process; y does not
	at.inc.Store(23)
	mustRegister(t, c, x)
	m2, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Nodes) != 1 || m2.Nodes[0].Addr != x.Addr || len(m2.Lost) != 1 || m2.Lost[0].Addr != x.Addr {
		t.Fatalf("map after its only node restarted beside an unheard node: %+v; want %s alone (restarted), and lost", m2, x.Addr)
	}
}

// TestNewJobAvoidsRestoredUnheardNodes: after a controller restart whose
// two earlier nodes have not been heard from (they may be dead) and a new
// node has registered, a new job is placed on the new node only. Before,
// Pocket's default (16 Gb/s on 8 Gb/s nodes: two) took an unheard node
// too (a hostile trial: jobs registered in a lone controller's first 7 s
// went over six nodes, three of them dead, and their puts failed
// "unavailable").
func TestNewJobAvoidsRestoredUnheardNodes(t *testing.T) {
	r := newRestartable(t, Config{DeadNodeGrace: time.Minute, RestoreSettle: 200 * time.Millisecond}, false)
	mustRegister(t, r.ctl, dramNode("127.0.0.1:7001", 4<<30, 8000))
	mustRegister(t, r.ctl, dramNode("127.0.0.1:7002", 4<<30, 8000))
	c := r.restart()
	fresh := dramNode("127.0.0.1:7003", 4<<30, 8000)
	mustRegister(t, c, fresh)
	m, err := c.RegisterJob("fresh", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 1 || m.Nodes[0].Addr != fresh.Addr {
		t.Fatalf("new job placed over %+v; want the heard node %s alone", m.Nodes, fresh.Addr)
	}
	// A hint the heard node cannot hold goes over the unheard ones too
	// (they may well be up, a heartbeat away).
	if m, err := c.RegisterJob("big", wire.JobHints{CapacityBytes: 6 << 30}); err != nil || len(m.Nodes) != 2 || m.Nodes[0].Addr != fresh.Addr && m.Nodes[1].Addr != fresh.Addr {
		t.Fatalf("a 6 GiB hint beside one heard 4 GiB node: %+v, %v; want it on the heard node and one unheard node", m, err)
	}
	// With every node unheard (none has sent its first heartbeat yet)
	// they are all there is, once RestoreSettle has run out
	// (TestRegistrationWaitsForRestoredNodes).
	c2 := r.restart()
	if m, err := c2.RegisterJob("early", wire.JobHints{}); err != nil || len(m.Nodes) == 0 {
		t.Fatalf("a job registered before any heartbeat: %+v, %v; want it placed on the restored nodes", m, err)
	}
}

// TestRegistrationWaitsForRestoredNodes: a job registered before any
// restored node has been heard from waits for them (Config.RestoreSettle)
// and is placed on the one that answers, not on the one that died while
// no controller ran. Before (no wait), it went over both: a hostile
// re-check's puts to the dead one failed "unavailable". Once every
// restored node is heard from, registrations go on at once.
func TestRegistrationWaitsForRestoredNodes(t *testing.T) {
	const wait = 30 * time.Second
	r := newRestartable(t, Config{DeadNodeGrace: time.Minute, RestoreSettle: wait}, false)
	dead := dramNode("127.0.0.1:7001", 4<<30, 8000)
	up := dramNode("127.0.0.1:7002", 4<<30, 8000)
	mustRegister(t, r.ctl, dead)
	mustRegister(t, r.ctl, up)
	c := r.restart()
	reply := make(chan error, 1)
	var m *wire.PlacementMap
	go func() {
		var err error
		m, err = c.RegisterJob("early", wire.JobHints{})
		reply <- err
	}()
	select {
	case err := <-reply:
		t.Fatalf("registered before any restored node was heard from: %+v, %v", m, err)
	case <-time.After(300 * time.Millisecond):
	}
	mustRegister(t, c, up)
	// The other restored node stays silent: the registration waits out
	// the settle, then sizing takes the heard node (heardFor).
	c.mu.Lock()
	close(c.settle.done) // as RestoreSettle running out would, not in 30 s
	c.settle = settle{}
	c.mu.Unlock()
	if err := <-reply; err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 1 || m.Nodes[0].Addr != up.Addr {
		t.Fatalf("early job placed over %+v; want the node heard from, %s, alone", m.Nodes, up.Addr)
	}

	// Every restored node heard from: no wait.
	c = r.restart()
	mustRegister(t, c, up)
	mustRegister(t, c, dead)
	done := make(chan error, 1)
	go func() {
		_, err := c.RegisterJob("later", wire.JobHints{})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait / 2):
		t.Fatal("a registration waited with every restored node heard from")
	}
}

// TestJobLosingEveryNodeGetsAsManyAsItNeeds: a job of three nodes whose
// nodes all restart (a `pocket up` restarted on its data directory: its
// nodes come back at their addresses as new processes) is placed again
// over as many of them as its allotment needs, not on one. Before, it got
// one node (weight 1) and never spread again (a new user's trial: "gets
// at most 6316 of its 18000 Mb/s"). The nodes it adopts hold their share
// from the new epoch, and the lost ones stay listed.
func TestJobLosingEveryNodeGetsAsManyAsItNeeds(t *testing.T) {
	c := deadTest(t, time.Minute)
	type srv struct {
		at *incServer
		x  *wire.NodeRegister
	}
	var nodes []srv
	for i := range 3 {
		at, x := incNode(t, c, uint64(10+i))
		nodes = append(nodes, srv{at, x})
	}
	m, err := c.RegisterJob("wide", wire.JobHints{PeakMbps: 20000})
	if err != nil || len(m.Nodes) != 3 {
		t.Fatalf("%+v %v", m, err)
	}
	for i, n := range nodes {
		restartNode(t, c, n.at, n.x, uint64(20+i))
	}
	m2, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Nodes) < 2 || len(m2.Lost) != 3 {
		t.Fatalf("map after its every node restarted: %d node(s) %+v, %d lost; want at least 2 nodes (the clean ones), 3 lost",
			len(m2.Nodes), m2.Nodes, len(m2.Lost))
	}
	for _, mn := range m2.Nodes {
		if mn.Since != m2.Epoch {
			t.Errorf("adopted node %s holds its share from epoch %d, want the loss's %d", mn.Addr, mn.Since, m2.Epoch)
		}
	}
}
