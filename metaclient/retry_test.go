package metaclient_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestRetryWhileRefused: a call made while nothing listens at the
// controller's address (a restart) waits for it, for any op, instead of
// failing with "connection refused"; fails on the code before the retry.
func TestRetryWhileRefused(t *testing.T) {
	addr, release := nettest.ReserveAddr(t)
	t.Cleanup(release)
	mc := metaclient.New(addr, metaclient.Options{Logger: quiet})
	defer mc.Close()
	go func() {
		time.Sleep(300 * time.Millisecond)
		release()
		c, _ := startController(t, addr)
		t.Cleanup(func() { c.Close() })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	// With no nodes the controller refuses the job: an answer all the same.
	if _, err := mc.RegisterJob(ctx, "late", wire.JobHints{}); err != nil && !isAnswer(err) {
		t.Fatalf("register while the controller starts: %v, want the controller's answer", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("answered after %v, before the controller was listening", d)
	}
}

// TestRetryForBound: Options.RetryFor ends the wait; the error is still
// the refusal (so a CLI can tell the user nothing listens there).
func TestRetryForBound(t *testing.T) {
	mc := metaclient.New(nettest.RefusedAddr(t), metaclient.Options{Logger: quiet, RetryFor: 300 * time.Millisecond})
	defer mc.Close()
	start := time.Now()
	_, err := mc.Status(context.Background())
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("status with no controller: %v, want ECONNREFUSED", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Fatalf("gave up after %v, want about RetryFor (300ms)", d)
	}
	none := metaclient.New(nettest.RefusedAddr(t), metaclient.Options{Logger: quiet, RetryFor: -1})
	defer none.Close()
	start = time.Now()
	if _, err := none.Status(context.Background()); !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > 2*time.Second {
		t.Fatalf("RetryFor -1: %v after %v, want an immediate refusal", err, time.Since(start))
	}
}

// TestRefusedUntilTheDeadlineSaysRefused: a call whose retries run into
// its context's deadline while nothing listens ends with the refusal, not
// with the "i/o timeout" of one more attempt begun as the deadline came
// (an operator's trial: a node pointed at a controller that was not
// running logged timeouts, never "connection refused").
func TestRefusedUntilTheDeadlineSaysRefused(t *testing.T) {
	mc := metaclient.New(nettest.RefusedAddr(t), metaclient.Options{Logger: quiet})
	defer mc.Close()
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		_, err := mc.Status(ctx)
		cancel()
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("status with no controller until the deadline: %v, want ECONNREFUSED", err)
		}
	}
}

// dropper accepts connections and closes the first n at once (a
// controller that dies with the request in flight), then forwards the
// others to the controller at to.
func dropper(t *testing.T, to string, n int32) (string, *atomic.Int32) {
	return interposer(t, to, n, func(conn net.Conn) {
		buf := make([]byte, 64)
		conn.Read(buf) // the request arrives, then the connection dies
		conn.Close()
	})
}

// interposer accepts connections, hands the first n to end, and forwards
// the others to the controller at to; it counts the connections seen.
func interposer(t *testing.T, to string, n int32, end func(net.Conn)) (string, *atomic.Int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var seen atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if seen.Add(1) <= n {
				end(conn)
				continue
			}
			go forward(conn, to)
		}
	}()
	return ln.Addr().String(), &seen
}

func forward(conn net.Conn, to string) {
	defer conn.Close()
	up, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { copyAll(up, conn); up.Close() }()
	copyAll(conn, up)
}

