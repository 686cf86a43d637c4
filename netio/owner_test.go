package netio

import (
	"testing"
	"time"
)

// proveHandler proves each connection for the owner named by each frame
// (Conn.ProveFor) and answers the frame with "1" when the connection is
// proven then, "0" when it is still unproven.
type proveHandler struct{ *closeLog }

func (h *proveHandler) OnData(c *Conn, in []byte) (int, error) {
	used := 0
	for n := frameLen(in); n > 0; n = frameLen(in[used:]) {
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
