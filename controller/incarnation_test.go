package controller

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// incServer stands for a storage node's data-plane listener on loopback:
// it answers wire.OpIncarnation with its incarnation and a proof made with
// its secret, as dataplane.Node does, and any other request with an error.
type incServer struct {
	t      *testing.T
	ln     net.Listener
	inc    atomic.Uint64
	refuse atomic.Int32 // connections still to close at accept, unanswered
	secret []byte
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// newIncServer listens at listen ("127.0.0.1:0" for a new port) as the
// node with incarnation inc holding secret; the test's end stops it.
func newIncServer(t *testing.T, listen string, inc uint64, secret []byte) *incServer {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	s := &incServer{t: t, ln: ln, secret: secret, conns: map[net.Conn]struct{}{}}
	s.inc.Store(inc)
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.stop)
	return s
}

func (s *incServer) addr() string { return s.ln.Addr().String() }

// stop closes the listener and every connection, and waits for them.
func (s *incServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *incServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if s.refuse.Add(-1) >= 0 {
			c.Close() // over the node's limits, its reserve held too
			continue
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

// serve answers the requests of one connection until it closes.
func (s *incServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	lim := wire.DefaultLimits()
	enc := wire.NewEncoder()
	var hb [wire.HeaderLen]byte
	for {
		if _, err := io.ReadFull(c, hb[:]); err != nil {
			return
		}
		h, err := wire.ParseHeader(hb[:], &lim)
		if err != nil || h.PayloadLen != 0 {
			return
		}
		meta := make([]byte, h.MetaLen)
		if _, err := io.ReadFull(c, meta); err != nil {
			return
		}
		var req wire.Request
		if err := wire.DecodeRequest(meta, &lim, &req); err != nil {
			return
		}
		var out []byte
		if h.Op == wire.OpIncarnation {
			inc := s.inc.Load()
			out = enc.Response(&wire.Response{Incarnation: inc, Proof: token.IncarnationProof(s.secret, req.Key, inc)})
		} else {
			out = enc.ErrorResponse(wire.Errorf(wire.CodeUnknownOp, "%v", h.Op))
		}
		rh := wire.Header{Op: h.Op.Reply(), ID: h.ID, MetaLen: uint32(len(out))}
		if h.Op != wire.OpIncarnation {
			rh.Code = wire.CodeUnknownOp
		}
		if _, err := c.Write(append(wire.AppendHeader(nil, &rh), out...)); err != nil {
			return
		}
	}
}

// liveJob registers two nodes served by incServers (incarnations 11 and
// 22) with c, and a job on both.
func liveJob(t *testing.T, c *Controller) (a, b *incServer, m *wire.PlacementMap) {
	t.Helper()
	a, b = newIncServer(t, "127.0.0.1:0", 11, testSecret), newIncServer(t, "127.0.0.1:0", 22, testSecret)
	for _, s := range []*incServer{a, b} {
		reg := dramNode(s.addr(), 1<<30, 8000)
		reg.Incarnation = s.inc.Load()
		mustRegister(t, c, reg)
	}
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	return a, b, m
}

// keptNode fails t unless j's map is still m's, with addr active in it.
func keptNode(t *testing.T, c *Controller, m *wire.PlacementMap, addr, after string) {
	t.Helper()
	m2, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if st, in := mapState(m2, addr); !in || st != wire.NodeActive || len(m2.Lost) != 0 || m2.Epoch != m.Epoch {
		t.Fatalf("map after %s: %+v; want the node %s kept, active, at epoch %d", after, m2, addr, m.Epoch)
	}
}

// TestSecondNodeAtALiveAddressRefused: a second node registering with the
// address of a live node and its own incarnation (misconfigured with the
// same advertised address, or anyone holding the secret) is refused,
// with an error naming the node serving there, and the jobs keep the live
// node. Before, the controller took the registration for a restart of
// the node: every job that had it lost it at once and its values read
// "lost" (a hostile review).
func TestSecondNodeAtALiveAddressRefused(t *testing.T) {
	c := deadTest(t, time.Minute)
	_, b, m := liveJob(t, c)
	second := dramNode(b.addr(), 1<<30, 8000)
	second.Incarnation = 99
	for range 3 { // its agent retries
		_, err := c.RegisterNode(second)
		if !errors.Is(err, wire.ErrExists) || !strings.Contains(err.Error(), "incarnation 22 is serving at "+b.addr()) {
			t.Fatalf("second node at %s: %v; want refused as a second node", b.addr(), err)
		}
	}
	keptNode(t, c, m, b.addr(), "a second node registered at its address")
	// The live node's own registration, retried, still stands.
	again := dramNode(b.addr(), 1<<30, 8000)
	again.Incarnation = 22
	mustRegister(t, c, again)
	keptNode(t, c, m, b.addr(), "the live node registered again")
}

// TestUnprovenRestartRefused: a node answering at the address without a
// proof of the cluster secret, or no node answering at all, confirms no
// restart: the registration is refused (the node's agent retries) and the
// jobs keep the node. A restarted node serves before it registers, so
// once it answers, its retried registration is taken for a restart.
func TestUnprovenRestartRefused(t *testing.T) {
	c := deadTest(t, time.Minute)
	_, b, m := liveJob(t, c)
	addr := b.addr()
	b.stop()
	forger := newIncServer(t, addr, 23, []byte("not-the-cluster-secret-at-all"))
	restarted := dramNode(addr, 1<<30, 8000)
	restarted.Incarnation = 23
	if _, err := c.RegisterNode(restarted); !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "proof") {
		t.Fatalf("restart claimed by a node without the secret: %v; want refused for its proof", err)
	}
	forger.stop()
	if _, err := c.RegisterNode(restarted); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("restart claimed with no node serving at %s: %v; want unavailable", addr, err)
	}
	keptNode(t, c, m, addr, "unconfirmed restarts")
	newIncServer(t, addr, 23, testSecret) // the restarted node serves now
	mustRegister(t, c, restarted)
	m2, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, in := mapState(m2, addr); in || len(m2.Lost) != 1 || m2.Lost[0].Addr != addr {
		t.Fatalf("map after the confirmed restart: %+v; want %s lost", m2, addr)
	}
}

