package netio

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// keeper answers each frame after wait, as promiser does, and records when
// it kept its last promise; a frame "bye" makes OnData fail (a malformed
// frame, to the node), and a frame "big" is answered at once with 16 MiB
// (for a peer that does not read it).
type keeper struct {
	*echoHandler
	wait time.Duration
	kept atomic.Int64 // unix nanoseconds of the last promise kept; 0: none yet
}

var errBye = errors.New("bye")

func (h *keeper) OnData(c *Conn, in []byte) (int, error) {
	used := 0
	for n := frameLen(in); n > 0; n = frameLen(in[used:]) {
		switch body := in[used+4 : used+n]; string(body) {
		case "bye":
			return used + n, errBye
		case "big":
			c.Write(frame(make([]byte, 16<<20)))
		default:
			reply := append([]byte(nil), in[used:used+n]...)
			c.Expect(n)
			time.AfterFunc(h.wait, func() {
				c.Post(func(c *Conn) {
					h.kept.Store(time.Now().UnixNano())
					c.Expect(-len(reply))
					c.Write(reply)
				})
			})
		}
		used += n
	}
	return used, nil
}

// closedAt waits for OnClose and returns its error and when it came.
func (h *keeper) closedAt(t *testing.T) (int64, error) {
	t.Helper()
	select {
	case err := <-h.closed:
		return time.Now().UnixNano(), err
	case <-time.After(20 * time.Second):
		t.Fatal("the connection was not closed")
		return 0, nil
	}
}

// TestServerCloseWaitsForPromises: a request whose reply is promised for
// 800 ms later (a device write under way), then a frame OnData fails on.
// The server closes the connection only once the promise is kept, and
// the reply goes out before the close. Before, it closed at once: the
// client saw the close 800 ms before the work it had sent landed.
func TestServerCloseWaitsForPromises(t *testing.T) {
	h := &keeper{echoHandler: newEcho(), wait: 800 * time.Millisecond}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	want := frame([]byte("put"))
	if _, err := c.Write(append(append([]byte(nil), want...), frame([]byte("bye"))...)); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, c)
	seen := time.Now().UnixNano()
	kept := h.kept.Load()
	if kept == 0 || kept > seen {
		t.Fatalf("the client saw the close before the promise was kept (kept %d, close seen %d)", kept, seen)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %q before the close, want the promised reply %q", got, want)
	}
	if _, err := h.closedAt(t); !errors.Is(err, errBye) {
		t.Fatalf("OnClose got %v, want OnData's error", err)
	}
}

// TestWriteTimeoutWaitsForPromises: a peer that never reads (16 MiB of
// output queued) with a reply promised for 1.5 s: WriteTimeout (200 ms)
// resets it once the promise is kept, not before. Before, it was reset at
// about 300 ms, 1.2 s before the work it had sent landed.
func TestWriteTimeoutWaitsForPromises(t *testing.T) {
	h := &keeper{echoHandler: newEcho(), wait: 1500 * time.Millisecond}
	s := start(t, Config{Loops: 1, WriteTimeout: 200 * time.Millisecond}, h)
	c := dial(t, s)
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := c.Write(append(frame([]byte("big")), frame([]byte("put"))...)); err != nil {
		t.Fatal(err)
	}
	closed, err := h.closedAt(t)
	if !errors.Is(err, ErrWriteTimeout) {
		t.Fatalf("OnClose got %v, want ErrWriteTimeout", err)
	}
	if kept := h.kept.Load(); kept == 0 || kept > closed {
		t.Fatalf("closed before the promise was kept (kept %d, closed %d)", kept, closed)
	}
	waitFor(t, "the connection closed", func() bool { return s.Stats().Open == 0 })
}

// TestServerCloseWithoutPromisesIsAtOnce: with nothing promised the
// server's close is what it was, at the end of the pass.
func TestServerCloseWithoutPromisesIsAtOnce(t *testing.T) {
	h := &keeper{echoHandler: newEcho(), wait: time.Hour}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	if _, err := c.Write(frame([]byte("bye"))); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); len(got) != 0 {
		t.Fatalf("got %d bytes", len(got))
	}
	if _, err := h.closedAt(t); !errors.Is(err, errBye) {
		t.Fatalf("OnClose got %v, want OnData's error", err)
	}
}

// ownedKeeper proves each connection for owner "a" and answers "now" at
// once and "later" after wait, recording when it kept that promise and
// when a connection that made one closed.
type ownedKeeper struct {
	*echoHandler
	wait   time.Duration
	kept   atomic.Int64 // unix nanoseconds of the last promise kept
	closed atomic.Int64 // unix nanoseconds of the last close of a connection that promised
	made   sync.Map     // connection id -> true when it promised
}

func (h *ownedKeeper) OnData(c *Conn, in []byte) (int, error) {
	used := 0
	for n := frameLen(in); n > 0; n = frameLen(in[used:]) {
		c.ProveFor([]byte("a"))
		reply := append([]byte(nil), in[used:used+n]...)
		if string(reply[4:]) == "now" {
			c.Write(reply)
		} else {
			h.made.Store(c.ID(), true)
			c.Expect(n)
			time.AfterFunc(h.wait, func() {
				c.Post(func(c *Conn) {
					h.kept.Store(time.Now().UnixNano())
					c.Expect(-len(reply))
					c.Write(reply)
				})
			})
		}
		used += n
	}
	return used, nil
}

func (h *ownedKeeper) OnClose(c *Conn, err error) {
	if _, ok := h.made.Load(c.ID()); ok {
		h.closed.Store(time.Now().UnixNano())
	}
	h.echoHandler.OnClose(c, err)
}

// TestEvictionWaitsForPromises: a proven connection over its owner's
// share (MaxProvenPerOwner), with a reply promised for 1 s, is the one a
// newcomer at MaxConns evicts: it closes once the promise is kept. Before,
// it was reset at once, a second before the work it had sent landed.
func TestEvictionWaitsForPromises(t *testing.T) {
	h := &ownedKeeper{echoHandler: newEcho(), wait: time.Second}
	s := start(t, Config{Loops: 1, MaxConns: 2, MaxProvenPerOwner: 1, EvictUnproven: true}, h)
	a1 := dial(t, s)
	roundTrip(t, a1, frame([]byte("now")), frame([]byte("now")))
	a2 := dial(t, s)
	time.Sleep(UnprovenGrace + 100*time.Millisecond)
	roundTrip(t, a2, frame([]byte("now")), frame([]byte("now"))) // over a's share
	if _, err := a2.Write(frame([]byte("later"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the promise made", func() bool { _, ok := h.made.Load(uint64(2)); return ok })
	_ = dial(t, s) // a newcomer at MaxConns
	waitFor(t, "the eviction", func() bool { return s.Stats().UnprovenEvictions == 1 })
	waitFor(t, "the evicted connection closed", func() bool { return h.closed.Load() != 0 })
	if kept, closed := h.kept.Load(), h.closed.Load(); kept == 0 || kept > closed {
		t.Fatalf("evicted before its promise was kept (kept %d, closed %d)", kept, closed)
	}
}
