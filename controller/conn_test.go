package controller

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// flood opens n idle connections to addr from the local address from
// (127.0.0.2 stands for another host on loopback) and closes them at the
// test's end.
func flood(t *testing.T, addr, from string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	return conns
}

// TestIdleFloodFromOnePeer (issue 11, D): 1,100 idle connections from one
// peer leave other clients' registrations and status working (the old
// controller took 1,024 connections from anyone and held them for 5
// minutes: `job register` got EOF, `status` a reset). The per-peer limit
// holds the peer's count at 256, and a new client at the flooding peer's
// own address (the same host, a NAT) takes the place of a silent one:
// before, it was refused (a hostile re-check: 40 silent connections a
// second from the operator's address refused 43 % of its calls).
func TestIdleFloodFromOnePeer(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flood(t, a.String(), "127.0.0.2", 1100)
	over := metaclient.New(a.String(), metaclient.Options{Logger: quietLog, LocalIP: "127.0.0.2"})
	defer over.Close()
	octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ocancel()
	if _, err := over.Status(octx); err != nil {
		t.Fatalf("status from the flooding peer's address: %v; want served in a silent connection's place", err)
	}
	c.srv.mu.Lock()
	fromPeer := c.srv.peers["127.0.0.2"]
	c.srv.mu.Unlock()
	if fromPeer > 256 {
		t.Fatalf("%d connections counted from the flooding peer; MaxConnsPerPeer 256", fromPeer)
	}
	mc := metaclient.New(a.String(), metaclient.Options{Logger: quietLog})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := mc.RegisterJob(ctx, "during-flood", wire.JobHints{}); err != nil {
		t.Fatalf("register during an idle flood from another peer: %v", err)
	}
	if _, err := mc.Status(ctx); err != nil {
		t.Fatalf("status during an idle flood from another peer: %v", err)
	}
}

// TestNodeRegistersThroughItsOwnPeersFlood: a node whose address is the
// flooding peer's (one host: `pocket up`, or a NAT) registers and
// heartbeats while the peer holds every connection MaxConnsPerPeer
// allows: a connection over the limit is on probation, where a node
// proves itself, and a proved node connection is outside the count.
// Found by a hostile trial: 256 partial headers from 127.0.0.1 kept a
// restarting node out ("node not registered ... MaxConnsPerPeer 256")
// until the flood ended.
func TestNodeRegistersThroughItsOwnPeersFlood(t *testing.T) {
	// The flood stays: its silent connections outlive the test.
	c := newTest(t, Config{MaxConnsPerPeer: 8, HandshakeTimeout: time.Minute, HeartbeatInterval: 100 * time.Millisecond})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flood(t, a.String(), "127.0.0.1", 8)
	time.Sleep(50 * time.Millisecond) // accepted and tracked
	mc := metaclient.New(a.String(), metaclient.Options{Secret: testSecret, Logger: quietLog})
	defer mc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	run := make(chan error, 1)
	go func() {
		run <- mc.RunNode(ctx, metaclient.NodeLoop{Register: *dramNode("127.0.0.1:7001", 1<<30, 8000), Interval: 100 * time.Millisecond})
	}()
	defer func() { cancel(); <-run }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := c.RegisterJob("flooded", wire.JobHints{}); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the node never registered through its peer's flood: %v", err)
		}
	}
}

// TestPerPeerLimitError: a client over the per-peer limit, whose
// connections have all made requests (none silent to take the place of),
// gets the controller's error, naming the limit, from metaclient.
func TestPerPeerLimitError(t *testing.T) {
	c := newTest(t, Config{MaxConnsPerPeer: 3})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		held := metaclient.New(a.String(), metaclient.Options{Logger: quietLog})
		defer held.Close()
		if _, err := held.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	mc := metaclient.New(a.String(), metaclient.Options{Logger: quietLog})
	defer mc.Close()
	_, err = mc.Status(context.Background())
	if !errors.Is(err, wire.ErrLimit) || !strings.Contains(err.Error(), "MaxConnsPerPeer 3") {
		t.Fatalf("fourth connection of a peer: %v", err)
	}
}

// TestIdleTimeoutAndEviction: silent connections are closed after
// HandshakeTimeout, idle ones after IdleTimeout; at MaxConns a new
// connection replaces the one idle longest, so connections from many
// peers cannot lock an active client out either.
func TestIdleTimeoutAndEviction(t *testing.T) {
	c := newTest(t, Config{HandshakeTimeout: 100 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := flood(t, a.String(), "127.0.0.1", 1)[0]
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := silent.Read(make([]byte, 1)); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("a silent connection was not closed: %v after %v", err, time.Since(start))
	}

	e := newTest(t, Config{MaxConns: 10, MaxConnsPerPeer: -1, IdleTimeout: -1})
	ea, err := e.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flood(t, ea.String(), "127.0.0.2", 10)
	time.Sleep(evictMinIdle + 100*time.Millisecond)
	mc := metaclient.New(ea.String(), metaclient.Options{Logger: quietLog})
	defer mc.Close()
	if _, err := mc.Status(context.Background()); err != nil {
		t.Fatalf("at MaxConns with every connection idle: %v", err)
	}
	e.srv.mu.Lock()
	n := len(e.srv.conns)
	e.srv.mu.Unlock()
	if n > 10 {
		t.Fatalf("%d connections tracked, limit 10", n)
	}
}

func TestPeerKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.2:5555":            "127.0.0.2",
		"[2001:db8:1:2:3::4]:80":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::]:443": "2001:db8:1:2::/64",
	} {
		ta, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := peerKey(ta); got != want {
			t.Errorf("peerKey(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestSilentFloodYieldsToClients (hostile trial, MEDIUM): connections
// opened from several addresses faster than evictMinIdle, none of which
// ever sends a byte (no TLS handshake, so no certificate needed), held
// every MaxConns slot young, and new clients' requests were refused (32-57
// % of an operator's in the trial). A new connection now takes the place
// of one that has sent no request yet, so every client on a connection of
// its own is served during the flood.
func TestSilentFloodYieldsToClients(t *testing.T) {
	const maxConns = 256
	c := newTest(t, Config{MaxConns: maxConns, MaxConnsPerPeer: -1, HandshakeTimeout: time.Minute})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var opened atomic.Int64
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			silentFlood(a.String(), from, stop, &opened)
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	for opened.Load() < 2*maxConns {
		time.Sleep(10 * time.Millisecond) // the flood fills MaxConns, all younger than evictMinIdle
	}
	refused := 0
	for i := 0; i < 30; i++ {
		mc := metaclient.New(a.String(), metaclient.Options{Logger: quietLog})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := mc.Status(ctx); err != nil {
			refused++
			t.Logf("status %d during the flood: %v", i, err)
		}
		cancel()
		mc.Close()
	}
	if refused > 0 {
		t.Fatalf("%d of 30 clients refused during a flood of silent connections (%d opened)", refused, opened.Load())
	}
}

// silentFlood opens connections to addr from local address from, about
// one every 2 ms, that never send anything, holding the newest 300 open,
// until stop.
func silentFlood(addr, from string, stop chan struct{}, opened *atomic.Int64) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: time.Second}
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for {
		select {
		case <-stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			continue
		}
		opened.Add(1)
		if held = append(held, conn); len(held) > 300 {
			held[0].Close()
			held = held[1:]
		}
	}
}
