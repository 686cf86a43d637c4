package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/etcdtest"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestNoNodeLostWhileAllAreDead: a controller restored with nodes that
// hears from none of them marks them dead but takes none out of the
// maps, however long they stay silent: it may be the one cut off (an
// --advertise address the nodes cannot reach). It is deaf, also once a
// node of its own registers. When one of its nodes is heard again, the
// others get another grace from then (a partition's end lets them back a
// heartbeat apart), and only then are lost. On the old code the restored
// controller lost one of the job's two healthy nodes past the grace (a new
// user's trial: 553 of 825 acknowledged values); on the code before the
// grace from the regained contact, the second node came back 0.5 s after
// the first and was lost (a hostile trial: 1,114 values).
func TestNoNodeLostWhileAllAreDead(t *testing.T) {
	grace := 500 * time.Millisecond
	r := newRestartable(t, Config{DeadAfter: 2 * time.Second, DeadNodeGrace: grace, ForgetAfter: time.Hour}, false)
	a, b, m := twoNodeJob(t, r.ctl)
	c := r.restart()
	c.mu.Lock()
	c.contact.started = time.Now().Add(-time.Minute) // restoreGrace and DeadAfter long past
	c.mu.Unlock()
	dead := time.Now().Add(restoreGrace + 3*time.Second)
	c.sweep(dead)
	for _, addr := range []string{a, b} {
		if st, _ := nodeState(c, addr); st != wire.NodeDead {
			t.Fatalf("node %s unheard past the restore grace: %v; want dead", addr, st)
		}
	}
	if !c.Deaf() {
		t.Fatal("a restored controller that heard from none of its nodes, all dead: not deaf")
	}
	c.sweep(dead.Add(time.Minute))
	if nodes, lost := mapCounts(c, m.Job); nodes != 2 || lost != 0 {
		t.Fatalf("job's map a minute past the grace with every node dead: %d nodes, %d lost; want 2 and none", nodes, lost)
	}
	c.mu.Lock()
	for _, addr := range []string{a, b} {
		c.nodes[addr].deadSince = time.Now().Add(-time.Minute) // long past the grace
	}
	c.mu.Unlock()
	// A node of its own (another CA: the cluster's nodes cannot reach it).
	mustRegister(t, c, dramNode("127.0.0.1:7009", 1<<30, 1000))
	if !c.Deaf() {
		t.Fatal("not deaf once a node of its own registered, none of the restored ones heard")
	}
	c.sweep(time.Now().Add(grace / 2))
	if nodes, lost := mapCounts(c, m.Job); nodes != 2 || lost != 0 {
		t.Fatalf("job's map within the grace of the first node heard: %d nodes, %d lost; want 2 and none", nodes, lost)
	}
	syncNode(t, c, a)
	if c.Deaf() {
		t.Fatal("deaf after a restored node's heartbeat")
	}
	c.sweep(time.Now().Add(2 * grace)) // within DeadAfter of a's heartbeat
	if nodes, lost := mapCounts(c, m.Job); nodes != 1 || lost != 1 {
		t.Fatalf("job's map past the grace with one node heard: %d nodes, %d lost; want 1 and 1", nodes, lost)
	}
}

// TestDeafCountsOnlyNodesSavedAliveWithData: the nodes that make a
// controller deaf are those restored alive and in a job's map. One in no
// job's map heard (a hostile re-check: the bad controller's own node,
// saved by its first term, kept its second) does not make it hear; nodes
// saved dead by the term before (it could not hear them either: they
// died, and replacement nodes come) do not make it deaf (a lone
// controller resigned at every term, no leader for minutes).
func TestDeafCountsOnlyNodesSavedAliveWithData(t *testing.T) {
	r := newRestartable(t, Config{DeadAfter: 2 * time.Second, DeadNodeGrace: time.Hour, ForgetAfter: time.Hour}, false)
	a, b, _ := twoNodeJob(t, r.ctl)
	idle := "127.0.0.1:7003" // in no job's map
	mustRegister(t, r.ctl, dramNode(idle, 1<<30, 1000))
	c := r.restart()
	c.mu.Lock()
	c.contact.started = time.Now().Add(-time.Minute) // restoreGrace and DeadAfter long past
	c.mu.Unlock()
	syncNode(t, c, idle)
	c.sweep(time.Now().Add(restoreGrace + 3*time.Second)) // a, b dead; idle heard just now
	if !c.Deaf() {
		t.Fatal("not deaf: only a node holding no job's data was heard")
	}
	if err := c.SetNodeState(idle, wire.NodeDead); err != nil { // saved: every node dead
		t.Fatal(err)
	}
	c = r.restart()
	c.mu.Lock()
	c.contact.started = time.Now().Add(-time.Minute)
	c.mu.Unlock()
	c.sweep(time.Now().Add(restoreGrace + 3*time.Second))
	for _, addr := range []string{a, b} {
		if st, _ := nodeState(c, addr); st != wire.NodeDead {
			t.Fatalf("node %s: %v; want dead", addr, st)
		}
	}
	if c.Deaf() {
		t.Fatal("deaf with the nodes holding data saved dead by the term before")
	}
}

