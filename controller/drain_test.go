package controller

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

func mapState(m *wire.PlacementMap, addr string) (wire.NodeState, bool) {
	for _, n := range m.Nodes {
		if n.Addr == addr {
			return n.State, true
		}
	}
	return 0, false
}

func TestDrainProtocol(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	m, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("register: %+v %v", m, err)
	}
	if _, err := c.Drain(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	heardAll(t, c)
	m2, _ := c.GetMap(m.Job, m.Token)
	if st, _ := mapState(m2, a); st != wire.NodeDraining || m2.Epoch <= m.Epoch {
		t.Fatalf("map after drain: %+v", m2)
	}
	// The draining node's table has the job's epoch, gen and expiry, from
	// which it derives the token: no token travels in an ack.
	claims, _ := token.ParseJob(testSecret, []byte(m.Job), m.Token)
	ackA, _ := c.Heartbeat(&wire.Heartbeat{Addr: a})
	if ackA.State != wire.NodeDraining || len(ackA.Jobs) != 1 || ackA.Jobs[0].Token != nil ||
		ackA.Jobs[0].Epoch != m2.Epoch || ackA.Jobs[0].Gen != claims.Gen {
		t.Fatalf("draining node's ack: %+v", ackA)
	}
	ackB, _ := c.Heartbeat(&wire.Heartbeat{Addr: b})
	if len(ackB.Jobs) != 1 || ackB.Jobs[0].Token != nil {
		t.Fatalf("an active node got a job token: %+v", ackB)
	}
	if j, _ := c.RegisterJob("video", wire.JobHints{PeakMbps: 5000}); len(j.Nodes) != 1 || j.Nodes[0].Addr != b {
		t.Fatalf("a new job was placed on the draining node: %+v", j.Nodes)
	}
	c.drainTick(time.Now())
	if countNodes(c, wire.NodeDraining) != 1 {
		t.Fatal("retired before reporting progress")
	}
	c.Heartbeat(&wire.Heartbeat{Addr: a,
		Tiers:   []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 1 << 20}},
		Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 1}}})
	c.drainTick(time.Now())
	heardAll(t, c)
	m3, _ := c.GetMap(m.Job, m.Token)
	if _, ok := mapState(m3, a); ok || len(m3.Nodes) != 1 || m3.Epoch <= m2.Epoch || math.Abs(m3.Nodes[0].Weight-1) > 1e-9 {
		t.Fatalf("map after the node left: %+v", m3)
	}
	for _, n := range c.Status().Nodes {
		if n.Addr == a {
			t.Fatal("the retired node is still listed")
		}
	}
	if _, err := c.RegisterNode(dramNode(a, 1<<30, 1000)); !errors.Is(err, wire.ErrDraining) {
		t.Fatalf("a retired node registered again: %v", err)
	}
}

func TestDrainEmptyNodeLeaves(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	if _, err := c.Drain(a, 0); err != nil {
		t.Fatal(err)
	}
	// A report made before the node heard of its drain (no drainer
	// figures) says nothing of the puts it takes meanwhile: not empty.
	tiers := []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30}}
	c.Heartbeat(&wire.Heartbeat{Addr: a, Tiers: tiers})
	c.drainTick(time.Now())
	if countNodes(c, wire.NodeDraining) != 1 {
		t.Fatalf("a node retired as empty on a report made before it knew it drains: %+v", c.Status().Nodes)
	}
	c.Heartbeat(&wire.Heartbeat{Addr: a, Tiers: tiers, Metrics: drainingReport})
	c.drainTick(time.Now())
	if countNodes(c, wire.NodeDraining) != 0 || len(c.Status().Nodes) != 1 {
		t.Fatalf("an empty draining node stayed: %+v", c.Status().Nodes)
	}
}

// drainingReport is the drainer's figures of a draining node's heartbeat
// before its first pass ends (dataplane/agent: drainer.metrics).
var drainingReport = []wire.Metric{{Name: wire.MetricDrainDone, Value: 0}}

