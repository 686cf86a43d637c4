package sockpeek

import (
	"net"
	"runtime"
	"testing"
	"time"
)

// TestPeek: a quiet connection, one with a byte waiting (left there), one
// whose peer closed it, and a connection without a descriptor.
func TestPeek(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if s := Peek(srv); s != Quiet {
		t.Fatalf("open, nothing sent: %v; want Quiet", s)
	}
	// A read deadline past changes nothing (before, it read as Closed:
	// the controller told a client waiting for its registration that it
	// had left).
	if err := srv.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if s := Peek(srv); s != Quiet {
		t.Fatalf("open, nothing sent, read deadline past: %v; want Quiet", s)
	}
	if err := srv.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Write([]byte{7}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, srv, Data)
	if s := Peek(srv); s != Data {
		t.Fatalf("a second peek: %v; want Data (the byte stays)", s)
	}
	var b [1]byte
	if _, err := srv.Read(b[:]); err != nil || b[0] != 7 {
		t.Fatalf("read after peeks: %v, %d; want the byte", err, b[0])
	}
	cli.Close()
	waitFor(t, srv, Closed)
	a, p := net.Pipe()
	defer a.Close()
	defer p.Close()
	if s := Peek(a); s != Unknown {
		t.Errorf("a pipe: %v; want Unknown", s)
	}
}

func waitFor(t *testing.T, c net.Conn, want State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for Peek(c) != want {
		if time.Now().After(deadline) {
			t.Fatalf("peek never answered %v", want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFinished: a peer that wrote bytes and then closed is Finished though
// Peek says Data (a TLS client's close_notify before its FIN); an open
// peer with bytes waiting is not.
func TestFinished(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Finished asks the kernel's TCP_INFO, which only Linux answers here")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := cli.Write([]byte{7}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, srv, Data)
	if Finished(srv) {
		t.Fatal("an open peer with a byte waiting reads as finished")
	}
	cli.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !Finished(srv) {
		if time.Now().After(deadline) {
			t.Fatalf("a peer that wrote and closed is never finished (peek: %v)", Peek(srv))
		}
		time.Sleep(time.Millisecond)
	}
	if s := Peek(srv); s != Data {
		t.Fatalf("peek after the close: %v; want Data (the byte waits)", s)
	}
}
