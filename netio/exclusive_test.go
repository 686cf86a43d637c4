package netio

import (
	"errors"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSecondServerOnAPortRefused: a second server listening on a port a
// server already serves fails with EADDRINUSE. Before, both joined one
// SO_REUSEPORT group and the kernel spread new connections over the two
// (a node started twice on one address served half its clients from an
// empty table).
func TestSecondServerOnAPortRefused(t *testing.T) {
	first, err := Listen("127.0.0.1:0", Config{Loops: 2}, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	addr := first.Addr().String()
	second, err := Listen(addr, Config{Loops: 2}, nopHandler{})
	if err == nil {
		second.Close()
		t.Fatalf("a second server listens on %s beside the first", addr)
	}
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("second server: %v, want EADDRINUSE", err)
	}
	// A plain listener holding the port refuses us too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if s, err := Listen(ln.Addr().String(), Config{Loops: 2}, nopHandler{}); err == nil {
		s.Close()
		t.Fatal("a server listens beside a plain listener")
	}
	// Once the first server is closed its port can be served again.
	first.Close()
	again, err := Listen(addr, Config{Loops: 2}, nopHandler{})
	if err != nil {
		t.Fatalf("listen on %s after the first server closed: %v", addr, err)
	}
	again.Close()
}

// nopHandler serves nothing.
type nopHandler struct{}

func (nopHandler) OnOpen(*Conn)                           {}
func (nopHandler) OnData(_ *Conn, in []byte) (int, error) { return len(in), nil }
func (nopHandler) OnClose(*Conn, error)                   {}