func TestDrainDeadline(t *testing.T) {
	logs := &logSink{}
	c := newTest(t, Config{Logger: logs.logger()})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	d, err := c.Drain(a, 2*time.Second)
	if err != nil || d != 2*time.Second {
		t.Fatalf("drain: %v %v", d, err)
	}
	if d, _ := c.Drain(a, time.Hour); d > 2*time.Second {
		t.Fatalf("a second order pushed the deadline out to %v", d)
	}
	c.Heartbeat(&wire.Heartbeat{Addr: a,
		Tiers:   []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 5 << 20}},
		Metrics: []wire.Metric{{Name: MetricDrainLeft, Value: 7}}})
	c.drainTick(time.Now())
	if countNodes(c, wire.NodeDraining) != 1 {
		t.Fatal("retired before the deadline")
	}
	c.drainTick(time.Now().Add(3 * time.Second))
	if countNodes(c, wire.NodeDraining) != 0 || !logs.contains("7 value(s) not moved (lost)") {
		t.Fatalf("deadline: nodes %+v, logs %q", c.Status().Nodes, logs.msgs())
	}
}

func TestDrainGivesOrphanedJobsANode(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	m, err := c.RegisterJob("small", wire.JobHints{CapacityBytes: 1 << 20})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("register: %+v %v", m, err)
	}
	if _, err := c.Drain(a, 0); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("draining the only node: %v", err)
	}
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	if _, err := c.Drain(a, 0); err != nil {
		t.Fatal(err)
	}
	heardAll(t, c)
	m2, _ := c.GetMap(m.Job, m.Token)
	if st, ok := mapState(m2, b); !ok || st != wire.NodeActive {
		t.Fatalf("the job got no node for its data: %+v", m2)
	}
}

func TestDrainRefusals(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Millisecond})
	if _, err := c.Drain("127.0.0.1:1", 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	nonce := []byte("0123456789abcdef")
	if _, err := c.drainRequest(nonce, &wire.DrainNode{Addr: a, Proof: token.DrainProof([]byte("not-the-cluster-secret"), nonce, a, 0)}); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("drain order without the secret: %v", err)
	}
	// A node's proof (what it sends in every heartbeat) is no drain order,
	// and no proof holds without the connection's challenge.
	if _, err := c.drainRequest(nonce, &wire.DrainNode{Addr: a, Proof: token.NodeProof(testSecret, nonce, a)}); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("a node's proof as a drain order: %v", err)
	}
	if _, err := c.drainRequest(nil, &wire.DrainNode{Addr: a, Proof: token.DrainProof(testSecret, nil, a, 0)}); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("drain order without a challenge: %v", err)
	}
	if countNodes(c, wire.NodeDraining) != 0 {
		t.Fatal("a refused order drained the node")
	}
	c.sweep(time.Now().Add(time.Second))
	if _, err := c.Drain(a, 0); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("dead node: %v", err)
	}
}

// TestRequestDrainOverTheNetwork sends the drain order the way `pocket
// node drain` does.
func TestRequestDrainOverTheNetwork(t *testing.T) {
	c := newTest(t, Config{})
	addr, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	ctx := context.Background()
	d, err := RequestDrain(ctx, addr.String(), a, 90*time.Second, testSecret)
	if err != nil || d != 90*time.Second {
		t.Fatalf("drain: %v %v", d, err)
	}
	if countNodes(c, wire.NodeDraining) != 1 {
		t.Fatal("not draining")
	}
	_, err = RequestDrain(ctx, addr.String(), b, 0, []byte("not-the-cluster-secret"))
	if !errors.Is(err, wire.ErrBadToken) || !strings.Contains(err.Error(), b) {
		t.Fatalf("drain with a wrong secret: %v", err)
	}
}

