package netio

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestEchoSizes(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 2}, h)
	for _, size := range []int{0, 1, 100, 70 << 10, 300 << 10} {
		c := dial(t, s)
		f := frame(pattern(size, size))
		roundTrip(t, c, f, f)
		// Twice on the same connection: buffers are reused cleanly.
		roundTrip(t, c, f, f)
	}
	if st := s.Stats(); st.Accepted != 5 || st.Open != 5 {
		t.Errorf("stats %+v, want 5 accepted and open", st)
	}
}

func TestRemoteAddrAndIDs(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	roundTrip(t, c, frame(nil), frame(nil))
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, sc := range h.opened {
		if id == 0 || sc.RemoteAddr() != c.LocalAddr().String() {
			t.Errorf("id %d remote %q, want nonzero and %q", id, sc.RemoteAddr(), c.LocalAddr())
		}
	}
}

// pipeline builds a stream of frames of assorted sizes.
func pipeline() []byte {
	var b []byte
	for i, n := range []int{0, 1, 2, 5, 0, 9, 3} {
		b = append(b, frame(pattern(n, i))...)
	}
	return b
}

func TestPipelinedSplitAtEveryByte(t *testing.T) {
	s := start(t, Config{Loops: 1}, newEcho())
	c := dial(t, s)
	stream := pipeline()
	for k := 1; k < len(stream); k++ {
		// Send the stream in two parts, the first surely read by the
		// server before the second is sent.
		before := s.Stats().BytesIn
		if _, err := c.Write(stream[:k]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "first part read", func() bool { return s.Stats().BytesIn == before+uint64(k) })
		roundTrip(t, c, stream[k:], stream)
	}
}

func TestPipelinedByteAtATime(t *testing.T) {
	s := start(t, Config{Loops: 1}, newEcho())
	c := dial(t, s)
	stream := pipeline()
	for i := range stream {
		if _, err := c.Write(stream[i : i+1]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "byte read", func() bool { return s.Stats().BytesIn == uint64(i+1) })
	}
	roundTrip(t, c, nil, stream)
}

func TestManyPipelinedFramesOneRead(t *testing.T) {
	s := start(t, Config{Loops: 1}, newEcho())
	c := dial(t, s)
	var stream []byte
	for i := 0; i < 2000; i++ {
		stream = append(stream, frame(pattern(i%50, i))...)
	}
	roundTrip(t, c, stream, stream)
	if st := s.Stats(); st.Writevs >= 2000 {
		t.Errorf("%d writevs for 2000 pipelined frames: responses not coalesced", st.Writevs)
	}
}

// errHandler echoes frames and fails on an empty one, after queuing its
// answer, so the answer must still be flushed before the close.
type errHandler struct{ *closeLog }

var errTest = errors.New("test: empty frame")

func (h errHandler) OnData(c *Conn, in []byte) (int, error) {
	frames, used := splitFrames(in)
	for _, f := range frames {
		c.Write(f)
		if len(f) == 4 {
			return used, errTest
		}
	}
	return used, nil
}

func TestOnDataErrorFlushesThenCloses(t *testing.T) {
	h := errHandler{newCloseLog()}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	want := append(frame([]byte("abc")), frame(nil)...)
	roundTrip(t, c, want, want)
	expectClosed(t, c)
	if err := <-h.closed; !errors.Is(err, errTest) {
		t.Errorf("OnClose got %v, want %v", err, errTest)
	}
	h.checkOnce(t)
}

// badHandler claims to consume more than it was given.
type badHandler struct{ *closeLog }

func (badHandler) OnData(_ *Conn, in []byte) (int, error) { return len(in) + 1, nil }

func TestBadConsumedCloses(t *testing.T) {
	h := badHandler{newCloseLog()}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	c.Write([]byte("x"))
	expectClosed(t, c)
	if err := <-h.closed; !errors.Is(err, ErrBadConsumed) {
		t.Errorf("OnClose got %v, want ErrBadConsumed", err)
	}
}

func TestPeerCloseGivesEOF(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 1}, h)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, frame(nil), frame(nil))
	c.Close()
	if err := <-h.closed; err != io.EOF {
		t.Errorf("OnClose got %v, want io.EOF", err)
	}
	waitFor(t, "no open conns", func() bool { return s.Stats().Open == 0 })
}

func TestMaxInboundCloses(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 1, MaxInbound: 8 << 10}, h)
	c := dial(t, s)
	// A header promising 1 MiB, then more bytes than MaxInbound.
	f := frame(make([]byte, 1<<20))[:20<<10]
	c.Write(f)
	expectClosed(t, c)
	if err := <-h.closed; !errors.Is(err, ErrInboundLimit) {
		t.Errorf("OnClose got %v, want ErrInboundLimit", err)
	}
	// Others are still served.
	c2 := dial(t, s)
	roundTrip(t, c2, frame([]byte("ok")), frame([]byte("ok")))
}

func TestMaxConns(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 2, MaxConns: 3}, h)
	var kept []net.Conn
	for i := 0; i < 3; i++ {
		c := dial(t, s)
		roundTrip(t, c, frame([]byte{byte(i)}), frame([]byte{byte(i)}))
		kept = append(kept, c)
	}
	for i := 0; i < 2; i++ {
		expectClosed(t, dial(t, s))
	}
	if st := s.Stats(); st.Refused != 2 || st.Open != 3 {
		t.Fatalf("stats %+v, want 2 refused, 3 open", st)
	}
	kept[0].Close()
	waitFor(t, "a slot to free", func() bool { return s.Stats().Open == 2 })
	c := dial(t, s)
	roundTrip(t, c, frame([]byte("again")), frame([]byte("again")))
}

func TestListenBadAddress(t *testing.T) {
	if _, err := Listen("127.0.0.1:notaport", Config{}, newEcho()); !errors.Is(err, ErrBadAddress) {
		t.Errorf("got %v, want ErrBadAddress", err)
	}
	s := start(t, Config{Loops: 1}, newEcho())
	// A second server on the same port without SO_REUSEPORT fails to bind.
	ln, err := net.Listen("tcp", s.Addr().String())
	if err == nil {
		ln.Close()
		t.Fatal("bound a plain listener over the server's port")
	}
}

// TestWaitModes runs the echo protocol, a posted function and shutdown
// under every way a loop can wait for events.
func TestWaitModes(t *testing.T) {
	modes := map[string]Config{
		"park":             {},
		"syscall":          {WaitInSyscall: true},
		"busypoll":         {BusyPoll: 20 * time.Microsecond},
		"busypoll-syscall": {BusyPoll: 20 * time.Microsecond, WaitInSyscall: true, LockOSThread: true},
	}
	for name, cfg := range modes {
		t.Run(name, func(t *testing.T) {
			h := newEcho()
			s := start(t, cfg, h)
			c := dial(t, s)
			stream := pipeline()
			roundTrip(t, c, stream, stream)
			time.Sleep(time.Millisecond) // let a busy loop fall back to waiting
			f := frame(pattern(100<<10, 1))
			roundTrip(t, c, f, f)
			done := make(chan struct{})
			s.loops[0].Post(func() { close(done) })
			<-done
			s.Close()
			if err := <-h.closed; !errors.Is(err, ErrServerClosed) {
				t.Errorf("OnClose got %v, want ErrServerClosed", err)
			}
		})
	}
}
