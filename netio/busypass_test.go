package netio

import (
	"net"
	"runtime"
	"sync"
	"testing"
)

// passLog echoes frames and records, per OnData call, whether the loop's
// pass had two events or more (Loop.busyPass: its calls are raw).
type passLog struct {
	*echoHandler
	mu   sync.Mutex
	busy []bool
}

func (h *passLog) OnData(c *Conn, in []byte) (int, error) {
	h.mu.Lock()
	h.busy = append(h.busy, c.Loop().busyPass)
	h.mu.Unlock()
	return h.echoHandler.OnData(c, in)
}

func (h *passLog) take() []bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.busy
	h.busy = nil
	return b
}

// TestRawCallsOnlyInBusyPasses: a lone connection's requests, one event a
// pass, are served with plain system calls (its latency rests on them);
// two connections' requests in one pass are served with raw calls. With
// one P, held by the loop while a posted task writes to both connections,
// both requests are waiting at the loop's next poll.
func TestRawCallsOnlyInBusyPasses(t *testing.T) {
	h := &passLog{echoHandler: newEcho()}
	s := start(t, Config{Loops: 1}, h)
	a, b := dial(t, s), dial(t, s)
	waitFor(t, "both connections open", func() bool { return s.Stats().Accepted == 2 })
	for i := 0; i < 20; i++ {
		roundTrip(t, a, frame([]byte("x")), frame([]byte("x")))
	}
	for i, busy := range h.take() {
		if busy {
			t.Fatalf("request %d of a lone connection served in a busy pass (raw calls)", i)
		}
	}
	procs := runtime.GOMAXPROCS(1)
	wrote := make(chan error, 2)
	s.loops[0].Post(func() {
		for _, c := range []net.Conn{a, b} {
			_, err := c.Write(frame([]byte("y")))
			wrote <- err
		}
	})
	for i := 0; i < 2; i++ {
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
	}
	runtime.GOMAXPROCS(procs)
	readFrame(t, a, frame([]byte("y")))
	readFrame(t, b, frame([]byte("y")))
	got := h.take()
	if len(got) != 2 || !got[0] || !got[1] {
		t.Errorf("two connections' requests waiting at one poll: busy passes %v, want [true true]", got)
	}
}
