package netio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// logRec is a slog handler that keeps every line, formatted as the message
// followed by " key=value" for each attribute.
type logRec struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRec) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRec) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRec) WithGroup(string) slog.Handler            { return r }

func (r *logRec) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	return nil
}

// expectLine fails unless a line containing every one of subs is logged
// within 2 s (the loop logs after it has closed the connections).
func (r *logRec) expectLine(t *testing.T, subs ...string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !r.has(subs); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			r.mu.Lock()
			t.Errorf("no log line with %q; got %q", subs, r.lines)
			r.mu.Unlock()
			return
		}
	}
}

func (r *logRec) has(subs []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
next:
	for _, l := range r.lines {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue next
			}
		}
		return true
	}
	return false
}

// closedWithin fails unless the server closes c (EOF or reset) within d.
// It reads and drops whatever c still receives.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64<<10)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection not closed by the server within %v", d)
		}
		return
	}
}

// nextClose returns the next error given to OnClose, failing after d.
func nextClose(t *testing.T, l *closeLog, d time.Duration) error {
	t.Helper()
	select {
	case err := <-l.closed:
		return err
	case <-time.After(d):
		t.Fatalf("no connection closed within %v", d)
		return nil
	}
}

// TestIdleTimeout: a connection that has been served once and then says
// nothing, and one that trickles bytes of a request it never completes,
// are both closed after IdleTimeout with ErrIdleTimeout; a connection that
// keeps sending requests is not, until it stops.
func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	logs := &logRec{}
	h := newEcho()
	s := start(t, Config{Loops: 1, IdleTimeout: idle, WriteTimeout: -1, Logger: slog.New(logs)}, h)
	quiet := dial(t, s)
	roundTrip(t, quiet, frame([]byte("once")), frame([]byte("once")))
	trickle := dial(t, s)
	trickle.Write([]byte{0, 0, 3, 232}) // announces 1000 bytes
	busy := dial(t, s)
	for t0 := time.Now(); time.Since(t0) < 3*idle; {
		roundTrip(t, busy, frame([]byte("busy")), frame([]byte("busy")))
		trickle.Write([]byte{1}) // fails once the server has closed it
		time.Sleep(idle / 6)
	}
	closedWithin(t, quiet, 2*time.Second)
	closedWithin(t, trickle, 2*time.Second)
	for i := 0; i < 2; i++ {
		if err := nextClose(t, h.closeLog, 2*time.Second); !errors.Is(err, ErrIdleTimeout) {
			t.Errorf("OnClose got %v, want ErrIdleTimeout", err)
		}
	}
	roundTrip(t, busy, frame([]byte("still")), frame([]byte("still")))
	if st := s.Stats(); st.IdleClosed != 2 || st.Open != 1 {
		t.Errorf("IdleClosed %d, Open %d; want 2 and 1", st.IdleClosed, st.Open)
	}
	logs.expectLine(t, "limit=IdleTimeout")
	// Once it stops, the busy one goes too.
	t0 := time.Now()
	closedWithin(t, busy, 3*time.Second)
	if d := time.Since(t0); d < idle*3/4 {
		t.Errorf("closed %v after its last request, before IdleTimeout %v", d, idle)
	}
	if err := nextClose(t, h.closeLog, 2*time.Second); !errors.Is(err, ErrIdleTimeout) {
		t.Errorf("OnClose got %v, want ErrIdleTimeout", err)
	}
	h.checkOnce(t)
}

