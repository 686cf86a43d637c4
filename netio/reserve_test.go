package netio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// reserveEcho echoes frames on ordinary connections; on a reserve
// connection it answers its first frame with "reserved" and closes it, as
// the storage node answers one question there.
type reserveEcho struct{ *closeLog }

var errAnswered = errors.New("answered on the reserve")

func (h *reserveEcho) OnData(c *Conn, in []byte) (int, error) {
	if !c.Reserved() {
		return (&echoHandler{h.closeLog}).OnData(c, in)
	}
	if len(in) < 4 || len(in)-4 < int(binary.BigEndian.Uint32(in)) {
		return 0, nil
	}
	c.Write(frame([]byte("reserved")))
	return 4 + int(binary.BigEndian.Uint32(in)), errAnswered
}

// askReserve sends a frame on c and expects the reserve's answer, then the
// close.
func askReserve(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(frame([]byte("q"))); err != nil {
		t.Fatal(err)
	}
	want := frame([]byte("reserved"))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reserve answer %q, %v; want %q", got, err, want)
	}
	closedWithin(t, c, 2*time.Second)
}

// TestReserveBeyondMaxConns: with MaxConns taken, a connection is opened
// on the reserve (Conn.Reserved) and answered, at most ReserveConns at
// once and a quarter of them per peer; a connection that finds no slot
// free takes the one of the oldest unanswered reserve connection (its own
// peer's when its peer holds its share: ErrReserveEvicted); a reserve
// connection that sends nothing is closed after ReserveTimeout
// (ErrReserveTimeout), freeing its slot; ordinary connections are
// untouched throughout. One loop, so that every reserve connection is the
// accepting loop's to evict.
func TestReserveBeyondMaxConns(t *testing.T) {
	logs := &logRec{}
	h := &reserveEcho{newCloseLog()}
	s := start(t, Config{Loops: 1, MaxConns: 2, ReserveConns: 4, ReserveTimeout: 300 * time.Millisecond,
		Logger: slog.New(logs)}, h)
	var kept []net.Conn
	for i := 0; i < 2; i++ {
		c := dialFrom(t, s, "127.0.0.1")
		roundTrip(t, c, frame([]byte{byte(i)}), frame([]byte{byte(i)}))
		kept = append(kept, c)
	}
	// Over MaxConns: answered on the reserve, then closed.
	askReserve(t, dialFrom(t, s, "127.0.0.1"))
	logs.expectLine(t, "on the reserve", "limit=MaxConns")

	// Four peers hold the four slots, one each (4/4 per peer), sending
	// nothing. A peer's second connection evicts its own first; a fifth
	// peer evicts the oldest (the third peer's, the second's first being
	// gone). Nothing is refused.
	var idle []net.Conn
	opened := time.Now()
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		idle = append(idle, dialFrom(t, s, ip))
		n := len(idle)
		waitFor(t, "the reserve connection open", func() bool { return s.Stats().ReserveOpen == int64(n) })
	}
	idle = append(idle, dialFrom(t, s, "127.0.0.2"))
	closedWithin(t, idle[0], 2*time.Second)
	idle = append(idle, dialFrom(t, s, "127.0.0.6"))
	closedWithin(t, idle[1], 2*time.Second)
	idle = idle[2:]
	// An eviction is counted before the evicting connection is (so that
	// the evicted client sees the count when it sees the close): wait for
	// both.
	waitFor(t, "two evictions and seven reserve connections", func() bool {
		st := s.Stats()
		return st.ReserveEvictions == 2 && st.Reserved == 7
	})
	if st := s.Stats(); st.Refused != 0 || st.Reserved != 7 || st.Open != 2 || st.ReserveOpen != 4 {
		t.Errorf("Refused %d, Reserved %d, Open %d, ReserveOpen %d; want 0, 7, 2, 4", st.Refused, st.Reserved, st.Open, st.ReserveOpen)
	}

	// Idle reserve connections go after ReserveTimeout.
	for _, c := range idle {
		closedWithin(t, c, 3*time.Second)
	}
	if d := time.Since(opened); d < 300*time.Millisecond {
		t.Errorf("idle reserve connections closed after %v, before ReserveTimeout (300 ms)", d)
	}
	waitFor(t, "the reserve to empty", func() bool { return s.Stats().ReserveOpen == 0 })
	if st := s.Stats(); st.ReserveTimeouts != 4 {
		t.Errorf("ReserveTimeouts %d, want 4", st.ReserveTimeouts)
	}
	timeouts := 0
	h.mu.Lock()
	for _, errs := range h.errs {
		for _, err := range errs {
			if errors.Is(err, ErrReserveTimeout) {
				timeouts++
			}
		}
	}
	h.mu.Unlock()
	if timeouts != 4 {
		t.Errorf("%d OnClose calls with ErrReserveTimeout, want 4", timeouts)
	}
	// The slots are free again; the ordinary connections still serve.
	askReserve(t, dialFrom(t, s, "127.0.0.2"))
	for i, c := range kept {
		roundTrip(t, c, frame([]byte{byte(i)}), frame([]byte{byte(i)}))
	}
	s.Close()
	h.checkOnce(t)
	if st := s.Stats(); st.Accepted != st.Closed || st.ReserveOpen != 0 || st.Open != 0 {
		t.Errorf("after Close: Accepted %d Closed %d ReserveOpen %d Open %d", st.Accepted, st.Closed, st.ReserveOpen, st.Open)
	}
}

// TestReserveBeyondMaxConnsPerPeer: a peer at MaxConnsPerPeer gets
// reserve connections too, within its share.
func TestReserveBeyondMaxConnsPerPeer(t *testing.T) {
	h := &reserveEcho{newCloseLog()}
	s := start(t, Config{Loops: 1, MaxConnsPerPeer: 1, ReserveConns: 8, Logger: slog.New(&logRec{})}, h)
	c := dialFrom(t, s, "127.0.0.1")
	roundTrip(t, c, frame([]byte("a")), frame([]byte("a")))
	askReserve(t, dialFrom(t, s, "127.0.0.1"))
	if st := s.Stats(); st.Reserved != 1 || st.RefusedPerPeer != 0 {
		t.Errorf("Reserved %d, RefusedPerPeer %d; want 1, 0", st.Reserved, st.RefusedPerPeer)
	}
}

// TestNoReserveByDefault: without ReserveConns a connection over MaxConns
// is closed at accept, never seen by the handler.
func TestNoReserveByDefault(t *testing.T) {
	h := &reserveEcho{newCloseLog()}
	s := start(t, Config{Loops: 1, MaxConns: 1, Logger: slog.New(&logRec{})}, h)
	c := dial(t, s)
	roundTrip(t, c, frame([]byte("a")), frame([]byte("a")))
	expectClosed(t, dial(t, s))
	if st := s.Stats(); st.Reserved != 0 || st.Refused != 1 || st.Accepted != 1 {
		t.Errorf("Reserved %d, Refused %d, Accepted %d; want 0, 1, 1", st.Reserved, st.Refused, st.Accepted)
	}
}
