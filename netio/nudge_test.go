package netio

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// loopOf returns the index of the loop serving the server side of c.
func loopOf(t *testing.T, h *echoHandler, c net.Conn) int {
	t.Helper()
	idx := -1
	waitFor(t, "the connection opened", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, sc := range h.opened {
			if sc.RemoteAddr() == c.LocalAddr().String() {
				idx = sc.Loop().Index()
				return true
			}
		}
		return false
	})
	return idx
}

// connsOnLoops dials s until a connection lands on each of its two loops
// (the kernel spreads connections over the loops' listeners by hash) and
// returns one per loop; the others are closed.
func connsOnLoops(t *testing.T, s *Server, h *echoHandler) [2]net.Conn {
	t.Helper()
	var on [2]net.Conn
	for i := 0; i < 200 && (on[0] == nil || on[1] == nil); i++ {
		c := dial(t, s)
		if k := loopOf(t, h, c); on[k] == nil {
			on[k] = c
			continue
		}
		c.Close()
	}
	if on[0] == nil || on[1] == nil {
		t.Fatal("200 connections all landed on one loop")
	}
	return on
}

// TestNudgeWhenAParkedLoopHasEvents: a loop that ends two passes,
// parkedPeekEvery apart, while another loop stays parked with a
// connection open and events waiting nudges the runtime's poller
// (nudge.go) and kicks the parked loop (writes its eventfd), and one pass
// does not. With one P, held by loop 0 while it
// writes a request to loop 1's connection and runs on, loop 1 cannot run:
// it stays parked with the request waiting. A loop whose connections are
// all gone is not watched: requests on the other loop then nudge nothing.
func TestNudgeWhenAParkedLoopHasEvents(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 2}, h)
	on := connsOnLoops(t, s, h)
	waitFor(t, "both loops parked", func() bool { return s.parked.Load() == 2 })
	time.Sleep(2 * parkedPeekEvery)          // loop 0's last look is past
	kicks := s.loops[1].stats.wakeups.Load() // nothing is posted to loop 1
	procs := runtime.GOMAXPROCS(1)
	type look struct {
		err    error
		nudges uint64
	}
	looked := make(chan look, 1)
	l0 := s.loops[0]
	l0.Post(func() {
		_, err := on[1].Write(frame([]byte("a")))
		// This pass's end looks once. The next pass, a task posted to
		// this loop, holds the P past parkedPeekEvery; its end looks
		// again.
		l0.Post(func() {
			looked <- look{err, s.Stats().Nudges}
			for until := nanotime() + int64(2*parkedPeekEvery); nanotime() < until; {
			}
		})
	})
	first := <-looked
	runtime.GOMAXPROCS(procs)
	if first.err != nil {
		t.Fatal(first.err)
	}
	if first.nudges != 0 {
		t.Errorf("%d nudges after one look, want 0 (events seen at one look only may be polled any moment)", first.nudges)
	}
	readFrame(t, on[1], frame([]byte("a")))
	if n := s.Stats().Nudges; n == 0 {
		t.Fatal("loop 0 ended two passes while loop 1 stayed parked with a request waiting, and nudged nothing")
	}
	if s.loops[1].stats.wakeups.Load() == kicks {
		t.Error("loop 1's eventfd was not written: a loop that missed its events would wait for its next one")
	}

	on[1].Close()
	// Open counts every loop's connections; parked, only loop 0 now.
	waitFor(t, "loop 1 without connections", func() bool { return s.Stats().Open == 1 && s.parked.Load() == 1 })
	before := s.Stats().Nudges
	for i := 0; i < 50; i++ {
		roundTrip(t, on[0], frame([]byte("b")), frame([]byte("b")))
	}
	if n := s.Stats().Nudges - before; n != 0 {
		t.Errorf("%d nudges with the other loop holding no connection, want 0", n)
	}
}

// readFrame reads len(want) bytes from c, which must equal want.
func readFrame(t *testing.T, c net.Conn, want []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %q, %v; want %q", got, err, want)
	}
}

// TestNoNudgerWithOneLoop: one loop, or loops that block in epoll_wait,
// have nothing to nudge and no nudger goroutine.
func TestNoNudgerWithOneLoop(t *testing.T) {
	for _, cfg := range []Config{{Loops: 1}, {Loops: 2, WaitInSyscall: true}} {
		h := newEcho()
		s := start(t, cfg, h)
		c := dial(t, s)
		for i := 0; i < 20; i++ {
			roundTrip(t, c, frame([]byte("a")), frame([]byte("a")))
		}
		if s.nudges != nil || s.Stats().Nudges != 0 {
			t.Errorf("%+v: nudger %v, %d nudges; want none", cfg, s.nudges != nil, s.Stats().Nudges)
		}
	}
}