// TestRestartProbeRetriesAClosedConnection: a restarted node whose
// address closes the controller's first connections unanswered (its
// connection slots and, for a moment, its reserve taken by clients from
// the controller's address) is asked again on a new connection within
// the probe timeout, so its registration is taken at once. Without the
// retry it was refused ("cannot confirm") until the agent's next try.
func TestRestartProbeRetriesAClosedConnection(t *testing.T) {
	c := deadTest(t, time.Minute)
	_, b, m := liveJob(t, c)
	b.refuse.Store(2)
	b.inc.Store(23)
	restarted := dramNode(b.addr(), 1<<30, 8000)
	restarted.Incarnation = 23
	mustRegister(t, c, restarted)
	if n := b.refuse.Load(); n >= 0 {
		t.Fatalf("%d refusals left: the controller did not meet them", n+1)
	}
	m2, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, in := mapState(m2, b.addr()); in || len(m2.Lost) != 1 || m2.Lost[0].Addr != b.addr() {
		t.Fatalf("map after the confirmed restart: %+v; want %s lost", m2, b.addr())
	}
}

// TestRestartChecksAreBounded: the question to a node that accepts the
// connection and never answers ends at the probe timeout, and the
// registry's lock is free while it waits: another node's heartbeat goes
// through while the check is under way.
func TestRestartChecksAreBounded(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, ProbeTimeout: 2 * time.Second})
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	dialed := make(chan net.Conn, 1)
	go func() {
		if conn, err := silent.Accept(); err == nil {
			dialed <- conn // held open, never answered
		}
	}()
	reg := dramNode(silent.Addr().String(), 1<<30, 8000)
	reg.Incarnation = 5
	mustRegister(t, c, reg)
	other := dramNode("127.0.0.1:7009", 1<<30, 8000)
	mustRegister(t, c, other)
	restarted := *reg
	restarted.Incarnation = 6
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := c.RegisterNode(&restarted); done <- err }()
	var conn net.Conn
	select {
	case conn = <-dialed:
		defer conn.Close()
	case err := <-done:
		t.Fatalf("registration ended before the node was asked: %v", err)
	}
	if ack, err := c.Heartbeat(&wire.Heartbeat{Addr: other.Addr}); err != nil || !ack.Known {
		t.Fatalf("heartbeat during a restart check: %+v %v", ack, err)
	}
	select {
	case err := <-done:
		t.Fatalf("the check ended (%v) before its bound while the node had not answered", err)
	default: // the heartbeat went through while the check waited
	}
	if err := <-done; !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("restart of a node that does not answer: %v; want unavailable", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the restart check took %v with a 2 s bound", d)
	}
}

