package controller

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestFailedRegistrationFreesItsAllotment: a registration whose write
// fails takes its job out of every index (withdrawJobLocked): its nodes'
// allotment is free again, no node's table lists it live, and the next
// job is placed as if it had never been.
func TestFailedRegistrationFreesItsAllotment(t *testing.T) {
	st := &failingStore{Store: state.NewMemory()}
	c, err := New(Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const a = "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	ack, err := c.Heartbeat(&wire.Heartbeat{Addr: a})
	if err != nil {
		t.Fatal(err)
	}
	st.fail.Store(true)
	if _, err := c.RegisterJob("big", wire.JobHints{CapacityBytes: 1 << 29, PeakMbps: 4000}); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("registration while the store fails: %v, want state not saved", err)
	}
	st.fail.Store(false)
	c.mu.Lock()
	load := c.loads[a]
	c.mu.Unlock()
	if load != nil {
		t.Errorf("node %s still carries an allotment of %.0f Mb/s and %v bytes after the failed registration", a, load.mbps, load.bytes)
	}
	ack, err = c.Heartbeat(&wire.Heartbeat{Addr: a, Since: ack.Rev})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ack.Jobs {
		if !e.Revoked {
			t.Errorf("the node's table lists %s live after its registration failed: %+v", e.Job, e)
		}
	}
	m, err := c.RegisterJob("big", wire.JobHints{CapacityBytes: 1 << 29, PeakMbps: 4000})
	if err != nil {
		t.Fatalf("the same job once the store works: %v", err)
	}
	if len(m.Nodes) != 1 || m.Nodes[0].Addr != a {
		t.Fatalf("map %+v, want %s", m.Nodes, a)
	}
}

// dropOrders accepts data-plane connections on 127.0.0.1 and sends the op
// of each one's first frame, when it is a drop order (wire.OpDropJob), to
// the returned channel, until the test ends. It answers nothing.
func dropOrders(t *testing.T) (string, <-chan wire.Op) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ops := make(chan wire.Op, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				lim := wire.DefaultLimits()
				var hb [wire.HeaderLen]byte
				if _, err := io.ReadFull(conn, hb[:]); err != nil {
					return
				}
				// The controller may first ask a node registered without
				// an incarnation for it (a question, not an order; it
				// goes unanswered here): only drop orders are sent on.
				if h, err := wire.ParseHeader(hb[:], &lim); err == nil && h.Op == wire.OpDropJob {
					ops <- h.Op
				}
				// Unanswered, held open until the controller gives up
				// (its DropTimeout): a connection closed under the order
				// would have it tried again (dropRetry).
				io.Copy(io.Discard, conn)
			}()
		}
	}()
	return ln.Addr().String(), ops
}

// noOrder fails the test if an order arrives within d.
func noOrder(t *testing.T, ops <-chan wire.Op, d time.Duration, what string) {
	t.Helper()
	select {
	case op := <-ops:
		t.Errorf("%s: a %s order went out", what, op)
	case <-time.After(d):
	}
}

// oneOrder fails the test unless a drop order arrives within d.
func oneOrder(t *testing.T, ops <-chan wire.Op, d time.Duration, what string) {
	t.Helper()
	select {
	case op := <-ops:
		if op != wire.OpDropJob {
			t.Errorf("%s: a %s order, want %s", what, op, wire.OpDropJob)
		}
	case <-time.After(d):
		t.Errorf("%s: no drop order within %v", what, d)
	}
}

// TestLostDropGoesOutOnceSaved: a returned node's drop order held back
// while the store fails goes out with the first write that saves the
// loss (here a heartbeat of another node), once.
func TestLostDropGoesOutOnceSaved(t *testing.T) {
	back, ops := dropOrders(t)
	st := &failingStore{Store: state.NewMemory()}
	c, err := New(Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour, ForgetAfter: time.Hour,
		DeadNodeGrace: time.Minute, DropTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const other = "127.0.0.1:7001"
	mustRegister(t, c, dramNode(other, 1<<30, 8000))
	reg := dramNode(back, 1<<30, 8000)
	reg.Incarnation = 7 // the order is bound to it; the fake node answers no question of it
	mustRegister(t, c, reg)
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	st.fail.Store(true)
	c.SetNodeState(back, wire.NodeDead)
	sweepPastGrace(c)
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: back, Incarnation: 7}); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("heartbeat while the store fails: %v", err)
	}
	noOrder(t, ops, 500*time.Millisecond, "the loss not saved")
	st.fail.Store(false)
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: other}); err != nil {
		t.Fatal(err)
	}
	oneOrder(t, ops, 3*time.Second, "the loss saved")
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: back}); err != nil {
		t.Fatal(err)
	}
	noOrder(t, ops, 300*time.Millisecond, "a second heartbeat of the returned node")
}

