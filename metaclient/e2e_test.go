package metaclient_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

var secret = []byte("metaclient-e2e-secret-0123456789")

// quiet discards what the test's controller and clients log.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func startController(t *testing.T, addr string) (*controller.Controller, string) {
	t.Helper()
	c, err := controller.New(controller.Config{Secret: secret, HeartbeatInterval: 50 * time.Millisecond,
		DeadAfter: 2 * time.Second, FirstJobSeq: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Listen(addr)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c, a.String()
}

// fakeNode is a storage node's stand-in: a data-plane listener that answers
// OpDropJob and the sweep's OpVersions (checking the controller's order
// proof, made for its address and incarnation, and proving its answers)
// and a metaclient heartbeat loop.
type fakeNode struct {
	addr     string
	inc      uint64
	ln       net.Listener
	drops    atomic.Int32
	versions atomic.Int32 // versions orders of the end's sweep
	bad      atomic.Int32
	acks     atomic.Int32
	wg       sync.WaitGroup
	cancel   context.CancelFunc
	runErr   chan error
}

const valuesPerNode, bytesPerNode = 5, 5000

func startNode(t *testing.T, ctlAddr string) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &fakeNode{addr: ln.Addr().String(), inc: rand.Uint64() | 1, ln: ln, runErr: make(chan error, 1)}
	n.wg.Add(1)
	go n.serve()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	mc := metaclient.New(ctlAddr, metaclient.Options{Secret: secret, Logger: quiet})
	go func() {
		n.runErr <- mc.RunNode(ctx, metaclient.NodeLoop{
			Register: wire.NodeRegister{Addr: n.addr, Cores: 2, Incarnation: n.inc,
				Tiers: []wire.TierStat{{Kind: 1, CapacityBytes: 1 << 30, Mbps: 8000}}},
			Report: func(hb *wire.Heartbeat) {
				hb.Tiers = []wire.TierStat{{Kind: 1, CapacityBytes: 1 << 30, UsedBytes: 1 << 20, Mbps: 8000}}
				hb.RxMbps, hb.TxMbps, hb.CPUPercent = 1, 2, 3
			},
			OnAck:    func(*wire.NodeAck) { n.acks.Add(1) },
			Interval: 50 * time.Millisecond,
		})
		mc.Close()
	}()
	t.Cleanup(n.stop)
	return n
}

func (n *fakeNode) stop() {
	n.cancel()
	n.ln.Close()
	n.wg.Wait()
}

func (n *fakeNode) serve() {
	defer n.wg.Done()
	for {
		conn, err := n.ln.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer conn.Close()
			br := bufio.NewReader(conn)
			for n.answer(conn, br) {
			}
		}()
	}
}

// answer answers one frame read from br and reports whether the
// connection stays open.
func (n *fakeNode) answer(conn net.Conn, br *bufio.Reader) bool {
	lim := wire.DefaultLimits()
	h, meta, err := wire.ReadControlFrame(br, &lim, nil)
	if err != nil {
		return false
	}
	var req wire.Request
	enc := wire.NewEncoder()
	refuse := func() {
		n.bad.Add(1)
		conn.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, wire.CodeBadToken,
			enc.ErrorResponse(wire.Errorf(wire.CodeBadToken, "refused"))))
	}
	if err := wire.DecodeRequest(meta, &lim, &req); err != nil {
		refuse()
		return false
	}
	o := token.Order{Addr: n.addr, Incarnation: n.inc, Op: byte(h.Op), Flags: h.Flags, Nonce: req.Key, Carried: req.After}
	if _, err := token.VerifyOrder(secret, req.Job, o, req.Token, time.Now()); err != nil {
		refuse()
		return false
	}
	key := token.OrderKey(secret, req.Job)
	var resp wire.Response
	switch h.Op {
	case wire.OpDropJob:
		n.drops.Add(1)
		resp = wire.Response{Count: valuesPerNode, Size: bytesPerNode,
			Proof: token.DropReplyProof(key, req.Key, bytesPerNode)}
	case wire.OpVersions: // the end's sweep: this node holds no versions
		n.versions.Add(1)
		resp = wire.Response{Proof: token.VersionsReplyProof(key, req.Key, nil, false)}
	default:
		refuse()
		return false
	}
	_, err = conn.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, wire.CodeOK, enc.Response(&resp)))
	return err == nil
}

