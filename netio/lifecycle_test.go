package netio

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestLoopPostFromManyGoroutines(t *testing.T) {
	s := start(t, Config{Loops: 2}, newEcho())
	const goroutines, each = 8, 500
	counts := make([]int, len(s.loops)) // each touched only by its loop
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				li := (g + i) % len(s.loops)
				s.loops[li].Post(func() { counts[li]++ })
			}
		}()
	}
	wg.Wait()
	total := 0
	for li, l := range s.loops {
		done := make(chan int)
		l.Post(func() { done <- counts[li] })
		total += <-done
	}
	if total != goroutines*each {
		t.Errorf("%d posted functions ran, want %d", total, goroutines*each)
	}
	if st := s.Stats(); st.Wakeups > st.Tasks {
		t.Errorf("%d wake-ups for %d tasks", st.Wakeups, st.Tasks)
	}
}

// asyncHandler answers each frame later, from another goroutine, through
// Conn.Post, the way a disk completion would.
type asyncHandler struct{ *closeLog }

func (h asyncHandler) OnData(c *Conn, in []byte) (int, error) {
	frames, used := splitFrames(in)
	for _, f := range frames {
		resp := append([]byte(nil), f...)
		go func() {
			time.Sleep(time.Millisecond)
			c.Post(func(c *Conn) { c.Write(resp) })
		}()
	}
	return used, nil
}

func TestConnPostAnswersAsync(t *testing.T) {
	h := asyncHandler{newCloseLog()}
	s := start(t, Config{Loops: 2}, h)
	for i := 0; i < 4; i++ {
		c := dial(t, s)
		for j := 0; j < 20; j++ {
			f := frame(pattern(j*10, j))
			roundTrip(t, c, f, f)
		}
	}
}

func TestConnPostOnClosedConnIsSkipped(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	roundTrip(t, c, frame(nil), frame(nil))
	h.mu.Lock()
	var sc *Conn
	for _, v := range h.opened {
		sc = v
	}
	h.mu.Unlock()
	c.Close()
	<-h.closed
	var ran atomic.Bool
	sc.Post(func(*Conn) { ran.Store(true) })
	done := make(chan struct{})
	sc.Loop().Post(func() { close(done) }) // runs after the Conn.Post
	<-done
	if ran.Load() {
		t.Error("Conn.Post ran on a closed connection")
	}
}

func TestCloseWithActiveConns(t *testing.T) {
	before := runtime.NumGoroutine()
	h := &refHandler{closeLog: newCloseLog()}
	s, err := Listen("127.0.0.1:0", Config{Loops: 2}, h)
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		switch i % 3 {
		case 0: // a partial frame
			c.Write([]byte{0, 0})
		case 1: // responses it does not read
			c.Write(sizeReq(2 << 20))
		}
	}
	waitFor(t, "20 conns open", func() bool { return s.Stats().Open == 20 })
	waitFor(t, "7 refs queued", func() bool { total, _ := h.released(t); return total == 7 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := <-h.closed; !errors.Is(err, ErrServerClosed) {
			t.Errorf("OnClose got %v, want ErrServerClosed", err)
		}
	}
	h.checkOnce(t)
	if total, once := h.released(t); once != total {
		t.Errorf("%d of %d references released", once, total)
	}
	for _, c := range conns {
		expectClosed(t, c)
	}
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Error("dial succeeded after Close")
	}
	s.loops[0].Post(func() { t.Error("Post ran after Close") })
	s.Close() // idempotent
	waitFor(t, "loop goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

// raiseNoFile lifts the open-file soft limit to at least n, skipping the
// test when the hard limit is lower.
func raiseNoFile(t *testing.T, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("RLIMIT_NOFILE hard limit %d < %d", lim.Max, n)
	}
	old := lim.Cur
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		lim.Cur = old
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	})
}

// TestManyIdleConns: 2000 idle connections hold no buffers on the server
// (heap growth per connection far below one 64 KiB read buffer), and
// active ones are still served.
func TestManyIdleConns(t *testing.T) {
	const n = 2000
	raiseNoFile(t, 2*n+200)
	s := start(t, Config{Loops: 2}, newEcho())
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := heap()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%100 == 0 { // some of them have talked once: their buffers are gone again
			f := frame(pattern(100<<10, i))
			roundTrip(t, c, f, f)
		}
	}
	waitFor(t, "all conns open", func() bool { return s.Stats().Open == n })
	// The client's own net.Conns are on this heap too.
	after := heap()
	if per := (after - min(base, after)) / n; per > 8<<10 {
		t.Errorf("heap grew %d bytes per idle connection", per)
	}
	for i := 0; i < n; i += n / 10 {
		f := frame(pattern(i, i))
		roundTrip(t, conns[i], f, f)
	}
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "all conns closed", func() bool { return s.Stats().Open == 0 })
	if st := s.Stats(); st.Closed != n {
		t.Errorf("%d closed, want %d", st.Closed, n)
	}
}

func TestCloseFromHandler(t *testing.T) {
	h := &closingHandler{closeLog: newCloseLog()}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	c.Write([]byte("bye"))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "goodbye" {
		t.Errorf("got %q, %v; want the answer then EOF", got, err)
	}
	if err := <-h.closed; err != nil {
		t.Errorf("OnClose got %v, want nil after Conn.Close", err)
	}
}

type closingHandler struct{ *closeLog }

func (closingHandler) OnData(c *Conn, in []byte) (int, error) {
	c.Write([]byte("goodbye"))
	c.Close()
	return len(in), nil
}