// TestWriteTimeoutReleasesRefs: a client sends gets for large values by
// reference and never reads. After WriteTimeout the connection is reset
// and every reference it held is released.
func TestWriteTimeoutReleasesRefs(t *testing.T) {
	const wt = 300 * time.Millisecond
	logs := &logRec{}
	h := &refHandler{closeLog: newCloseLog()}
	s := start(t, Config{Loops: 1, WriteTimeout: wt, IdleTimeout: -1, Logger: slog.New(logs)}, h)
	c := dial(t, s)
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	var req []byte
	for i := 0; i < 16; i++ {
		req = append(req, sizeReq(1<<20)...)
	}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "16 refs queued", func() bool { total, _ := h.released(t); return total == 16 })
	if _, once := h.released(t); once == 16 {
		t.Fatal("every reference sent to a client that does not read: the test proves nothing")
	}
	err := nextClose(t, h.closeLog, 3*time.Second)
	if !errors.Is(err, ErrWriteTimeout) {
		t.Errorf("OnClose got %v, want ErrWriteTimeout", err)
	}
	if total, once := h.released(t); once != total {
		t.Errorf("%d of %d references released after the write timeout", once, total)
	}
	if st := s.Stats(); st.WriteTimeouts != 1 || st.Open != 0 {
		t.Errorf("WriteTimeouts %d, Open %d; want 1 and 0", st.WriteTimeouts, st.Open)
	}
	logs.expectLine(t, "limit=WriteTimeout")
	closedWithin(t, c, 2*time.Second)
	h.checkOnce(t)
}

// TestWriteTimeoutSparesSlowReader: a client that reads its responses
// slowly but steadily keeps its connection past WriteTimeout, and gets
// every byte. The reader pauses 25 ms between reads against a 1 s
// WriteTimeout, so a loaded machine (CI runs every package at once under
// -race) may stall it for most of a second without the test failing.
func TestWriteTimeoutSparesSlowReader(t *testing.T) {
	const wt = time.Second
	h := &refHandler{closeLog: newCloseLog()}
	s := start(t, Config{Loops: 1, WriteTimeout: wt}, h)
	c := dial(t, s)
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	const n = 8
	var req, want []byte
	for i := 0; i < n; i++ {
		req = append(req, sizeReq(1<<20)...)
		want = append(want, frame(refData[:1<<20])...)
	}
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(want))
	buf := make([]byte, 64<<10)
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	t0 := time.Now()
	pendingLate := false
	for len(got) < len(want) {
		k, err := c.Read(buf[:min(len(buf), len(want)-len(got))])
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", len(got), len(want), err)
		}
		got = append(got, buf[:k]...)
		if !pendingLate && time.Since(t0) > 3*wt/2 {
			pendingLate = pendingOutput(s) > 0
		}
		time.Sleep(wt / 40)
	}
	t.Logf("read %d bytes in %v", len(got), time.Since(t0))
	if !bytes.Equal(got, want) {
		t.Fatal("slow reader got different bytes")
	}
	if !pendingLate {
		t.Fatal("output never stayed queued past 1.5*WriteTimeout: the test proves nothing")
	}
	if st := s.Stats(); st.WriteTimeouts != 0 || st.Open != 1 {
		t.Errorf("WriteTimeouts %d, Open %d; want 0 and 1", st.WriteTimeouts, st.Open)
	}
}

// pendingOutput is the output queued on s's first loop, summed over its
// connections, read on the loop.
func pendingOutput(s *Server) int {
	done := make(chan int)
	l := s.loops[0]
	l.Post(func() {
		n := 0
		for _, c := range l.conns {
			if c != nil {
				n += c.Pending()
			}
		}
		done <- n
	})
	return <-done
}