// FuzzDrainNode feeds the drain order's decoder hostile bytes: it must
// return an error or a message that encodes back to an equal one.
func FuzzDrainNode(f *testing.F) {
	f.Add((&wire.DrainNode{Addr: "127.0.0.1:7001", Deadline: time.Minute, Proof: []byte("p")}).Encode(newBuilder()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m wire.DrainNode
		if err := m.Decode(b); err != nil {
			return
		}
		var m2 wire.DrainNode
		if err := m2.Decode(m.Encode(newBuilder())); err != nil || m2.Addr != m.Addr || m2.Deadline != m.Deadline || string(m2.Proof) != string(m.Proof) {
			t.Fatalf("round trip: %+v -> %+v %v", m, m2, err)
		}
	})
}

func newBuilder() *flatbuffers.Builder { return flatbuffers.NewBuilder(256) }

// TestDrainSaved: a drain is in the store when Drain returns, before any
// sweeper tick (the interval here is an hour), so a controller killed
// right after answering `pocket node drain` restarts with the node
// draining; with the store failing, Drain says so (CodeUnavailable).
func TestDrainSaved(t *testing.T) {
	m := state.NewMemory()
	c := newTest(t, Config{Store: m, HeartbeatInterval: time.Hour, DeadAfter: time.Hour})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	if _, err := c.Drain(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	snap, err := m.Load()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(snap.Nodes, func(n state.Node) bool { return n.Addr == a })
	if i < 0 || wire.NodeState(snap.Nodes[i].State) != wire.NodeDraining || snap.Nodes[i].DrainDeadline.IsZero() {
		t.Fatalf("stored nodes after Drain(%s): %+v; want it draining with its deadline", a, snap.Nodes)
	}
	m.SetFail(errors.New("disk full"))
	if _, err := c.Drain(b, time.Minute); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("Drain with a failing store: %v; want unavailable", err)
	}
}

// retireEmpty drains the registered node at addr, reports it empty and
// retires it.
func retireEmpty(t *testing.T, c *Controller, addr string) {
	t.Helper()
	if _, err := c.Drain(addr, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Heartbeat(&wire.Heartbeat{Addr: addr, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30}}, Metrics: drainingReport})
	c.drainTick(time.Now())
	if st := c.Status(); len(st.Nodes) != 1 || st.Nodes[0].Addr == addr {
		t.Fatalf("node %s not retired: %+v", addr, st.Nodes)
	}
}

// TestRetiredNodeIsToldToStop: the process a drain retired, registering
// again (its agent does after the heartbeat the controller no longer
// knows), is refused with CodeDraining, which tells it to stop
// (metaclient.ErrRetired), also after a restart of the controller on its
// state. Another process started at that address (another incarnation)
// is refused with CodeUnavailable, which its agent retries, and is taken
// once the controller forgets the retired node. Before, every
// registration at the address was answered "draining", and the retired
// process, retrying, came back as an active node a minute later.
func TestRetiredNodeIsToldToStop(t *testing.T) {
	r := newRestartable(t, Config{ForgetAfter: time.Minute}, false)
	a, b := dramNode("127.0.0.1:7001", 1<<30, 1000), dramNode("127.0.0.1:7002", 1<<30, 1000)
	a.Incarnation, b.Incarnation = 41, 42
	mustRegister(t, r.ctl, a)
	mustRegister(t, r.ctl, b)
	retireEmpty(t, r.ctl, a.Addr)
	r.ctl.mu.Lock()
	r.ctl.dirtyNodesLocked() // as the sweeper does after a drain tick
	r.ctl.mu.Unlock()
	if err := r.ctl.flush(); err != nil {
		t.Fatal(err)
	}
	other := *a
	other.Incarnation = 43
	for run := range 2 {
		c := r.ctl
		if run == 1 {
			c = r.restart()
		}
		if _, err := c.RegisterNode(a); !errors.Is(err, wire.ErrDraining) || !strings.Contains(err.Error(), "must stop") {
			t.Fatalf("run %d: the retired node registering again: %v; want told to stop", run, err)
		}
		if _, err := c.RegisterNode(&other); !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "a new node may register there from") {
			t.Fatalf("run %d: a new node at a retired node's address: %v; want asked to retry later", run, err)
		}
	}
	r.ctl.sweep(time.Now().Add(2 * time.Minute))
	mustRegister(t, r.ctl, &other)
}

