package controller

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestNodeMapFetchThroughBusyFlood (hostile review of ca50808): a storage
// node's own map fetches (its drainer's and mover's GetMap on the Client
// it runs RunNode on) go through a flood of busy connections over
// MaxConns, as its heartbeats do. Since ca50808 the heartbeats have a
// connection of their own, and the fetches went over a plain connection:
// evicted once idle for a second, its redial landed on probation, where a
// map fetch got the MaxConns refusal (4 of 4 failed), so a flood stalled a
// node's drain and moves. Now every connection of a client running
// RunNode proves the node role (OpNodeHello), including those of a client
// of a list of controllers (its per-controller clients).
func TestNodeMapFetchThroughBusyFlood(t *testing.T) {
	t.Run("one controller", func(t *testing.T) { testNodeMapFetchThroughBusyFlood(t, "") })
	// The unreachable second controller is never asked: the first answers.
	t.Run("a list of controllers", func(t *testing.T) { testNodeMapFetchThroughBusyFlood(t, ",127.0.0.1:1") })
}

// testNodeMapFetchThroughBusyFlood runs the test with the node's client
// given the controller's address followed by more.
func testNodeMapFetchThroughBusyFlood(t *testing.T, more string) {
	const maxConns = 4
	c := newTest(t, Config{MaxConns: maxConns, MaxConnsPerPeer: -1, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 3 * time.Second, DeadNodeGrace: time.Minute, ForgetAfter: time.Hour})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	node := "127.0.0.1:7001"
	mc := metaclient.New(a.String()+more, metaclient.Options{Secret: testSecret, Logger: quietLog})
	defer mc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := make(chan error, 1)
	go func() {
		run <- mc.RunNode(ctx, metaclient.NodeLoop{Register: *dramNode(node, 1<<30, 8000), Interval: 100 * time.Millisecond})
	}()
	defer func() { cancel(); <-run }()
	var m *wire.PlacementMap
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m, err = c.RegisterJob("flooded", wire.JobHints{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never registered: %v", err)
		}
	}
	fetch := func() error {
		fctx, fcancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer fcancel()
		_, err := mc.GetMap(fctx, m.Job, m.Token)
		return err
	}
	if err := fetch(); err != nil {
		t.Fatalf("map fetch before the flood: %v", err)
	}
	stop := make(chan struct{})
	_, floodDone := busyFlood(a.String(), []string{"127.0.0.2", "127.0.0.3"}, 4, stop)
	defer func() { close(stop); floodDone() }()
	time.Sleep(1500 * time.Millisecond) // the flood fills MaxConns; the node's fetch connection idles past evictMinIdle
	var failed []error
	for i := 0; i < 4; i++ {
		if err := fetch(); err != nil {
			failed = append(failed, err)
		}
		time.Sleep(1200 * time.Millisecond) // a drain pass later: idle again
	}
	if len(failed) > 0 {
		t.Fatalf("%d of 4 map fetches by the node during the flood failed (its heartbeats went through): %v",
			len(failed), errors.Join(failed...))
	}
	c.mu.Lock()
	st := c.nodes[node].state
	c.mu.Unlock()
	if st != wire.NodeActive {
		t.Fatalf("node %s is %v", node, st)
	}
}

