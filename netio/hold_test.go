package netio

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// holdHandler serves a test protocol of one-byte commands:
//
//	'h' takes a hold and writes "H1" at it; 'x' writes "x" (plain Write);
//	'r' writes "x" by reference; 'w' writes "H2" at the hold from a task
//	posted to the loop (a later pass) and releases it; 'c' closes.
//
// It counts the releases of referenced writes.
type holdHandler struct {
	*closeLog
	hold     *Hold
	refused  atomic.Int32 // Hold calls that found one active
	released atomic.Int32
}

type countRelease struct{ n *atomic.Int32 }

func (r countRelease) Release() { r.n.Add(1) }

func (h *holdHandler) OnData(c *Conn, in []byte) (int, error) {
	for _, b := range in {
		switch b {
		case 'h':
			hd, ok := c.Hold()
			if !ok {
				h.refused.Add(1)
				continue
			}
			h.hold = hd
			hd.Write([]byte("H1"))
		case 'x':
			c.Write([]byte("x"))
		case 'r':
			c.WriteRef([]byte("x"), countRelease{&h.released})
		case 'w':
			hd := h.hold
			c.Loop().Post(func() {
				hd.WriteRef([]byte("H2"), countRelease{&h.released})
				hd.Release()
			})
		case 'c':
			c.Close()
		}
	}
	return len(in), nil
}

// TestHoldKeepsOtherOutputBehind writes other replies while a hold is
// active, from the same pass and after: they reach the peer only after
// everything written at the hold, and in the order they were written.
func TestHoldKeepsOtherOutputBehind(t *testing.T) {
	h := &holdHandler{closeLog: newCloseLog()}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("xhxrh")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a later read, a later pass
	if _, err := c.Write([]byte("xw")); err != nil {
		t.Fatal(err)
	}
	want := "xH1H2xxx"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	if h.refused.Load() != 1 {
		t.Errorf("a second Hold while one was active: refused %d times, want 1", h.refused.Load())
	}
	// After the release, output flows directly again.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, got[:1]); err != nil || got[0] != 'x' {
		t.Fatalf("after the release: %q, %v", got[:1], err)
	}
	if n := h.released.Load(); n != 2 {
		t.Errorf("%d references released, want 2", n)
	}
}

// TestHoldCutShortByClose closes a connection while a hold is active:
// what was written at the hold is sent, what was queued behind it never
// is, and every reference is released.
func TestHoldCutShortByClose(t *testing.T) {
	h := &holdHandler{closeLog: newCloseLog()}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("hxrc")); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, []byte("H1")) {
		t.Fatalf("got %q, %v; want only the held output %q, then EOF", got, err, "H1")
	}
	<-h.closed
	if n := h.released.Load(); n != 1 {
		t.Errorf("%d references released, want 1", n)
	}
	h.checkOnce(t)
}