// TestSavedRetirementRunsItsHooks: a retirement held back while the store
// fails (no hooks, no order to stop: CodeUnavailable to the node's
// registration) takes effect once a write saves it: the next tick runs
// the hooks once, the node is told to stop, and a restart keeps it out.
func TestSavedRetirementRunsItsHooks(t *testing.T) {
	st := &failingStore{Store: state.NewMemory()}
	cfg := Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour, ForgetAfter: time.Hour}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	const x = "127.0.0.1:7001"
	regX := dramNode(x, 1<<30, 8000)
	regX.Incarnation = 7
	mustRegister(t, c, regX)
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 8000))
	var mu sync.Mutex
	var hooks []string
	c.OnRetire(func(addr, why string) {
		mu.Lock()
		hooks = append(hooks, addr)
		mu.Unlock()
	})
	ran := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), hooks...)
	}
	if _, err := c.Drain(x, time.Minute); err != nil {
		t.Fatal(err)
	}
	st.fail.Store(true)
	c.Heartbeat(&wire.Heartbeat{Addr: x, Incarnation: 7, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 8000}}, Metrics: drainingReport})
	c.drainTick(time.Now())
	if _, err := c.RegisterNode(regX); !errors.Is(err, wire.ErrUnavailable) {
		t.Errorf("registration of the node retired while the store fails: %v, want state not saved", err)
	}
	c.drainTick(time.Now())
	if h := ran(); len(h) != 0 {
		t.Fatalf("hooks ran for %v while the retirement was not saved", h)
	}
	st.fail.Store(false)
	if _, err := c.RegisterNode(regX); !errors.Is(err, wire.ErrDraining) {
		t.Errorf("registration of the retired node once the store works: %v, want the order to stop", err)
	}
	c.drainTick(time.Now())
	c.drainTick(time.Now())
	if h := ran(); len(h) != 1 || h[0] != x {
		t.Errorf("hooks ran for %v once the retirement was saved, want [%s] once", h, x)
	}
	c.Close()
	if c, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterNode(regX); !errors.Is(err, wire.ErrDraining) {
		t.Errorf("registration of the retired node after a restart: %v, want the order to stop", err)
	}
}

// TestUnsavedExpiryDropsNothing: a job that expires while the store fails
// has its drop orders sent only once a write saves the expiry (the
// sweeper's next flush), not at once.
func TestUnsavedExpiryDropsNothing(t *testing.T) {
	addr, ops := dropOrders(t)
	st := &failingStore{Store: state.NewMemory()}
	c, err := New(Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour, DropTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := dramNode(addr, 1<<30, 8000)
	reg.Incarnation = 7 // the order is bound to it; the fake node answers no question of it
	mustRegister(t, c, reg)
	m, err := c.RegisterJobFrom("", &wire.JobRegister{Name: "short", TTL: time.Millisecond})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("%+v %v", m, err)
	}
	st.fail.Store(true) // before the sweeper may expire it too
	time.Sleep(5 * time.Millisecond)
	c.expireJobs(time.Now())
	if err := c.flush(); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("flush while the store fails: %v", err)
	}
	noOrder(t, ops, 500*time.Millisecond, "the expiry not saved")
	st.fail.Store(false)
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	oneOrder(t, ops, 3*time.Second, "the expiry saved")
}

// TestUnsavedEndIsNotAnswered: a deregistration answered "state not
// saved" has forgotten the job in memory only; until a write saves that,
// no answer may say the job ended (a retried deregistration's "ended", a
// map fetch's unknown job or final map): a client that took it would stop
// retrying, and a restart has the job live with nobody to end it.
func TestUnsavedEndIsNotAnswered(t *testing.T) {
	st := &failingStore{Store: state.NewMemory()}
	cfg := Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour, HeartbeatInterval: 20 * time.Millisecond}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	st.fail.Store(true)
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("deregistration while the store fails: %v, want state not saved", err)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); !errors.Is(err, wire.ErrUnavailable) {
		t.Errorf("deregistration retried while the store fails: %v, want state not saved", err)
	}
	if _, err := c.GetMap(m.Job, m.Token); !errors.Is(err, wire.ErrUnavailable) {
		t.Errorf("map fetch while the store fails: %v, want state not saved", err)
	}
	if fm, err := c.GetMapOrEnded(m.Job, m.Token); !errors.Is(err, wire.ErrUnavailable) {
		t.Errorf("final map fetch while the store fails: %+v %v, want state not saved", fm, err)
	}
	st.fail.Store(false)
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Errorf("deregistration retried once the store works: %v, want ended", err)
	}
	c.Close()
	if c, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	if n := c.Status().JobCount; n != 0 {
		t.Errorf("%d jobs after a restart, want 0: the deregistration was answered as done", n)
	}
}

// TestWithdrawnJobOnBolt: on the bbolt store, the write after a withdrawn
// registration (which deletes the record a write may have stored after
// all, here none) succeeds, and a controller reopened on the file has no
// job.
func TestWithdrawnJobOnBolt(t *testing.T) {
	dir := t.TempDir()
	db, err := state.OpenBolt(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := &failingStore{Store: db}
	c, err := New(Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	st.fail.Store(true)
	if _, err := c.RegisterJob("j", wire.JobHints{}); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("registration while the store fails: %v", err)
	}
	st.fail.Store(false)
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001"}); err != nil {
		t.Fatalf("the write after the withdrawal: %v", err)
	}
	c.Close()
	snap, err := db.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Jobs) != 0 {
		t.Errorf("the store holds %d job records after a withdrawn registration: %+v", len(snap.Jobs), snap.Jobs)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