func copyAll(dst, src net.Conn) {
	buf := make([]byte, 4096)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestRetryIdempotent: an idempotent op whose connection dies with the
// request sent is retried with a backoff until it gets an answer; a job
// registration is not (the controller may have registered it).
func TestRetryIdempotent(t *testing.T) {
	c, ctl := startController(t, "127.0.0.1:0")
	defer c.Close()
	addr, seen := dropper(t, ctl, 3)
	mc := metaclient.New(addr, metaclient.Options{Logger: quiet})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := mc.Status(ctx); err != nil {
		t.Fatalf("status through 3 dropped connections: %v", err)
	}
	if got := seen.Load(); got != 4 {
		t.Fatalf("%d connections, want 4 (3 dropped, then the answer)", got)
	}

	// The connections that carried the request (after the challenge a
	// fresh connection's registration asks for first): after the first
	// is dropped the client also asks, on a connection of its own,
	// whether a TLS server listens (a ClientHello, no request:
	// metaclient.ErrControllerTLS), which the dropper drops too.
	var reqs atomic.Int32
	addr, _ = interposer(t, ctl, 3, func(conn net.Conn) {
		if op, ok := readRequest(conn); ok && op == wire.OpRegisterJob {
			reqs.Add(1)
		}
		conn.Close()
	})
	reg := metaclient.New(addr, metaclient.Options{Logger: quiet})
	defer reg.Close()
	if _, err := reg.RegisterJob(ctx, "once", wire.JobHints{}); err == nil || isAnswer(err) || !errors.Is(err, metaclient.ErrOutcomeUnknown) {
		t.Fatalf("register over a dropped connection: %v, want the transport error (outcome unknown)", err)
	}
	if got := reqs.Load(); got != 1 {
		t.Fatalf("register sent on %d connections, want 1 (not idempotent)", got)
	}
}

// TestJobProfileRetried: a job profile is a read: sent on 3 connections
// that die with the request, it is sent again until the controller
// answers (here that the name has no profile, naming how one is
// recorded), not returned as an outcome-unknown transport error.
func TestJobProfileRetried(t *testing.T) {
	c, ctl := startController(t, "127.0.0.1:0")
	defer c.Close()
	addr, seen := dropper(t, ctl, 3)
	mc := metaclient.New(addr, metaclient.Options{Logger: quiet})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := mc.JobProfile(ctx, "never-ran")
	if !errors.Is(err, wire.ErrNotFound) || !strings.Contains(err.Error(), "recorded when a job of the name ends") {
		t.Fatalf("job profile through 3 dropped connections: %v, want the controller's not-found answer", err)
	}
	if got := seen.Load(); got != 4 {
		t.Fatalf("%d connections, want 4 (3 dropped, then the answer)", got)
	}
}

func isAnswer(err error) bool {
	var we *wire.Error
	return errors.As(err, &we)
}

// TestNewList: New given a comma-separated list finds the leader among
// a dead address and a follower, and a list that does not parse fails
// every call with the parse error.
func TestNewList(t *testing.T) {
	lead := startLeader(t)
	f := startFollower(t, lead)
	mc := metaclient.New(nettest.RefusedAddr(t)+","+f.addr, metaclient.Options{Logger: quiet})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := mc.Status(ctx); err != nil {
		t.Fatalf("status through the list: %v", err)
	}
	if mc.Leader() != lead {
		t.Fatalf("leader %q, want %q", mc.Leader(), lead)
	}
	bad := metaclient.New("127.0.0.1:1,,127.0.0.1:2", metaclient.Options{Logger: quiet})
	if _, err := bad.Status(ctx); err == nil || isAnswer(err) {
		t.Fatalf("bad list: %v, want the parse error", err)
	}
}

// readRequest reads conn's control frames, answering challenges (with a
// made-up nonce), and returns the op of the first other one.
func readRequest(conn net.Conn) (wire.Op, bool) {
	r := bufio.NewReader(conn)
	lim := wire.ControlLimits()
	for {
		h, _, err := wire.ReadControlFrame(r, &lim, nil)
		if err != nil {
			return 0, false
		}
		if h.Op != wire.OpChallenge {
			return h.Op, true
		}
		reply := (&wire.Challenge{Nonce: make([]byte, 16)}).Encode(flatbuffers.NewBuilder(64))
		if _, err := conn.Write(wire.AppendControlFrame(nil, h.Op.Reply(), h.ID, wire.CodeOK, reply)); err != nil {
			return 0, false
		}
	}
}
