package controller

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
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
// minutes: `job register` got EOF, `status` a reset). The default
// per-peer limit refuses the flood's excess with an error naming it.
func TestIdleFloodFromOnePeer(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := flood(t, a.String(), "127.0.0.2", 1100)
	// The last flood connections were refused, with a frame naming the
	// limit (request id 0, CodeLimit).
	last := conns[len(conns)-1]
	last.SetDeadline(time.Now().Add(5 * time.Second))
	lim := wire.ControlLimits()
	h, meta, err := wire.ReadControlFrame(bufio.NewReader(last), &lim, nil)
	if err != nil || h.ID != 0 || h.Op != wire.OpGoAway.Reply() {
		t.Fatalf("refused connection's frame: %+v %v", h, err)
	}
	if rerr := wire.ReplyError(&h, meta); !errors.Is(rerr, wire.ErrLimit) || !strings.Contains(rerr.Error(), "MaxConnsPerPeer 256") {
		t.Fatalf("refusal: %v", rerr)
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

// TestPerPeerLimitError: a client over the per-peer limit gets the
// controller's error, naming the limit, from metaclient.
func TestPerPeerLimitError(t *testing.T) {
	c := newTest(t, Config{MaxConnsPerPeer: 3})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	flood(t, a.String(), "127.0.0.1", 3)
	time.Sleep(50 * time.Millisecond) // accepted and tracked
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
