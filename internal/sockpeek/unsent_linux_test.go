package sockpeek

import (
	"net"
	"testing"
	"time"
)

// TestUnsent: bytes written to a peer that reads nothing stay unsent
// (unacknowledged) once its receive buffer is full; a quiet connection has
// none; a connection without a descriptor cannot be asked.
func TestUnsent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if n, ok := Unsent(cli); !ok || n != 0 {
		t.Fatalf("quiet connection: %d unsent, %v; want 0, true", n, ok)
	}
	cli.(*net.TCPConn).SetWriteBuffer(1 << 20)
	buf := make([]byte, 64<<10)
	written := 0
	for {
		cli.SetWriteDeadline(timeSoon())
		n, err := cli.Write(buf)
		written += n
		if err != nil {
			break
		}
	}
	if n, ok := Unsent(cli); !ok || n <= 0 || n > written {
		t.Fatalf("after %d bytes to a peer reading nothing: %d unsent, %v", written, n, ok)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, ok := Unsent(a); ok {
		t.Fatal("a pipe has no socket to ask")
	}
}

func timeSoon() time.Time { return time.Now().Add(200 * time.Millisecond) }
