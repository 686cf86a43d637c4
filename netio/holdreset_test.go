package netio

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

type cntRel struct{ n *atomic.Int32 }

func (r cntRel) Release() { r.n.Add(1) }

// holdResetHandler: on any frame it promises a reply, takes a hold, and
// queues 16 MiB by reference through it, plus 1 KiB by reference behind
// it; 600 ms later (the peer never reads: WriteTimeout resets c
// meanwhile) it writes through the hold and behind it again, releases
// the hold and keeps its promise.
type holdResetHandler struct {
	*revHandler
	refs, released atomic.Int32
}

func (h *holdResetHandler) OnData(c *Conn, in []byte) (int, error) {
	hd, ok := c.Hold()
	if !ok {
		return len(in), nil
	}
	c.Expect(100)
	h.refs.Add(2)
	hd.WriteRef(make([]byte, 16<<20), cntRel{&h.released})
	c.WriteRef(make([]byte, 1<<10), cntRel{&h.released})
	time.AfterFunc(600*time.Millisecond, func() {
		c.Post(func(c *Conn) {
			h.refs.Add(3)
			hd.WriteRef(make([]byte, 1<<10), cntRel{&h.released})
			c.WriteRef(make([]byte, 1<<10), cntRel{&h.released})
			hd.Write(make([]byte, 1<<10))
			hd.Release()
			c.WriteRef(make([]byte, 1<<10), cntRel{&h.released})
			c.Write(make([]byte, 1<<10))
			c.Expect(-100)
		})
	})
	return len(in), nil
}

// TestHoldResetByWriteTimeout: every Releaser is released once, none
// before the reset drops it, and nothing is written after the reset.
func TestHoldResetByWriteTimeout(t *testing.T) {
	h := &holdResetHandler{revHandler: &revHandler{echoHandler: newEcho()}}
	s := start(t, Config{Loops: 1, WriteTimeout: 150 * time.Millisecond}, h)
	c := dial(t, s)
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := c.Write(frame([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the write timeout", func() bool { return h.eofCount(1) == 1 })
	out := s.Stats().BytesOut
	if r := h.released.Load(); r != 2 {
		t.Fatalf("%d of 2 references released at the reset", r)
	}
	if _, err := closedAt(t, h.echoHandler); err == nil {
		t.Fatal("closed without error")
	}
	if r, n := h.released.Load(), h.refs.Load(); r != n {
		t.Fatalf("%d releases for %d references", r, n)
	}
	if o := s.Stats().BytesOut; o != out {
		t.Fatalf("%d bytes written after the reset", o-out)
	}
	if st := s.Stats(); st.Open != 0 || st.Queued != 0 {
		t.Fatalf("open %d queued %d", st.Open, st.Queued)
	}
	h.checkOnce(t)
}