// TestDrainOfADeadNodeWaitsWhileAllAreDead: a draining node that goes
// silent with every other node is not retired as lost ("died while
// draining") while every node is dead; it is once another node is heard
// and the wait after has passed. Before, the drain's path ignored the
// rule: a hostile trial's drain ordered as every node went silent lost
// 259 values.
func TestDrainOfADeadNodeWaitsWhileAllAreDead(t *testing.T) {
	c := newTest(t, Config{DeadAfter: 300 * time.Millisecond, DeadNodeGrace: time.Second, ForgetAfter: time.Hour})
	a, b, _ := twoNodeJob(t, c)
	if _, err := c.Drain(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(10 * time.Minute) // past every lease
	c.sweep(later)
	c.drainTick(later)
	if st, ok := nodeState(c, a); !ok || st != wire.NodeDead {
		t.Fatalf("draining node silent with every node: %v (registered %v); want dead, not retired", st, ok)
	}
	syncNode(t, c, b)
	c.mu.Lock()
	c.nodes[a].leaseEnd = time.Now().Add(-time.Second) // its lease over: only the wait after b holds it
	c.mu.Unlock()
	c.drainTick(time.Now())
	if _, ok := nodeState(c, a); !ok {
		t.Fatal("draining node retired at once as another node was heard")
	}
	c.drainTick(time.Now().Add(time.Second)) // past DeadAfter since b was heard
	if _, ok := nodeState(c, a); ok {
		t.Fatal("dead draining node not retired once another node was heard and the wait passed")
	}
}

// mapCounts counts the nodes and the lost nodes of job id's map.
func mapCounts(c *Controller, id string) (nodes, lost int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	j := c.jobs[id]
	return len(j.nodes), len(j.lost)
}

// TestDeafLeaderResigns: a controller elected after the leader's death
// that hears from none of the nodes it restored resigns once they are all
// dead, and another controller leads; the nodes stay in the job's map.
// Before, it kept its term while the nodes' leases lapsed (a new user's
// trial: a controller with a wrong --advertise address, elected, kept the
// cluster down and, past the grace, lost its values).
func TestDeafLeaderResigns(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cfg := Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 300 * time.Millisecond,
		DeadNodeGrace: 500 * time.Millisecond, Logger: quietLog}
	a := startHAConfig(t, srv, "127.0.0.1:0", cfg)
	for a.ha.Leading() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	b := startHAConfig(t, srv, "127.0.0.1:0", cfg)
	c := startHAConfig(t, srv, "127.0.0.1:0", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mc := metaclient.New(a.addr, metaclient.Options{Secret: testSecret, Logger: quietLog})
	defer mc.Close()
	for _, addr := range []string{"127.0.0.1:1", "127.0.0.1:2"} {
		if _, err := mc.RegisterNode(ctx, wire.NodeRegister{Addr: addr, Tiers: []wire.TierStat{{Kind: 1, CapacityBytes: 1 << 30, Mbps: 1000}}}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := mc.RegisterJob(ctx, "deaf", wire.JobHints{PeakMbps: 2000})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("register: %+v %v", m, err)
	}
	a.kill()
	var first *haMember
	for first == nil {
		for _, x := range []*haMember{b, c} {
			if x.ha.Leading() != nil {
				first = x
			}
		}
		if ctx.Err() != nil {
			t.Fatal("no controller took over")
		}
		time.Sleep(20 * time.Millisecond)
	}
	other := b
	if first == b {
		other = c
	}
	for other.ha.Leading() == nil {
		if ctx.Err() != nil {
			t.Fatalf("the controller that took over and heard from no node kept its term (leading %v)", first.ha.Leading() != nil)
		}
		time.Sleep(20 * time.Millisecond)
	}
	lc := metaclient.New(other.addr, metaclient.Options{Logger: quietLog})
	defer lc.Close()
	got, err := lc.GetMap(ctx, m.Job, m.Token)
	if err != nil || len(got.Nodes) != 2 || len(got.Lost) != 0 {
		t.Fatalf("job's map after the deaf term: %+v, %v; want both nodes, none lost", got, err)
	}
}

// TestStandbyWithAnotherSecretStopsBeforeCampaigning: a controller
// started with another cluster secret than the one the state in etcd was
// saved with returns ErrOtherSecretHA from Run before it campaigns, while
// the leader goes on. Before, it waited as a standby until it was
// elected, and only then exited (a new user's trial).
func TestStandbyWithAnotherSecretStopsBeforeCampaigning(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	a := savedCluster(t, srv, Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 10 * time.Second, Logger: quietLog})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Config{Secret: []byte("another-cluster-secret-of-32-bytes!"), HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 10 * time.Second, Logger: quietLog}
	b := startHAConfig(t, srv, "127.0.0.1:0", cfg)
	select {
	case err := <-b.ran:
		b.ran <- err // for its cleanup
		if !errors.Is(err, ErrOtherSecretHA) {
			t.Fatalf("Run with another secret: %v; want ErrOtherSecretHA", err)
		}
	case <-ctx.Done():
		t.Fatal("a controller with another cluster secret is still running as a standby")
	}
	if a.ha.Leading() == nil {
		t.Fatal("the leader stopped leading")
	}
}

// TestStandbyWithAnotherCAStopsBeforeCampaigning: the state in etcd keeps
// the CA of the controllers that saved it; a controller of another CA
// returns ErrOtherCAHA from Run before it campaigns; one without TLS
// (no CA) does not. Before, it campaigned (a controller started on a fresh data
// directory makes a CA of its own), and a hostile trial's such
// controller, elected with a node of its own, lost 300 of 300 values in
// its second term, or without one held the leadership with no node able
// to reach it.
func TestStandbyWithAnotherCAStopsBeforeCampaigning(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cfg := func(ca string) Config {
		return Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 10 * time.Second,
			Logger: quietLog, CAID: ca}
	}
	a := savedCluster(t, srv, cfg("aaaa"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if m, ok, err := state.EtcdMeta(ctx, srv.Client(t), state.EtcdOptions{}); err != nil || !ok || m.CAID != "aaaa" {
		t.Fatalf("saved Meta %+v, %v, %v; want CA aaaa", m, ok, err)
	}
	b := startHAConfig(t, srv, "127.0.0.1:0", cfg("bbbb"))
	select {
	case err := <-b.ran:
		b.ran <- err // for its cleanup
		if !errors.Is(err, ErrOtherCAHA) {
			t.Fatalf("Run with another CA: %v; want ErrOtherCAHA", err)
		}
	case <-ctx.Done():
		t.Fatal("a controller of another CA is still running as a standby")
	}
	m := startHAConfig(t, srv, "127.0.0.1:0", cfg(""))
	select {
	case err := <-m.ran:
		m.ran <- err
		t.Fatalf("Run without TLS: %v; want it a standby", err)
	case <-time.After(time.Second):
	}
	if a.ha.Leading() == nil {
		t.Fatal("the leader stopped leading")
	}
}

// TestDeafWithoutJobsCountsEveryNodeSavedAlive: with no job yet, the
// nodes that make a controller deaf are every node restored alive. Before,
// there were none, and a hostile re-check's controller that no node could
// reach kept the leadership while a healthy standby waited (161 s, no
// end). Saved dead by that term, they no longer count in the next.
func TestDeafWithoutJobsCountsEveryNodeSavedAlive(t *testing.T) {
	r := newRestartable(t, Config{DeadAfter: 2 * time.Second, DeadNodeGrace: time.Hour, ForgetAfter: time.Hour}, false)
	mustRegister(t, r.ctl, dramNode("127.0.0.1:7001", 1<<30, 1000))
	mustRegister(t, r.ctl, dramNode("127.0.0.1:7002", 1<<30, 1000))
	deafAfterSweep := func(c *Controller) bool {
		c.mu.Lock()
		c.contact.started = time.Now().Add(-time.Minute) // restoreGrace and DeadAfter long past
		c.mu.Unlock()
		c.sweep(time.Now().Add(restoreGrace + 3*time.Second))
		return c.Deaf()
	}
	c := r.restart()
	if !deafAfterSweep(c) {
		t.Fatal("not deaf: no job, and neither restored node heard")
	}
	if err := c.SetNodeState("127.0.0.1:7001", wire.NodeDead); err != nil { // a write, which saves both dead
		t.Fatal(err)
	}
	if deafAfterSweep(r.restart()) {
		t.Fatal("deaf with every node saved dead by the term before")
	}
}

// savedCluster starts a controller on srv with cfg, waits until it leads,
// and registers a node and a job through it, so the state in etcd holds
// them and its Meta.
func savedCluster(t *testing.T, srv *etcdtest.Server, cfg Config) *haMember {
	t.Helper()
	a := startHAConfig(t, srv, "127.0.0.1:0", cfg)
	for a.ha.Leading() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc := metaclient.New(a.addr, metaclient.Options{Secret: cfg.Secret, Logger: quietLog})
	defer mc.Close()
	if _, err := mc.RegisterNode(ctx, wire.NodeRegister{Addr: "127.0.0.1:1", Tiers: []wire.TierStat{{Kind: 1, CapacityBytes: 1 << 30, Mbps: 1000}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.RegisterJob(ctx, "saved", wire.JobHints{}); err != nil {
		t.Fatal(err)
	}
	return a
}
