package netio

import (
	"net"
	"testing"
	"time"
)

// The age at which an unproven connection may be evicted at MaxConns
// (UnprovenGrace) counts only time its loop ran. In both tests a proven
// connection and an unproven one (u) fill MaxConns 2, the loop stalls
// (a task that sleeps), and a newcomer dials during the stall: after it,
// u must still be served and the newcomer refused.

// stallLoop runs a task on s's loop that sleeps for d, and returns once
// the loop is inside it.
func stallLoop(s *Server, d time.Duration) {
	stalled := make(chan struct{})
	s.loops[0].Post(func() {
		close(stalled)
		time.Sleep(d)
	})
	<-stalled
}

// TestUnprovenProofWaitingUnreadIsSpared: no timer is armed (no
// timeouts), so the stall is not seen; u's first request waits unread in
// its socket when the newcomer's accept comes first. Before, the
// newcomer evicted u (open 600 ms by the clock, proof unread).
func TestUnprovenProofWaitingUnreadIsSpared(t *testing.T) {
	s := start(t, Config{Loops: 1, MaxConns: 2, MaxProvenPerOwner: 2, EvictUnproven: true}, &revHandler{echoHandler: newEcho()})
	_ = nowConn(t, s)
	u := dial(t, s)
	waitFor(t, "u opened", func() bool { return s.Stats().Open == 2 })
	stallLoop(s, 600*time.Millisecond)
	_ = dial(t, s) // accepted by the kernel; its event comes first
	time.Sleep(50 * time.Millisecond)
	if _, err := u.Write(frame([]byte("now"))); err != nil {
		t.Fatal(err)
	}
	assertSpared(t, s, u)
}

// TestUnprovenAgeExcusesTheLoopsOwnStall: u sends nothing before the
// stall ends; the sweep timer (IdleTimeout 400 ms: every 100 ms) fell
// due during it, so all but at most 100 ms of the stall is excused,
// whichever event the loop serves first. Before, the newcomer evicted u
// (idle 1.5 s by the clock, 50 ms of them while the loop ran).
func TestUnprovenAgeExcusesTheLoopsOwnStall(t *testing.T) {
	s := start(t, Config{Loops: 1, MaxConns: 2, MaxProvenPerOwner: 2, EvictUnproven: true, IdleTimeout: 400 * time.Millisecond}, &revHandler{echoHandler: newEcho()})
	_ = nowConn(t, s)
	u := dial(t, s)
	waitFor(t, "u opened", func() bool { return s.Stats().Open == 2 })
	time.Sleep(50 * time.Millisecond)
	stallLoop(s, 1500*time.Millisecond)
	_ = dial(t, s)
	assertSpared(t, s, u)
}

// assertSpared fails t unless, once the newcomer was judged, no
// connection was evicted and u is served.
func assertSpared(t *testing.T, s *Server, u net.Conn) {
	t.Helper()
	waitFor(t, "the newcomer judged", func() bool { st := s.Stats(); return st.Refused+st.UnprovenEvictions >= 1 })
	if ev := s.Stats().UnprovenEvictions; ev != 0 {
		t.Fatalf("%d unproven connections evicted: the loop's own stall counted against u", ev)
	}
	if !served(u) {
		t.Fatal("u closed after the loop's stall")
	}
}
