package netio

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// readAll reads c until the server closes it and returns what came.
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("after %d bytes: %v (want the server's close)", len(got), err)
	}
	return got
}

// TestHalfCloseGetsRepliesStillToCome: a client sends 200 requests whose
// replies the handler writes later (as a device read or write in flight
// answers), then shuts its writing side. Every reply arrives before the
// server closes. Before, the connection closed at the end of its input
// and the replies still to come were dropped, their requests executed.
func TestHalfCloseGetsRepliesStillToCome(t *testing.T) {
	const requests, reply = 200, 4 << 10
	h := &laterGets{echoHandler: newEcho(), reply: reply}
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	var all []byte
	for i := range requests {
		all = append(all, frame(pattern(96, i))...)
	}
	if _, err := c.Write(all); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	if got := readAll(t, c); len(got) != requests*reply {
		t.Fatalf("got %d reply bytes before the close, want %d", len(got), requests*reply)
	}
	waitFor(t, "the connection closed", func() bool { return s.Stats().Open == 0 })
}

// TestHalfCloseGetsQueuedOutputWhole: replies queued past what the socket
// takes at once (8 MiB of echoes, read only after the client shut its
// writing side) all arrive, in order. Before, the close at the end of
// input wrote what one flush could and cut the rest.
func TestHalfCloseGetsQueuedOutputWhole(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 1, MaxOutbound: 64 << 20}, h)
	c := dial(t, s)
	var all []byte
	for i := range 32 {
		all = append(all, frame(pattern(256<<10, i))...)
	}
	go func() {
		c.Write(all)
		c.(*net.TCPConn).CloseWrite()
	}()
	time.Sleep(200 * time.Millisecond) // the server meets the end of input with output queued
	if got := readAll(t, c); !bytes.Equal(got, all) {
		t.Fatalf("got %d bytes before the close, want the %d sent back whole", len(got), len(all))
	}
}

// TestHalfCloseOwingNothingClosesAtOnce: a half-closed connection that
// owes nothing, with a frame cut short in its input, is closed as before.
func TestHalfCloseOwingNothingClosesAtOnce(t *testing.T) {
	h := newEcho()
	s := start(t, Config{Loops: 1}, h)
	c := dial(t, s)
	roundTrip(t, c, frame([]byte("one")), frame([]byte("one")))
	c.Write(frame(make([]byte, 100))[:50])
	c.(*net.TCPConn).CloseWrite()
	if got := readAll(t, c); len(got) != 0 {
		t.Fatalf("got %d bytes for a frame cut short", len(got))
	}
	if err := <-h.closed; err != io.EOF {
		t.Fatalf("OnClose got %v, want io.EOF", err)
	}
}
