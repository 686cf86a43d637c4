package netio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countRel counts its releases; exactly one is right.
type countRel struct{ n atomic.Int32 }

func (r *countRel) Release() { r.n.Add(1) }

// refHandler answers a frame holding a 4-byte size n with a frame of n
// bytes of refData sent with WriteRef, after a copied header.
type refHandler struct {
	*closeLog
	mu   sync.Mutex
	rels []*countRel
}

var refData = pattern(4<<20, 99)

func (h *refHandler) OnData(c *Conn, in []byte) (int, error) {
	frames, used := splitFrames(in)
	for _, f := range frames {
		n := int(binary.BigEndian.Uint32(f[4:]))
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(n))
		c.Write(hdr[:])
		r := &countRel{}
		h.mu.Lock()
		h.rels = append(h.rels, r)
		h.mu.Unlock()
		c.WriteRef(refData[:n], r)
	}
	return used, nil
}

// released returns how many releasers exist and checks none was released
// more than once; it reports how many were released once.
func (h *refHandler) released(t *testing.T) (total, once int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, r := range h.rels {
		switch r.n.Load() {
		case 0:
		case 1:
			once++
		default:
			t.Fatalf("releaser %d released %d times", i, r.n.Load())
		}
	}
	return len(h.rels), once
}

func sizeReq(n int) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(n))
	return frame(b[:])
}

func TestWriteRefReleasedOnceAfterSend(t *testing.T) {
	h := &refHandler{closeLog: newCloseLog()}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	var req, want []byte
	for i := 0; i < 100; i++ {
		n := i * 37 % 3000 // includes 0: an empty reference is released too
		req = append(req, sizeReq(n)...)
		want = append(want, frame(refData[:n])...)
	}
	roundTrip(t, c, req, want)
	waitFor(t, "100 releases", func() bool { total, once := h.released(t); return total == 100 && once == 100 })
}

func TestWriteRefReleasedOnClose(t *testing.T) {
	for _, how := range []string{"peer", "server"} {
		t.Run(how, func(t *testing.T) {
			h := &refHandler{closeLog: newCloseLog()}
			s := start(t, Config{Loops: 1}, h)
			c := dial(t, s)
			// 16 MiB of responses the client never reads: most stay queued.
			var req []byte
			for i := 0; i < 16; i++ {
				req = append(req, sizeReq(1<<20)...)
			}
			c.Write(req)
			waitFor(t, "16 refs queued", func() bool { total, _ := h.released(t); return total == 16 })
			if how == "peer" {
				c.Close()
			} else {
				s.Close()
			}
			err := <-h.closed
			if how == "server" && !errors.Is(err, ErrServerClosed) {
				t.Errorf("OnClose got %v, want ErrServerClosed", err)
			}
			if total, once := h.released(t); once != total {
				t.Errorf("%d of %d references released after close", once, total)
			}
			h.checkOnce(t)
		})
	}
}

func TestWriteRefOnClosedConnReleasesAtOnce(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	roundTrip(t, c, frame(nil), frame(nil))
	c.Close()
	<-h.closed
	h.mu.Lock()
	var sc *Conn
	for _, v := range h.opened {
		sc = v
	}
	h.mu.Unlock()
	r := &countRel{}
	done := make(chan struct{})
	sc.Loop().Post(func() {
		sc.Write([]byte("dropped"))
		sc.WriteRef([]byte("dropped"), r)
		close(done)
	})
	<-done
	if r.n.Load() != 1 {
		t.Errorf("released %d times, want 1", r.n.Load())
	}
}

// bufSink fills dst in regions of at most region bytes and records how
// many bytes arrived while OnData was running (copied from bytes already
// received) and how many outside it (read straight from the socket).
type bufSink struct {
	h        *sinkHandler
	c        *Conn
	dst      []byte
	filled   int
	region   int
	inData   int
	outside  int
	doneSeen int
}

func (s *bufSink) Next() []byte {
	return s.dst[s.filled:min(len(s.dst), s.filled+s.region)]
}

func (s *bufSink) Advance(n int) {
	// No read since OnData ran: these bytes were already buffered.
	if s.h.srv.Load().Stats().Reads == s.h.readsAtData {
		s.inData += n
	} else {
		s.outside += n
	}
	s.filled += n
}

func (s *bufSink) Done() {
	s.doneSeen++
	s.h.mu.Lock()
	s.h.sinks = append(s.h.sinks, s)
	s.h.mu.Unlock()
	s.c.Write([]byte("SINKOK"))
}

// sinkHandler: a frame whose first payload byte is 'S' followed by a 4-byte
// size n makes the next n bytes go to a sink; other frames are echoed.
type sinkHandler struct {
	*closeLog
	srv         atomic.Pointer[Server]
	readsAtData uint64 // Stats().Reads when OnData last ran
	mu          sync.Mutex
	sinks       []*bufSink
}

