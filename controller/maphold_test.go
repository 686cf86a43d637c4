package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// holdConfig is the map-hold tests' controller: 100 ms heartbeats, a
// node dead after 2 s of silence, a lease of 32 s.
var holdConfig = Config{HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 2 * time.Second, DeadNodeGrace: 30 * time.Second}

// holdRig starts an elasticRig of nodes on c, registers a job on the
// first two (b, the second, is the one the tests silence) and has every
// node heartbeat once.
func holdRig(t *testing.T, c *Controller, nodes ...string) (*elasticRig, *wire.PlacementMap) {
	t.Helper()
	rig := newElasticRig(t, c, nodes...)
	m0, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000})
	if err != nil || len(m0.Nodes) != 2 || m0.Nodes[1].Addr != nodes[1] {
		t.Fatalf("register: %+v %v", m0, err)
	}
	for _, n := range nodes {
		rig.beat(n, nil)
	}
	return rig, m0
}

// drainPastDeadline drains the silent node b with a 300 ms deadline while
// the nodes others heartbeat for 1.2 s (the drain's tick retires b as
// lost), and returns the end of the lease b holds.
func drainPastDeadline(t *testing.T, c *Controller, rig *elasticRig, b string, others ...string) time.Time {
	t.Helper()
	if _, err := c.Drain(b, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	leaseEnd := c.nodes[b].leaseEnd
	c.mu.Unlock()
	rig.beatFor(12, others...)
	return leaseEnd
}

// beatFor has the nodes addrs heartbeat every 100 ms, n times.
func (r *elasticRig) beatFor(n int, addrs ...string) {
	for range n {
		for _, a := range addrs {
			r.beat(a, nil)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDrainDuringGrowHoldsForTheDrainedNode: a member that confirmed a
// grow's epoch goes silent and is drained while the grow runs; the
// drain's map waits for it (a review: the mark kept from the grow let the
// drain's map out on the grow's confirmation).
func TestDrainDuringGrowHoldsForTheDrainedNode(t *testing.T) {
	c := newTest(t, holdConfig)
	a, b, x, y := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004"
	rig, m0 := holdRig(t, c, a, b, x, y)
	if err := c.GrowJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{a, b, x, y} {
		rig.beat(n, nil) // b confirms the grow's epoch
	}
	m1 := rig.mapOf(m0)
	if m1.Epoch == m0.Epoch || stateIn(m1, x) != wire.NodeJoining {
		t.Fatalf("grown map not out: %+v", m1)
	}
	// b goes silent now (cut off from the controller, not its clients); an operator drains it.
	if _, err := c.Drain(b, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	j := c.jobs[m0.Job]
	c.mu.Unlock()
	rig.beatFor(8, a, x, y)
	m := rig.mapOf(m0)
	c.mu.Lock()
	lease := time.Until(c.nodes[b].leaseEnd)
	since, rev := c.nodes[b].since, j.epochRev
	c.mu.Unlock()
	if m.Epoch > m1.Epoch && stateIn(m, b) == wire.NodeDraining {
		t.Errorf("drain map (epoch %d, b %v) handed out; silent b's table at rev %d < drain's %d, its lease runs %v more",
			m.Epoch, stateIn(m, b), since, rev, lease.Round(time.Millisecond))
	}
}

// TestDrainDeadlineHoldsForASilentNode: a silent (not dead) drained node
// whose drain deadline passes is retired as lost; the map without it waits
// for its lease (a review: its mark went with it, and the map went out
// 30.8 s before the lease ended).
func TestDrainDeadlineHoldsForASilentNode(t *testing.T) {
	c := newTest(t, holdConfig)
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	rig, m0 := holdRig(t, c, a, b, x)
	leaseEnd := drainPastDeadline(t, c, rig, b, a, x)
	m := rig.mapOf(m0)
	c.mu.Lock()
	_, still := c.nodes[b]
	c.mu.Unlock()
	if m.Epoch > m0.Epoch && time.Now().Before(leaseEnd) {
		t.Errorf("map epoch %d (b in map: %v, lost %+v, b registered %v) handed out %v before silent b's lease ends; b never confirmed any later epoch",
			m.Epoch, stateIn(m, b), m.Lost, still, time.Until(leaseEnd).Round(time.Millisecond))
	}
}

// TestPagedAckExtendsTheHold: an ack paged by maxAckJobs renews a node's
// lease without carrying its job's new epoch; the grown map waits for that
// lease (a review: the hold kept the lease of the bump, and the map went
// out while the node served the older one).
func TestPagedAckExtendsTheHold(t *testing.T) {
	c := newTest(t, Config{HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 3 * time.Second, DeadNodeGrace: 3 * time.Second, MaxJobs: 10000})
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	rig, m0 := holdRig(t, c, a, b, x)
	tb := time.Now() // b's last full ack
	for i := 0; i < maxAckJobs+10; i++ {
		if _, err := c.RegisterJob(fmt.Sprintf("j%d", i), wire.JobHints{PeakMbps: 0.001}); err != nil {
			t.Fatalf("register %d: %v", i, err)
		}
	}
	rig.beat(a, nil)
	rig.beat(x, nil)
	if err := c.GrowJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	j := c.jobs[m0.Job]
	l := j.losing[b]
	c.mu.Unlock()
	for time.Since(tb) < 2500*time.Millisecond {
		rig.beat(a, nil)
		rig.beat(x, nil)
		time.Sleep(100 * time.Millisecond)
	}
	// b's one heartbeat that gets through; its ack is paged (More) and b is cut off after it.
	sent := time.Now()
	ack, err := c.Heartbeat(&wire.Heartbeat{Addr: b, Since: rig.since[b], Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	hasJob := false
	for _, e := range ack.Jobs {
		if e.Job == m0.Job {
			hasJob = true
		}
	}
	nodeServesUntil := sent.Add(time.Duration(float64(ack.Lease) * 0.75))
	if hasJob || !ack.More {
		t.Fatalf("the ack carries the job (%v) or is not paged (More %v): nothing tested", hasJob, ack.More)
	}
	for time.Now().Before(l.leaseEnd.Add(300 * time.Millisecond)) {
		rig.beat(a, nil)
		rig.beat(x, nil)
		time.Sleep(100 * time.Millisecond)
	}
	m := rig.mapOf(m0)
	if m.Epoch > m0.Epoch && !hasJob && time.Now().Before(nodeServesUntil) {
		t.Errorf("grown map epoch %d handed out at +%v while b, never told it (paged ack), serves epoch %d until +%v",
			m.Epoch, time.Since(tb).Round(time.Millisecond), m0.Epoch, nodeServesUntil.Sub(tb).Round(time.Millisecond))
	}
}

// TestRetiredNodesHoldOutlivesTheNextBump: a silent drained node retired
// as lost at its deadline keeps holding the job's maps through the job's
// next bump (here a grow) while its lease runs. Before (a review), that
// bump dropped its mark (the node had left the registry).
func TestRetiredNodesHoldOutlivesTheNextBump(t *testing.T) {
	c := newTest(t, holdConfig)
	a, b, x := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	rig, m0 := holdRig(t, c, a, b, x)
	leaseEnd := drainPastDeadline(t, c, rig, b, a, x)
	c.mu.Lock()
	_, still := c.nodes[b]
	held := c.ownerBehindLocked(c.jobs[m0.Job], time.Now())
	c.mu.Unlock()
	if still || held != b {
		t.Fatalf("setup: b registered %v, held by %q", still, held)
	}
	if err := c.GrowJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	rig.beatFor(8, a, x)
	m := rig.mapOf(m0)
	if m.Epoch > m0.Epoch && time.Now().Before(leaseEnd) {
		t.Errorf("map epoch %d (lost %+v) handed out %v before silent, retired b's lease ends: the grow's bump dropped b's mark",
			m.Epoch, m.Lost, time.Until(leaseEnd).Round(time.Millisecond))
	}
}

// TestDeadDrainerKeepsItsHold: a node draining from the cluster that turns
// dead (silent for DeadAfter) keeps holding the job's maps for its lease:
// a one-node job whose node drains got an adopted node that owns half the
// keys in the dead map. Before (a review), the dead bump read the node as
// not leaving (its state dead, not draining) and dropped its mark.
func TestDeadDrainerKeepsItsHold(t *testing.T) {
	c := newTest(t, holdConfig)
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	rig := newElasticRig(t, c, a, b)
	m0, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 100})
	if err != nil || len(m0.Nodes) != 1 {
		t.Fatalf("register: %+v %v", m0, err)
	}
	x := m0.Nodes[0].Addr
	other := a
	if x == a {
		other = b
	}
	rig.beat(a, nil)
	rig.beat(b, nil)
	// x goes silent now; an operator drains it.
	if _, err := c.Drain(x, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	leaseEnd := c.nodes[x].leaseEnd
	c.mu.Unlock()
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		rig.beat(other, nil)
		time.Sleep(100 * time.Millisecond)
	}
	m := rig.mapOf(m0)
	c.mu.Lock()
	st := c.nodes[x].state
	c.mu.Unlock()
	if m.Epoch > m0.Epoch && time.Now().Before(leaseEnd) {
		t.Errorf("map epoch %d (nodes %+v; x %v) handed out %v before silent x's lease ends; x never confirmed",
			m.Epoch, m.Nodes, st, time.Until(leaseEnd).Round(time.Millisecond))
	}
}
