package controller

import (
	"bufio"
	"errors"
	"net"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire"
)

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn, bufio.NewReader(conn)
}

func exchange(t *testing.T, conn net.Conn, r *bufio.Reader, frame []byte) (wire.Header, []byte, error) {
	t.Helper()
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	lim := wire.ControlLimits()
	return wire.ReadControlFrame(r, &lim, nil)
}

// TestServerBadInput: bad tables and unknown ops get error replies on a
// connection that keeps working; a bad header gets an error reply and the
// connection is closed; the server keeps serving others throughout.
func TestServerBadInput(t *testing.T) {
	c := newTest(t, Config{})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, r := dial(t, a.String())
	h, meta, err := exchange(t, conn, r, wire.AppendControlFrame(nil, wire.OpRegisterJob, 1, 0, []byte{1, 2, 3}))
	if err != nil || h.Op != wire.OpRegisterJob.Reply() || h.ID != 1 || !errors.Is(wire.ReplyError(&h, meta), wire.ErrMalformed) {
		t.Fatalf("bad table: %+v %v %v", h, err, wire.ReplyError(&h, meta))
	}
	h, meta, err = exchange(t, conn, r, wire.AppendControlFrame(nil, wire.Op(0x7E), 2, 0, nil))
	if err != nil || h.ID != 2 || !errors.Is(wire.ReplyError(&h, meta), wire.ErrUnknownOp) {
		t.Fatalf("unknown op: %+v %v", h, err)
	}
	h, meta, err = exchange(t, conn, r, wire.AppendControlFrame(nil, wire.OpStatus, 3, 0, nil))
	var st wire.ClusterStatus
	if err != nil || h.Code != wire.CodeOK || st.Decode(meta) != nil {
		t.Fatalf("status after bad input: %+v %v", h, err)
	}
	// A header with a payload (control frames have none) ends the connection.
	bad := wire.AppendHeader(nil, &wire.Header{Op: wire.OpStatus, ID: 4, PayloadLen: 10})
	h, meta, err = exchange(t, conn, r, bad)
	if err != nil || !errors.Is(wire.ReplyError(&h, meta), wire.ErrTooLarge) {
		t.Fatalf("payload on a control frame: %+v %v", h, err)
	}
	if _, err := r.ReadByte(); err == nil {
		t.Fatal("connection still open after a bad header")
	}
	// Garbage on another connection is dropped too; a third one works.
	g, gr := dial(t, a.String())
	g.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if _, err := gr.ReadByte(); err != nil {
		t.Fatalf("no error reply to garbage: %v", err)
	}
	conn3, r3 := dial(t, a.String())
	b := flatbuffers.NewBuilder(0)
	h, meta, err = exchange(t, conn3, r3, wire.AppendControlFrame(nil, wire.OpGetMap, 5, 0, (&wire.JobRef{Job: "x-1"}).Encode(b)))
	if err != nil || !errors.Is(wire.ReplyError(&h, meta), wire.ErrBadToken) {
		t.Fatalf("get map of unknown job without a token: %v %v", err, wire.ReplyError(&h, meta))
	}
}

func TestCloseEndsServe(t *testing.T) {
	c := newTest(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve(ln) }()
	conn, _ := dial(t, ln.Addr().String())
	_ = conn
	time.Sleep(20 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	if err := c.Serve(ln); !errors.Is(err, ErrClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}