func (h *sinkHandler) OnData(c *Conn, in []byte) (int, error) {
	h.readsAtData = h.srv.Load().Stats().Reads
	frames, used := splitFrames(in)
	for i, f := range frames {
		if len(f) == 9 && f[4] == 'S' {
			n := int(binary.BigEndian.Uint32(f[5:]))
			c.SetSink(&bufSink{h: h, c: c, dst: make([]byte, n), region: 3000 + 61<<10})
			// Stop at the sink: the bytes after this frame are its payload.
			end := 0
			for _, g := range frames[:i+1] {
				end += len(g)
			}
			return end, nil
		}
		c.Write(f)
	}
	return used, nil
}

func sinkReq(n int) []byte {
	b := []byte{'S', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(n))
	return frame(b)
}

func TestSinkBufferedThenStraight(t *testing.T) {
	h := &sinkHandler{closeLog: newCloseLog()}
	s := start(t, Config{Loops: 1}, h)
	h.srv.Store(s)
	c := dial(t, s)
	const size = 1 << 20
	payload := pattern(size, 5)
	// The header and the first 5000 payload bytes arrive together (bytes
	// already buffered); the rest arrives later (read into the sink), then
	// an ordinary frame that OnData must get after Done.
	first := append(sinkReq(size), payload[:5000]...)
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first part read", func() bool { return s.Stats().BytesIn == uint64(len(first)) })
	tail := frame([]byte("after"))
	roundTrip(t, c, append(payload[5000:], tail...), append([]byte("SINKOK"), tail...))
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sinks) != 1 {
		t.Fatalf("%d sinks done, want 1", len(h.sinks))
	}
	k := h.sinks[0]
	if !bytes.Equal(k.dst, payload) || k.doneSeen != 1 {
		t.Fatalf("sink content differs or Done called %d times", k.doneSeen)
	}
	if k.inData != 5000 || k.outside != size-5000 {
		t.Errorf("sink got %d buffered and %d straight bytes, want 5000 and %d", k.inData, k.outside, size-5000)
	}
}

func TestSinkCompletesInsideOneRead(t *testing.T) {
	h := &sinkHandler{closeLog: newCloseLog()}
	s := start(t, Config{Loops: 1}, h)
	h.srv.Store(s)
	c := dial(t, s)
	payload := pattern(100, 1)
	var req, want []byte
	for i := 0; i < 3; i++ {
		req = append(req, sinkReq(len(payload))...)
		req = append(req, payload...)
		req = append(req, frame([]byte{byte(i)})...)
		want = append(want, "SINKOK"...)
		want = append(want, frame([]byte{byte(i)})...)
	}
	// An empty sink completes at once.
	req = append(req, sinkReq(0)...)
	want = append(want, "SINKOK"...)
	roundTrip(t, c, req, want)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range h.sinks {
		if k.filled != len(k.dst) || (len(k.dst) > 0 && !bytes.Equal(k.dst, payload)) {
			t.Errorf("sink content differs")
		}
	}
}

// TestSlowReaderBounded: a client sends echo frames and never reads. The
// server stops reading it once its queued output passes MaxOutbound, its
// queue stays bounded, and another client keeps being served.
func TestSlowReaderBounded(t *testing.T) {
	const maxOut = 256 << 10
	h := &maxPendingEcho{echoHandler: newEcho()}
	cfg := Config{Loops: 1, MaxOutbound: maxOut}
	s := start(t, cfg, h)
	slow := dial(t, s)
	f := frame(pattern(16<<10, 3))
	go func() {
		slow.SetWriteDeadline(time.Now().Add(20 * time.Second))
		for {
			if _, err := slow.Write(f); err != nil {
				return
			}
		}
	}()
	waitFor(t, "the slow conn to be paused", func() bool { return s.Stats().Paused > 0 })
	fast := dial(t, s)
	for i := 0; i < 50; i++ {
		g := frame(pattern(i*100, i))
		roundTrip(t, fast, g, g)
	}
	// Bound: the high-water mark, plus what one pass may read and answer.
	limit := maxOut + DefaultMaxReadPerPass + 2*len(f)
	if m := h.max.Load(); m > int64(limit) || m <= maxOut {
		t.Errorf("max queued output %d, want in (%d, %d]", m, maxOut, limit)
	}
	if st := s.Stats(); st.Open != 2 {
		t.Errorf("%d conns open, want 2 (the slow one must not be dropped)", st.Open)
	}
	slow.Close()
}

type maxPendingEcho struct {
	*echoHandler
	max atomic.Int64
}

func (h *maxPendingEcho) OnData(c *Conn, in []byte) (int, error) {
	n, err := h.echoHandler.OnData(c, in)
	if p := int64(c.Pending()); p > h.max.Load() {
		h.max.Store(p)
	}
	return n, err
}

func TestSlowReaderResumes(t *testing.T) {
	s := start(t, Config{Loops: 1, MaxOutbound: 64 << 10}, newEcho())
	c := dial(t, s)
	// 32 MiB of echo frames, more than the kernel buffers hold, written
	// while nothing is read, then read back: the connection pauses and
	// resumes until all is answered.
	f := frame(pattern(64<<10-4, 1))
	stream := bytes.Repeat(f, 512)
	errc := make(chan error, 1)
	go func() { _, err := c.Write(stream); errc <- err }()
	waitFor(t, "a pause", func() bool { return s.Stats().Paused > 0 })
	got := make([]byte, len(stream))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, stream) {
		t.Fatal("echoed stream differs")
	}
}
