package metaclient_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// replyProxy forwards connections to the controller at to, passing each
// of the controller's replies through pass: one it answers false for is
// not delivered, and the client's connection is closed instead. conns
// counts the connections accepted.
func replyProxy(t *testing.T, to string, pass func(h wire.Header) bool) (addr string, conns *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int32)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go proxyReplies(conn, to, pass)
		}
	}()
	return ln.Addr().String(), conns
}

// proxyReplies passes the controller's replies on frame by frame, until
// pass refuses one.
func proxyReplies(conn net.Conn, to string, pass func(h wire.Header) bool) {
	defer conn.Close()
	up, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { copyAll(up, conn); up.Close() }()
	br := bufio.NewReader(up)
	lim := wire.ControlLimits()
	for {
		h, meta, err := wire.ReadControlFrame(br, &lim, nil)
		if err != nil || !pass(h) {
			return
		}
		if _, err := conn.Write(wire.AppendControlFrame(nil, h.Op, h.ID, h.Code, meta)); err != nil {
			return
		}
	}
}

// replyKiller is a replyProxy that, once kill is set, does not deliver
// the next reply to a job registration the controller sends (a proxy or
// network that dies after the request was received and processed).
func replyKiller(t *testing.T, to string) (addr string, kill *atomic.Bool, conns *atomic.Int32) {
	kill = new(atomic.Bool)
	addr, conns = replyProxy(t, to, func(h wire.Header) bool {
		return !kill.Load() || h.Op != wire.OpRegisterJob.Reply()
	})
	return addr, kill, conns
}

// TestRegisterNotRepeated: a job registration whose reply is lost after
// the controller processed it, on a connection that had served before,
// is not sent again (here or to another controller of a list): exactly
// one job is registered and the error says the outcome is unknown. On the
// old code the client re-sent it on a new connection and registered a
// second job.
func TestRegisterNotRepeated(t *testing.T) {
	for _, list := range []bool{false, true} {
		ctl, ctlAddr := startController(t, "127.0.0.1:0")
		defer ctl.Close()
		node := startNode(t, ctlAddr)
		defer node.stop()
		direct := metaclient.New(ctlAddr, metaclient.Options{Logger: quiet})
		defer direct.Close()
		waitActive(t, direct, 1)

		addr, kill, conns := replyKiller(t, ctlAddr)
		if list {
			addr += "," + ctlAddr // the next controller would accept the job
		}
		mc := metaclient.New(addr, metaclient.Options{Logger: quiet})
		defer mc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := mc.Status(ctx); err != nil { // the connection has served
			t.Fatalf("list %v: status: %v", list, err)
		}
		kill.Store(true)
		_, err := mc.RegisterJob(ctx, "once", wire.JobHints{})
		if !errors.Is(err, metaclient.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "may have registered the job") {
			t.Fatalf("list %v: register with its reply lost: %v, want the outcome-unknown error", list, err)
		}
		var oe *metaclient.OutcomeUnknownError
		if !errors.As(err, &oe) || oe.Op != wire.OpRegisterJob {
			t.Fatalf("list %v: %v is not an *OutcomeUnknownError of register-job", list, err)
		}
		if got := conns.Load(); got != 1 {
			t.Fatalf("list %v: %d connections to the proxy, want 1 (no re-send)", list, got)
		}
		st, err := direct.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.JobCount != 1 {
			t.Fatalf("list %v: %d jobs registered, want exactly 1", list, st.JobCount)
		}
	}
}

// TestRegisterAfterControllerRestart: a registration on a connection the
// controller closed since the last call (a restart) is sent on a fresh
// connection (nothing of it was sent on the old one) and succeeds.
func TestRegisterAfterControllerRestart(t *testing.T) {
	ctl, addr := startController(t, "127.0.0.1:0")
	node := startNode(t, addr)
	defer node.stop()
	mc := metaclient.New(addr, metaclient.Options{Logger: quiet})
	defer mc.Close()
	waitActive(t, mc, 1)
	ctl.Close()
	ctl, _ = startController(t, addr)
	defer ctl.Close()
	waitActive(t, mc, 1) // the node re-registers; mc's connection is new again
	// Close the connection from the controller's side: restart once more.
	ctl.Close()
	ctl2, _ := startController(t, addr)
	defer ctl2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := mc.RegisterJob(ctx, "after", wire.JobHints{})
		if errors.Is(err, metaclient.ErrOutcomeUnknown) {
			t.Fatalf("register after a restart: %v, want it sent on a fresh connection", err)
		}
		if err == nil {
			return
		}
		// No node yet: the controller's answer; wait for the node.
		if time.Now().After(deadline) {
			t.Fatalf("register after a restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