// dialFrom connects to s from the local address ip (any of 127/8 is
// loopback on Linux), so a test can be several peers.
func dialFrom(t *testing.T, s *Server, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestMaxConnsPerPeer: a peer's connections beyond MaxConnsPerPeer are
// closed at accept, over all loops; another peer is not affected; a slot
// frees when one of the peer's connections closes.
func TestMaxConnsPerPeer(t *testing.T) {
	logs := &logRec{}
	h := newEcho()
	s := start(t, Config{Loops: 2, MaxConnsPerPeer: 3, Logger: slog.New(logs)}, h)
	var kept []net.Conn
	for i := 0; i < 3; i++ {
		c := dialFrom(t, s, "127.0.0.1")
		roundTrip(t, c, frame([]byte{byte(i)}), frame([]byte{byte(i)}))
		kept = append(kept, c)
	}
	for i := 0; i < 2; i++ {
		closedWithin(t, dialFrom(t, s, "127.0.0.1"), 2*time.Second)
	}
	for i := 0; i < 3; i++ {
		c := dialFrom(t, s, "127.0.0.2")
		roundTrip(t, c, frame([]byte("other")), frame([]byte("other")))
	}
	if st := s.Stats(); st.RefusedPerPeer != 2 || st.Refused != 0 || st.Open != 6 {
		t.Errorf("RefusedPerPeer %d, Refused %d, Open %d; want 2, 0, 6", st.RefusedPerPeer, st.Refused, st.Open)
	}
	logs.expectLine(t, "limit=MaxConnsPerPeer", "peer=127.0.0.1")
	kept[0].Close()
	waitFor(t, "a slot to free", func() bool { return s.Stats().Open == 5 })
	c := dialFrom(t, s, "127.0.0.1")
	roundTrip(t, c, frame([]byte("again")), frame([]byte("again")))
}

// maxFD returns the highest descriptor the process has open.
func maxFD(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	m := 0
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			m = max(m, fd)
		}
	}
	return m
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestAcceptBackoffAtEMFILE: with the process out of descriptors and a
// client waiting in the listen backlog, the loop backs off instead of
// retrying accept in a spin (it used to burn a core), still serves the
// connections it has, and accepts the client once descriptors are free.
func TestAcceptBackoffAtEMFILE(t *testing.T) {
	logs := &logRec{}
	s := start(t, Config{Loops: 1, Logger: slog.New(logs)}, newEcho())
	old := dial(t, s)
	roundTrip(t, old, frame([]byte("before")), frame([]byte("before")))

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	saved := lim
	lim.Cur = min(uint64(maxFD(t)+64), lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip("cannot lower RLIMIT_NOFILE:", err)
	}
	var fill []int
	release := func(n int) {
		for ; n > 0 && len(fill) > 0; n-- {
			unix.Close(fill[len(fill)-1])
			fill = fill[:len(fill)-1]
		}
	}
	t.Cleanup(func() {
		release(len(fill))
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved)
	})
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EMFILE {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fill = append(fill, fd)
	}
	// One descriptor for the client's socket: its connection completes in
	// the backlog, and the server's accept finds no descriptor left.
	release(1)
	c, err := net.DialTimeout("tcp", s.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	time.Sleep(100 * time.Millisecond) // the loop meets EMFILE
	cpu0, t0, passes0 := cpuTime(t), time.Now(), s.Stats().Passes
	time.Sleep(time.Second)
	busy := float64(cpuTime(t)-cpu0) / float64(time.Since(t0))
	passes := s.Stats().Passes - passes0
	t.Logf("while out of descriptors: %.1f%% of a core, %d loop passes in 1 s", 100*busy, passes)
	if busy > 0.2 {
		t.Errorf("process used %.0f%% of a core while accept had no descriptors", 100*busy)
	}
	// On a loaded machine a spinning loop gets less CPU, but it still
	// makes a pass per retry: thousands a second, against a few timer
	// firings for a loop that backs off.
	if passes > 100 {
		t.Errorf("%d loop passes in a second while accept had no descriptors", passes)
	}
	if st := s.Stats(); st.AcceptBackoffs == 0 || st.AcceptBackoffs > 20 {
		t.Errorf("AcceptBackoffs %d, want 1 to 20 over a second of back-off", st.AcceptBackoffs)
	}
	roundTrip(t, old, frame([]byte("during")), frame([]byte("during")))

	release(8)
	t1 := time.Now()
	roundTrip(t, c, frame([]byte("after")), frame([]byte("after")))
	t.Logf("accepted %v after descriptors were freed", time.Since(t1))
	release(len(fill))
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved)
	logs.expectLine(t, "limit=RLIMIT_NOFILE")
	// Back to normal: a new client is accepted at once.
	c2 := dial(t, s)
	roundTrip(t, c2, frame([]byte("new")), frame([]byte("new")))
}
