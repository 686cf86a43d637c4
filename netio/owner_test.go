package netio

import (
	"io"
	"net"
	"testing"
	"time"
)

// proveHandler proves each connection for the owner named by each frame
// (Conn.ProveFor) and answers the frame with "1" when the connection is
// proven then, "0" when it is still unproven; "who" it answers with the
// loop's index, proving nothing.
type proveHandler struct{ *closeLog }

func (h *proveHandler) OnData(c *Conn, in []byte) (int, error) {
	used := 0
	for n := frameLen(in); n > 0; n = frameLen(in[used:]) {
		if string(in[used+4:used+n]) == "who" {
			c.Write(frame([]byte{byte(c.Loop().Index())}))
			used += n
			continue
		}
		c.ProveFor(in[used+4 : used+n])
		if c.onList {
			c.Write(frame([]byte("0")))
		} else {
			c.Write(frame([]byte("1")))
		}
		used += n
	}
	return used, nil
}

// TestProveForBoundsAnOwner: an owner's connections past
// MaxProvenPerOwner stay unproven, other owners are not affected, and a
// connection left unproven is proven once one of its owner's closes.
func TestProveForBoundsAnOwner(t *testing.T) {
	s := start(t, Config{Loops: 1, MaxConns: 8, MaxProvenPerOwner: 2, EvictUnproven: true},
		&proveHandler{newCloseLog()})
	a1, a2, a3, b1 := dial(t, s), dial(t, s), dial(t, s), dial(t, s)
	roundTrip(t, a1, frame([]byte("a")), frame([]byte("1")))
	roundTrip(t, a2, frame([]byte("a")), frame([]byte("1")))
	roundTrip(t, a3, frame([]byte("a")), frame([]byte("0")))
	roundTrip(t, a3, frame([]byte("a")), frame([]byte("0"))) // tried again only after a release
	roundTrip(t, b1, frame([]byte("b")), frame([]byte("1")))
	if st := s.Stats(); st.OverOwner != 1 {
		t.Fatalf("OverOwner %d, want 1 (counted once per connection)", st.OverOwner)
	}
	a1.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Closed == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	roundTrip(t, a3, frame([]byte("a")), frame([]byte("1")))
	// a2 and a3 now hold a's two: a new connection of a stays unproven.
	a4 := dial(t, s)
	roundTrip(t, a4, frame([]byte("a")), frame([]byte("0")))
}

// TestProveForWithoutEviction: without EvictUnproven nothing is listed,
// counted or refused.
func TestProveForWithoutEviction(t *testing.T) {
	s := start(t, Config{Loops: 1, MaxConns: 8, MaxProvenPerOwner: 1}, &proveHandler{newCloseLog()})
	for range 3 {
		roundTrip(t, dial(t, s), frame([]byte("a")), frame([]byte("1")))
	}
	if st := s.Stats(); st.OverOwner != 0 {
		t.Fatalf("OverOwner %d without EvictUnproven", st.OverOwner)
	}
}

// aliveFor reports whether c still answers a frame.
func aliveFor(c net.Conn, owner string) bool {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(frame([]byte(owner))); err != nil {
		return false
	}
	got := make([]byte, 5)
	_, err := io.ReadFull(c, got)
	return err == nil
}

// TestTokenlessNewcomersEvictTokenlessFirst: a legitimate job holding more
// than MaxProvenPerOwner connections (a big job: thousands of lambdas, two
// connections each per node) has its connections past the share left
// unproven; they were on the same list as connections that proved
// nothing, oldest first. A peer with no token at all, connecting over MaxConns,
// evicted the job's connections rather than its own tokenless ones.
// Before e31e59b every connection of the job was proven (Prove) and could
// not be evicted by a tokenless newcomer; with it, 2 of the job's 6 were
// (the review). Connections past their owner's share now go only once no
// connection that proved nothing can.
func TestTokenlessNewcomersEvictTokenlessFirst(t *testing.T) {
	s := start(t, Config{Loops: 1, MaxConns: 8, MaxProvenPerOwner: 4, EvictUnproven: true},
		&proveHandler{newCloseLog()})
	var job []net.Conn
	for range 6 {
		c := dial(t, s)
		if !aliveFor(c, "a") {
			t.Fatal("job connection not served")
		}
		job = append(job, c)
	}
	if st := s.Stats(); st.OverOwner != 2 {
		t.Fatalf("OverOwner %d, want 2", st.OverOwner)
	}
	// Two tokenless connections fill MaxConns, then age past the grace.
	dial(t, s)
	dial(t, s)
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	// Two more tokenless newcomers: each takes the slot of the oldest
	// unproven connection.
	dial(t, s)
	dial(t, s)
	time.Sleep(300 * time.Millisecond)
	lost := 0
	for i, c := range job {
		if !aliveFor(c, "a") {
			t.Logf("job connection %d evicted", i)
			lost++
		}
	}
	t.Logf("stats: %+v", s.Stats())
	if lost > 0 {
		t.Fatalf("%d of the job's 6 connections evicted by tokenless newcomers while tokenless connections were open", lost)
	}
}

// TestOverShareEvictsTheOldestFirst: the overOwner list is ordered by when a
// connection was found over its owner's share, not by when it opened, and
// evictUnproven looks only at its head. A connection open long (past
// UnprovenGrace) that shows its token only after a younger one went over
// the share sits behind the young head: a newcomer at MaxConns evicts
// nothing although a connection past its grace is evictable. On the
// single list before 87b8b97 (ordered by open time) it was evicted; with
// 87b8b97 the newcomer was refused (a review). The list is kept in open
// order now (insertByBorn).
func TestOverShareEvictsTheOldestFirst(t *testing.T) {
	s := start(t, Config{Loops: 1, MaxConns: 3, MaxProvenPerOwner: 1, EvictUnproven: true},
		&proveHandler{newCloseLog()})
	a1 := dial(t, s)
	roundTrip(t, a1, frame([]byte("a")), frame([]byte("1")))
	old := dial(t, s)
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	young := dial(t, s)
	roundTrip(t, young, frame([]byte("a")), frame([]byte("0"))) // over: head of overOwner
	roundTrip(t, old, frame([]byte("a")), frame([]byte("0")))   // over: behind it
	_ = dial(t, s)                                              // newcomer at MaxConns
	time.Sleep(50 * time.Millisecond)
	st := s.Stats()
	if st.UnprovenEvictions != 1 {
		t.Fatalf("UnprovenEvictions %d, want 1: the connection open %v (past UnprovenGrace) was not evicted for the newcomer, since the younger head of overOwner is within its grace (stats %+v)",
			st.UnprovenEvictions, UnprovenGrace+100*time.Millisecond, st)
	}
	if aliveFor(old, "a") {
		t.Fatal("the old over-share connection is still open")
	}
	if !aliveFor(young, "a") {
		t.Fatal("the young over-share connection was evicted")
	}
}
