package controller

import (
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// failingListener fails its first fails accepts as a process out of
// descriptors does (EMFILE).
type failingListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptFailuresAreWaitedOut: accepts failing for want of descriptors
// are retried, and the controller serves the next connection; Close still
// ends Serve. On the code before, Serve returned at the first failure and
// the controller never accepted again (a hostile trial's flood of its
// metrics port), though its process ran on.
func TestAcceptFailuresAreWaitedOut(t *testing.T) {
	c := newTest(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &failingListener{Listener: ln}
	fl.fails.Store(8)
	done := make(chan error, 1)
	go func() { done <- c.Serve(fl) }()
	conn, r := dial(t, ln.Addr().String())
	h, meta, err := exchange(t, conn, r, wire.AppendControlFrame(nil, wire.OpStatus, 1, 0, nil))
	var st wire.ClusterStatus
	if err != nil || h.Code != wire.CodeOK || st.Decode(meta) != nil {
		t.Fatalf("status after 8 failed accepts: %+v %v %v", h, err, wire.ReplyError(&h, meta))
	}
	if n := fl.fails.Load(); n >= 0 {
		t.Fatalf("the listener has %d failures left: the test did not exercise them", n+1)
	}
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve returned %v after Close", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}
