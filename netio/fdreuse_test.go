package netio

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStaleEventSkipsTheDescriptorsNewOwner: epoll reports a batch of
// events keyed by descriptor, so a connection closed while the loop works
// through a batch leaves its later events in it, and a connection opened
// later in the same pass can take the same descriptor number. Such an
// event (here a reset, EPOLLERR|EPOLLHUP, of the closed socket) must not
// reach the new connection: before events carried the connection's tag,
// it closed it. The event is made by hand because the kernel's order
// within a batch cannot be arranged from outside; an event carrying the
// connection's own tag must still close it.
func TestStaleEventSkipsTheDescriptorsNewOwner(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 1}, h)
	l := s.loops[0]
	a := dial(t, s)
	roundTrip(t, a, frame([]byte("a")), frame([]byte("a")))
	old := onlyOpen(t, h, nil)
	l.Post(func() { l.closeConn(old, nil) })
	waitClosed(t, h)

	b := dial(t, s)
	roundTrip(t, b, frame([]byte("b")), frame([]byte("b")))
	cb := onlyOpen(t, h, old)
	dispatchOn := func(c *Conn, tag uint32) {
		done := make(chan struct{})
		l.Post(func() {
			l.dispatch(&unix.EpollEvent{Events: unix.EPOLLERR | unix.EPOLLHUP, Fd: int32(c.fd), Pad: int32(tag)})
			close(done)
		})
		<-done
	}

	dispatchOn(cb, old.tag())
	roundTrip(t, b, frame([]byte("still open")), frame([]byte("still open")))
	select {
	case err := <-h.closed:
		t.Fatalf("a stale event for a closed socket's descriptor closed its new owner: %v", err)
	default:
	}

	dispatchOn(cb, cb.tag())
	waitClosed(t, h)
}

// waitClosed waits for the handler's next OnClose.
func waitClosed(t *testing.T, h *echoHandler) {
	t.Helper()
	select {
	case <-h.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("no OnClose within 10 s")
	}
}

// onlyOpen returns the one connection h opened other than but.
func onlyOpen(t *testing.T, h *echoHandler, but *Conn) *Conn {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var found *Conn
	for _, c := range h.opened {
		if c != but {
			if found != nil {
				t.Fatal("more than one connection open")
			}
			found = c
		}
	}
	if found == nil {
		t.Fatal("no connection open")
	}
	return found
}