// TestRetiredNodeOfUnknownIncarnation: at the address of a node retired
// without a known incarnation (recorded by an older controller), a process
// that sends an incarnation is told to retry, not to stop (it may be a new
// node, and a node told to stop exits for good; third hostile pass), and
// one that sends none (an older agent) is told to stop as before.
func TestRetiredNodeOfUnknownIncarnation(t *testing.T) {
	c := newTest(t, Config{})
	a := dramNode("127.0.0.1:7001", 1<<30, 1000)
	mustRegister(t, c, a)
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 1000))
	retireEmpty(t, c, a.Addr)
	again := *a
	again.Incarnation = 5
	if _, err := c.RegisterNode(&again); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("a process with an incarnation at the address of a node retired with none: %v; want told to retry (it may be a new node; stopping is final)", err)
	}
	again.Incarnation = 0
	if _, err := c.RegisterNode(&again); !errors.Is(err, wire.ErrDraining) {
		t.Fatalf("a registration without an incarnation at a retired node's address: %v; want told to stop", err)
	}
}

// TestDrainDeadlineLosesOnlyJobsWithValuesLeft: a drain whose deadline
// passes with values not moved records the node lost for the jobs that
// may have left values there, not for a job the node's per-job figures,
// made once it knew it drains, show holding nothing. Before, every job on
// the node recorded it lost: a hostile trial's tenant left one unconfirmed
// chunk on a node drained with a 20 s deadline, and another tenant's job,
// all of whose values had moved, answered "lost" for keys it never wrote.
func TestDrainDeadlineLosesOnlyJobsWithValuesLeft(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	jobs := map[string]*wire.PlacementMap{}
	for _, name := range []string{"moved", "left", "unlisted"} {
		m, err := c.RegisterJob(name, wire.JobHints{PeakMbps: 1500})
		if err != nil || len(m.Nodes) != 2 {
			t.Fatalf("register %s: %+v %v", name, m, err)
		}
		jobs[name] = m
	}
	heardAll(t, c)
	if _, err := c.Drain(a, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	heardAll(t, c)
	// Twice: a heartbeat an ack asked for at once (ack.More) is kept out of
	// the figures.
	for range 2 {
		c.Heartbeat(&wire.Heartbeat{Addr: a, Incarnation: 7,
			Tiers:   []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 1000}},
			Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 0}, {Name: MetricDrainLeft, Value: 1}},
			Loads:   []wire.JobLoad{{Job: jobs["left"].Job, Bytes: 1000}, {Job: jobs["moved"].Job}}})
	}
	c.drainTick(time.Now().Add(3 * time.Second))
	if countNodes(c, wire.NodeDraining) != 0 {
		t.Fatalf("not retired at its deadline: %+v", c.Status().Nodes)
	}
	heardAll(t, c)
	for name, wantLost := range map[string]bool{"moved": false, "left": true, "unlisted": true} {
		m, err := c.GetMap(jobs[name].Job, jobs[name].Token)
		if err != nil {
			t.Fatal(err)
		}
		lost := slices.ContainsFunc(m.Lost, func(l wire.LostNode) bool { return l.Addr == a })
		if _, in := mapState(m, a); in || lost != wantLost {
			t.Errorf("job %s after the drain's deadline: nodes %+v, lost %+v; want %s out of the map, recorded lost %v",
				name, m.Nodes, m.Lost, a, wantLost)
		}
	}
}
