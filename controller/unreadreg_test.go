package controller

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/sockpeek"
	"github.com/pocketstore/pocket/wire"
)

// TestUnreadRegistrationEndsItsJob: a registration whose client closes
// its connection with the reply unread leaves no job behind; one whose
// client read the reply keeps its job, whether the client then closed at
// once or later. Before, the job stayed live with its
// token held by nobody: a hostile re-check's Go processes that exited
// right after a registration cut by their context left 27 jobs of 29.
func TestUnreadRegistrationEndsItsJob(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	addr, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := flatbuffers.NewBuilder(256)
	meta := (&wire.JobRegister{Name: "j", Hints: wire.JobHints{PeakMbps: 100}}).Encode(b)
	register := func() *net.TCPConn {
		conn, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(wire.AppendControlFrame(nil, wire.OpRegisterJob, 1, 0, meta)); err != nil {
			t.Fatal(err)
		}
		return conn.(*net.TCPConn)
	}
	readReply := func(conn net.Conn) {
		if _, _, err := wire.ReadControlFrame(bufio.NewReader(conn), &wire.Limits{MaxMeta: wire.DefaultControlMaxMeta}, nil); err != nil {
			t.Fatal(err)
		}
	}
	jobs := func() int { return len(c.Status().Jobs) }
	awaitJobs := func(want int, what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); jobs() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d jobs, want %d", what, jobs(), want)
			}
		}
	}

	// Read, then closed: kept.
	conn := register()
	readReply(conn)
	conn.Close()
	// Read, then closed later: kept.
	conn = register()
	readReply(conn)
	time.Sleep(unreadWait)
	conn.Close()
	time.Sleep(3 * unreadWait) // past any undo's wait
	awaitJobs(2, "registrations whose replies were read")

	// The reply arrived and the client closed without reading it: the
	// job ends.
	conn = register()
	awaitJobs(3, "a third registration")
	for sockpeek.Peek(conn) != sockpeek.Data {
		time.Sleep(time.Millisecond)
	}
	conn.Close()
	awaitJobs(2, "a registration whose reply was left unread")
}

// TestUnreadAfterCloseIsUndone: a connection whose peer closed before the
// last reply reached it reads as the peer's end (EOF), and the reply's
// arrival at the closed socket resets it: undoUnread undoes. A peer that
// closed with nothing unread is not undone.
func TestUnreadAfterCloseIsUndone(t *testing.T) {
	c := newTest(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (srv, cli net.Conn) {
		cli, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		srv, err = ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close(); cli.Close() })
		return srv, cli
	}
	for _, tc := range []struct {
		name       string
		replyAfter bool // the reply is written after the peer's close
		want       string
	}{{"reply after the close", true, "was left unread (its client closed its connection first)"}, {"nothing unread", false, ""}} {
		srv, cli := pair()
		var why string
		sess := &session{undelivered: func(w string) { why = w }}
		cli.Close()
		if tc.replyAfter {
			if _, err := srv.Write([]byte("reply")); err != nil {
				t.Fatal(err)
			}
		}
		c.undoUnread(srv, sess, io.EOF)
		if why != tc.want || sess.undelivered != nil {
			t.Errorf("%s: undone %q, want %q (undo left set: %v)", tc.name, why, tc.want, sess.undelivered != nil)
		}
	}
}