// TestRestartWhileNoControllerRanSeen: node incarnations are part of the
// controller's durable state, so a controller restarted on its store
// knows them: a node that restarted while no controller ran registers
// with a new incarnation and its jobs lose it (its keys read "lost", not
// "not found"), and a second node claiming a live node's address is
// refused. Before, a restored node's incarnation was unknown and both
// registrations were taken as the node's own, the first leaving the empty
// node in its jobs' maps (a hostile review).
func TestRestartWhileNoControllerRanSeen(t *testing.T) {
	for _, bolt := range []bool{false, true} {
		r := newRestartable(t, Config{DeadAfter: time.Hour, DeadNodeGrace: time.Minute}, bolt)
		a, b, m := liveJob(t, r.ctl)
		c := r.restart()
		synced := func() { // a restored map is handed out once its nodes have synced
			syncNode(t, c, a.addr())
			syncNode(t, c, b.addr())
		}
		synced()
		second := dramNode(b.addr(), 1<<30, 8000)
		second.Incarnation = 99
		if _, err := c.RegisterNode(second); !errors.Is(err, wire.ErrExists) {
			t.Fatalf("bolt %v: a second node at %s after the controller restarted: %v; want refused", bolt, b.addr(), err)
		}
		keptNode(t, c, m, b.addr(), "a second node registered after the controller restarted")
		b.inc.Store(23) // the node restarted while no controller ran
		restarted := dramNode(b.addr(), 1<<30, 8000)
		restarted.Incarnation = 23
		mustRegister(t, c, restarted)
		synced()
		m2, err := c.GetMap(m.Job, m.Token)
		if err != nil {
			t.Fatal(err)
		}
		if _, in := mapState(m2, b.addr()); in || len(m2.Lost) != 1 || m2.Lost[0].Addr != b.addr() {
			t.Fatalf("bolt %v: map after the node restarted while no controller ran: %+v; want %s lost", bolt, m2, b.addr())
		}
	}
}

// TestLearnedIncarnationStored: a node restored without an incarnation
// (from a state written before they were stored) teaches it with a
// heartbeat, and the store keeps it for the next controller.
func TestLearnedIncarnationStored(t *testing.T) {
	r := newRestartable(t, Config{DeadAfter: time.Hour}, false)
	mustRegister(t, r.ctl, dramNode("127.0.0.1:7001", 1<<30, 8000)) // no incarnation
	c := r.restart()
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001", Incarnation: 31}); err != nil {
		t.Fatal(err)
	}
	c = r.restart()
	c.mu.Lock()
	got := c.nodes["127.0.0.1:7001"].incarnation
	c.mu.Unlock()
	if got != 31 {
		t.Fatalf("incarnation after a restart: %d; want 31, learned from a heartbeat and stored", got)
	}
}

// TestSecondNodeWarningsThrottled: a second node at a live node's address
// refused over and over (a supervisor restarting it) is logged once per
// probeWarnGap, not once a refusal; another address has its own warning.
func TestSecondNodeWarningsThrottled(t *testing.T) {
	logs := &logSink{}
	c := newTest(t, Config{DeadAfter: time.Hour, ForgetAfter: time.Hour, Logger: logs.logger()})
	a, b, _ := liveJob(t, c)
	for _, s := range []*incServer{a, b, a, b, a, b} {
		second := dramNode(s.addr(), 1<<30, 8000)
		second.Incarnation = 99
		if _, err := c.RegisterNode(second); !errors.Is(err, wire.ErrExists) {
			t.Fatalf("second node at %s: %v; want refused", s.addr(), err)
		}
	}
	const warning = "a second node registers at a live node's address"
	if n := strings.Count(logs.msgs(), warning); n != 2 {
		t.Fatalf("%d warnings for 6 refusals at 2 addresses; want 2 (one per address):\n%s", n, logs.msgs())
	}
}

func TestRefusalWarningsAllow(t *testing.T) {
	var w refusalWarnings
	now := time.Now()
	if ok, _ := w.allow("a", now); !ok {
		t.Fatal("the first warning was held back")
	}
	for i := range 3 {
		if ok, _ := w.allow("a", now.Add(time.Duration(i+1)*time.Second)); ok {
			t.Fatalf("warning %d within %v of the first was logged", i+2, probeWarnGap)
		}
	}
	if ok, quiet := w.allow("a", now.Add(probeWarnGap)); !ok || quiet != 3 {
		t.Fatalf("after %v: allowed %v with %d held back; want allowed, 3", probeWarnGap, ok, quiet)
	}
	for i := range maxWarnAddrs + 10 {
		w.allow(fmt.Sprint("addr-", i), now.Add(probeWarnGap))
	}
	if len(w.last) > maxWarnAddrs {
		t.Fatalf("%d addresses remembered; want at most %d", len(w.last), maxWarnAddrs)
	}
	w.allow("late", now.Add(3*probeWarnGap))
	if len(w.last) > maxWarnAddrs || w.last["late"] == nil {
		t.Fatalf("old warnings were not pruned for a new address: %d remembered", len(w.last))
	}
}