// TestNodeHelloProvesTheNodeRole: a connection that proves the node role
// with OpNodeHello is a node's (outside MaxConns, served in full on
// probation), and only with a valid proof of the secret over its own
// challenge. At MaxConns 1 with the one counted connection busy, a
// connection on probation whose hello carries a proof made with another
// secret is refused and closed; one whose hello is valid fetches a map.
// On a plain connection a refused hello (another secret, no challenge, no
// address) leaves it counted by MaxConns.
func TestNodeHelloProvesTheNodeRole(t *testing.T) {
	c := newTest(t, Config{MaxConns: 1, MaxConnsPerPeer: -1})
	node := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(node, 1<<30, 8000))
	m, err := c.RegisterJob("hello", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := flatbuffers.NewBuilder(0)
	lim := wire.ControlLimits()
	type peer struct {
		net.Conn
		r *bufio.Reader
	}
	call := func(p peer, op wire.Op, msg wire.ControlMessage) ([]byte, error) {
		p.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := p.Write(wire.AppendControlFrame(nil, op, 1, wire.CodeOK, msg.Encode(b))); err != nil {
			return nil, err
		}
		h, meta, err := wire.ReadControlFrame(p.r, &lim, nil)
		if err != nil {
			return nil, err
		}
		return meta, wire.ReplyError(&h, meta)
	}
	dial := func() peer {
		conn, err := net.Dial("tcp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return peer{conn, bufio.NewReader(conn)}
	}
	challenge := func(p peer) []byte {
		meta, err := call(p, wire.OpChallenge, &wire.Challenge{})
		var ch wire.Challenge
		if err != nil || ch.Decode(meta) != nil {
			t.Fatalf("challenge: %v", err)
		}
		return ch.Nonce
	}
	counts := func() (plain, prob int) {
		c.srv.mu.Lock()
		defer c.srv.mu.Unlock()
		return c.srv.plain, c.srv.onProb
	}

	// A plain connection: refused hellos leave it counted.
	plain := dial()
	if _, err := call(plain, wire.OpNodeHello, &wire.NodeHello{Addr: node, Proof: []byte("x")}); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("hello without a challenge: %v", err)
	}
	nonce := challenge(plain)
	if _, err := call(plain, wire.OpNodeHello, &wire.NodeHello{Addr: node, Proof: token.NodeProof([]byte("not the cluster secret"), nonce, node)}); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("hello with another secret's proof: %v", err)
	}
	if _, err := call(plain, wire.OpNodeHello, &wire.NodeHello{Proof: token.NodeProof(testSecret, nonce, "")}); !errors.Is(err, wire.ErrBadKey) {
		t.Fatalf("hello without an address: %v", err)
	}
	if p, q := counts(); p != 1 || q != 0 {
		t.Fatalf("after refused hellos: counted %d, on probation %d; want 1 and 0", p, q)
	}

	// plain is MaxConns' one connection, just used: the next ones are on
	// probation.
	forger := dial()
	nonce = challenge(forger)
	if _, err := call(forger, wire.OpNodeHello, &wire.NodeHello{Addr: node, Proof: token.NodeProof([]byte("not the cluster secret"), nonce, node)}); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("forged hello on probation: %v", err)
	}
	if _, err := forger.r.ReadByte(); err == nil {
		t.Fatal("a connection on probation whose hello failed was left open")
	}
	nc := dial()
	nonce = challenge(nc)
	if _, err := call(nc, wire.OpNodeHello, &wire.NodeHello{Addr: node, Proof: token.NodeProof(testSecret, nonce, node)}); err != nil {
		t.Fatalf("node hello on probation: %v", err)
	}
	meta, err := call(nc, wire.OpGetMap, &wire.JobRef{Job: m.Job, Token: m.Token})
	var got wire.PlacementMap
	if err != nil || got.Decode(meta) != nil || got.Epoch != m.Epoch {
		t.Fatalf("map fetch on a node's connection admitted on probation: %+v %v", got, err)
	}
	if p, q := counts(); p != 1 || q != 0 {
		t.Fatalf("after the node's hello: counted %d, on probation %d; want 1 and 0", p, q)
	}
}

// TestNodeHelloNeedsTheNodeCertificate: over mutual TLS a job client's
// certificate cannot make its connection a node's, even holding the
// secret: its OpNodeHello is refused for the role, as its registration is.
func TestNodeHelloNeedsTheNodeCertificate(t *testing.T) {
	dir := testPKI(t)
	addr := tlsController(t, dir)
	client := tlsClient(t, dir, addr, "client", testSecret)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	loopCtx, stop := context.WithCancel(ctx)
	run := make(chan error, 1)
	go func() {
		run <- client.RunNode(loopCtx, metaclient.NodeLoop{Register: *dramNode("127.0.0.1:7002", 1<<30, 8000), Interval: time.Hour})
	}()
	defer func() { stop(); <-run }()
	// RunNode makes client a node's at once; retry until it has.
	for {
		_, err := client.GetMap(ctx, "j-1", []byte("tok"))
		if errors.Is(err, wire.ErrForbidden) && strings.Contains(err.Error(), "node-hello needs the role node") {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("a job client's certificate: map fetch after RunNode: %v; want node-hello refused for the role", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
