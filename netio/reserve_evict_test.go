package netio

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// Hostile tests of the reserve's eviction (8c8cbbf): a connection that
// finds the reserve full closes the accepting loop's oldest reserve
// connection, on the premise that "a reserve connection still open has not
// been answered" and that a question sent as soon as its connection opens
// "is answered before many newer connections arrive". Both premises fail
// whenever the loop is busy for the time a few connections take to arrive
// (a node at MaxConns serving its clients; a handler blocking briefly on a
// device read, which Loop.Idle invites): the question waits in its socket
// (or its answer waits in the connection's queue until the end of the
// pass) while the newer connections are accepted, and the eviction reset
// it. Now a connection that was answered (closing) or has bytes waiting in
// its socket is never evicted (oldestReserve).

// busyLoop makes the server's only loop run a task that blocks until the
// returned function is called, and waits until it runs: a pass that takes
// long (a handler at work).
func busyLoop(t *testing.T, s *Server) (release func()) {
	t.Helper()
	running, done := make(chan struct{}), make(chan struct{})
	s.loops[0].Post(func() {
		close(running)
		<-done
	})
	select {
	case <-running:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not run the task")
	}
	return func() { close(done) }
}

// reserveAnswer reads the reserve's answer to a question already sent on
// c, reporting whether it came (the eviction resets the connection).
func reserveAnswer(c net.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	want := frame([]byte("reserved"))
	got := make([]byte, len(want))
	n, err := io.ReadFull(c, got)
	return got[:n], err
}

// fullServer is a one-loop server at MaxConns (1, held by an ordinary
// connection) with a reserve of 4 slots, one per peer.
func fullServer(t *testing.T) (*Server, *reserveEcho) {
	h := &reserveEcho{newCloseLog()}
	s := start(t, Config{Loops: 1, MaxConns: 1, ReserveConns: 4, ReserveTimeout: 5 * time.Second,
		Logger: slog.New(&logRec{})}, h)
	kept := dial(t, s)
	roundTrip(t, kept, frame([]byte("k")), frame([]byte("k")))
	return s, h
}

// TestReserveQuestionQueuedBehindNewerConnsIsNotEvicted: the controller
// dials and sends its question at once, while the loop is busy; four
// other peers connect behind it (they need send nothing). When the loop
// gets to its listener it accepts them all in one batch, and the fourth
// evicts the controller's connection, the oldest, whose question is in
// its socket unread: the controller gets a reset, never its answer. Four
// connections is the whole reserve here; on a node (16 slots, 2 loops)
// it takes about eight to the controller's loop within one pass.
func TestReserveQuestionQueuedBehindNewerConnsIsNotEvicted(t *testing.T) {
	s, _ := fullServer(t)
	release := busyLoop(t, s)
	ctl := dialFrom(t, s, "127.0.0.9")
	if _, err := ctl.Write(frame([]byte("q"))); err != nil {
		release()
		t.Fatal(err)
	}
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		dialFrom(t, s, ip)
	}
	release()
	got, err := reserveAnswer(ctl)
	if err != nil || !bytes.Equal(got, frame([]byte("reserved"))) {
		t.Errorf("the controller's question, sent before the newer connections arrived: answer %q, %v (ReserveEvictions %d)",
			got, err, s.Stats().ReserveEvictions)
	}
}

// TestReserveAnswerQueuedIsNotDiscardedByEviction: the controller's
// connection is open on the reserve; while the loop is busy, the
// controller sends its question and four other peers connect. In the next
// pass the loop reads the question and queues the answer (the connection
// closes at the end of the pass), then accepts the four, and the fourth
// evicts the answered connection, still on the reserve's list: abort
// drops the queued answer and resets the connection.
func TestReserveAnswerQueuedIsNotDiscardedByEviction(t *testing.T) {
	s, _ := fullServer(t)
	ctl := dialFrom(t, s, "127.0.0.9")
	waitFor(t, "the controller's reserve connection", func() bool { return s.Stats().ReserveOpen == 1 })
	release := busyLoop(t, s)
	if _, err := ctl.Write(frame([]byte("q"))); err != nil {
		release()
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the question is in the socket before the listener is readable
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		dialFrom(t, s, ip)
	}
	release()
	got, err := reserveAnswer(ctl)
	if err != nil || !bytes.Equal(got, frame([]byte("reserved"))) {
		st := s.Stats()
		t.Errorf("the controller's question, read and answered (BytesIn %d: both frames read): answer %q, %v (ReserveEvictions %d)",
			st.BytesIn, got, err, st.ReserveEvictions)
	}
}