// waitActive waits until the controller lists want active nodes.
func waitActive(t *testing.T, mc *metaclient.Client, want int) *wire.ClusterStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := mc.Status(context.Background())
		if err == nil {
			active := 0
			for _, n := range st.Nodes {
				if n.State == wire.NodeActive {
					active++
				}
			}
			if active == want {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d active nodes; last status %+v, %v", want, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEndToEnd(t *testing.T) {
	ctl, addr := startController(t, "127.0.0.1:0")
	defer ctl.Close()
	nodes := []*fakeNode{startNode(t, addr), startNode(t, addr), startNode(t, addr)}
	mc := metaclient.New(addr, metaclient.Options{Logger: quiet})
	defer mc.Close()
	st := waitActive(t, mc, 3)
	for _, n := range st.Nodes {
		if len(n.Tiers) != 1 || n.Tiers[0].CapacityBytes != 1<<30 || n.Cores != 2 {
			t.Fatalf("node status %+v", n)
		}
	}
	ctx := context.Background()
	m, err := mc.RegisterJob(ctx, "sort", wire.JobHints{Lambdas: 30}) // 18000 Mb/s: 3 nodes of 8000
	if err != nil {
		t.Fatal(err)
	}
	if m.Job != "sort-1" || len(m.Nodes) != 3 || m.Epoch != 1 || !token.Verify(secret, []byte(m.Job), m.Token) {
		t.Fatalf("map %+v", m)
	}
	m2, err := mc.GetMap(ctx, m.Job, m.Token)
	if err != nil || m2.Epoch != m.Epoch || len(m2.Nodes) != 3 {
		t.Fatalf("get map: %+v %v", m2, err)
	}
	if _, err := mc.GetMap(ctx, m.Job, token.Sign(secret, []byte("other-1"))); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := mc.RegisterJob(ctx, "bad/name", wire.JobHints{}); !errors.Is(err, wire.ErrBadKey) {
		t.Fatalf("bad name: %v", err)
	}
	st, err = mc.Status(ctx)
	if err != nil || len(st.Jobs) != 1 || st.Jobs[0].Job != m.Job || st.Jobs[0].Hints.Lambdas != 30 || st.Jobs[0].Name != "sort" {
		t.Fatalf("status: %+v %v", st, err)
	}
	// Nodes learn their jobs' epochs from their acks.
	res, err := mc.DeregisterJob(ctx, m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes != 3 || res.Failed != 0 || res.Values != 3*valuesPerNode || res.Bytes != 3*bytesPerNode {
		t.Fatalf("drop result %+v", res)
	}
	// The job kept values, so the controller sweeps its unnamed versions
	// after the end: two versions orders (manifests, chunks) per node.
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for n.versions.Load() < 2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, n := range nodes {
		if n.drops.Load() != 1 || n.versions.Load() != 2 || n.bad.Load() != 0 {
			t.Fatalf("node %s: %d drops, %d versions orders, %d refused", n.addr, n.drops.Load(), n.versions.Load(), n.bad.Load())
		}
		if n.acks.Load() == 0 {
			t.Fatalf("node %s never got an ack", n.addr)
		}
	}
	if _, err := mc.GetMap(ctx, m.Job, m.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Fatalf("map of a deregistered job: %v", err)
	}
}

// TestNodeSurvivesControllerRestart: the controller goes away and comes
// back on the same address with empty registries; the node's loop keeps
// running and registers again by itself, and job clients reconnect.
func TestNodeSurvivesControllerRestart(t *testing.T) {
	ctl, addr := startController(t, "127.0.0.1:0")
	node := startNode(t, addr)
	mc := metaclient.New(addr, metaclient.Options{Logger: quiet})
	defer mc.Close()
	waitActive(t, mc, 1)
	ctl.Close()
	// While the controller is down, calls fail cleanly.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := mc.Status(ctx)
	cancel()
	if err == nil {
		t.Fatal("status succeeded with the controller down")
	}
	time.Sleep(150 * time.Millisecond) // a few missed heartbeats
	ctl2, addr2 := startController(t, addr)
	defer ctl2.Close()
	if addr2 != addr {
		t.Fatalf("restarted on %s, want %s", addr2, addr)
	}
	st := waitActive(t, mc, 1)
	if st.Nodes[0].Addr != node.addr {
		t.Fatalf("re-registered node %s, want %s", st.Nodes[0].Addr, node.addr)
	}
	select {
	case err := <-node.runErr:
		t.Fatalf("node loop ended: %v", err)
	default:
	}
	if _, err := mc.RegisterJob(context.Background(), "after", wire.JobHints{}); err != nil {
		t.Fatalf("register after restart: %v", err)
	}
	node.cancel()
	if err := <-node.runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("node loop returned %v, want context.Canceled", err)
	}
}

// TestCallHonoursContext: a call to a controller that never answers ends
// with the context.
func TestCallHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // hold it open, never answer
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	mc := metaclient.New(ln.Addr().String(), metaclient.Options{Logger: quiet})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := mc.Status(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	mc.Close()
	if _, err := mc.Status(context.Background()); !errors.Is(err, metaclient.ErrClosed) {
		t.Fatalf("closed client: %v", err)
	}
}

// TestBadSecretRefused: a node with the wrong secret never registers.
func TestBadSecretRefused(t *testing.T) {
	ctl, addr := startController(t, "127.0.0.1:0")
	defer ctl.Close()
	mc := metaclient.New(addr, metaclient.Options{Secret: []byte("not-the-cluster-secret"), Logger: quiet})
	defer mc.Close()
	_, err := mc.RegisterNode(context.Background(), wire.NodeRegister{Addr: "127.0.0.1:1"})
	if !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("want bad token, got %v", err)
	}
	if st, _ := mc.Status(context.Background()); len(st.Nodes) != 0 {
		t.Fatalf("node listed: %+v", st.Nodes)
	}
}
