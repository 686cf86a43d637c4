package netio

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// The test protocol: a frame is a 4-byte big-endian length, then that many
// bytes. The echo handler answers each frame with the same frame.

func frame(payload []byte) []byte {
	f := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(f, uint32(len(payload)))
	copy(f[4:], payload)
	return f
}

// pattern returns n bytes that differ by position, so misordered or
// misplaced bytes show up.
func pattern(n, seed int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + seed*13 + i>>8)
	}
	return p
}

// splitFrames returns the complete frames at the front of in and their
// total length.
func splitFrames(in []byte) (frames [][]byte, used int) {
	for len(in)-used >= 4 {
		n := int(binary.BigEndian.Uint32(in[used:]))
		if len(in)-used-4 < n {
			break
		}
		frames = append(frames, in[used:used+4+n])
		used += 4 + n
	}
	return frames, used
}

// closeLog records OnOpen and OnClose calls for a handler.
type closeLog struct {
	mu     sync.Mutex
	opened map[uint64]*Conn
	errs   map[uint64][]error
	closed chan error
}

func newCloseLog() *closeLog {
	return &closeLog{opened: map[uint64]*Conn{}, errs: map[uint64][]error{}, closed: make(chan error, 10000)}
}

func (l *closeLog) OnOpen(c *Conn) {
	l.mu.Lock()
	l.opened[c.ID()] = c
	l.mu.Unlock()
}

func (l *closeLog) OnClose(c *Conn, err error) {
	l.mu.Lock()
	l.errs[c.ID()] = append(l.errs[c.ID()], err)
	l.mu.Unlock()
	l.closed <- err
}

// checkOnce fails unless every opened connection was closed exactly once.
func (l *closeLog) checkOnce(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.opened {
		if n := len(l.errs[id]); n != 1 {
			t.Errorf("conn %d: OnClose called %d times", id, n)
		}
	}
}

// echoHandler answers every complete frame with a copy of it.
type echoHandler struct{ *closeLog }

func newEcho() *echoHandler { return &echoHandler{newCloseLog()} }

func (h *echoHandler) OnData(c *Conn, in []byte) (int, error) {
	used := 0
	for n := frameLen(in); n > 0; n = frameLen(in[used:]) {
		c.Write(in[used : used+n])
		used += n
	}
	return used, nil
}

// frameLen is the length of the complete frame at in's front, length
// prefix included, or 0 when in holds no complete frame.
func frameLen(in []byte) int {
	if len(in) < 4 {
		return 0
	}
	if n := 4 + int(binary.BigEndian.Uint32(in)); n <= len(in) {
		return n
	}
	return 0
}

// start runs a server on 127.0.0.1:0 that the test closes when done.
func start(t testing.TB, cfg Config, h Handler) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t testing.TB, s *Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes data and reads back len(want) bytes, which must equal want.
func roundTrip(t testing.TB, c net.Conn, data, want []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes differing from the %d expected", len(got), len(want))
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// expectClosed fails unless the peer closes c (EOF or reset) soon.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64<<10)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("connection not closed by the server")
		}
		return
	}
}
