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

// failWrites is a connection whose writes fail: the reply to its request
// reaches no one (its peer gone, or its connection evicted at MaxConns
// while the reply waited unread).
type failWrites struct{ net.Conn }

func (failWrites) Write([]byte) (int, error) { return 0, errors.New("injected: reply not written") }

// TestUndeliveredRegistrationEndsItsJob: a registration whose reply, with
// the job's token, cannot be written leaves no job behind. On the code
// before, the job stayed registered (holding its allotment, and its
// tenant's quota) with its token delivered to nobody: at MaxConns a
// registration whose reply waited unread for a second could be evicted
// that way.
func TestUndeliveredRegistrationEndsItsJob(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	server, client := net.Pipe()
	defer client.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.serveConn(failWrites{server})
	}()
	b := flatbuffers.NewBuilder(256)
	meta := (&wire.JobRegister{Name: "lost", Hints: wire.JobHints{PeakMbps: 100}}).Encode(b)
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Write(wire.AppendControlFrame(nil, wire.OpRegisterJob, 1, 0, meta)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not ended after its reply failed")
	}
	if jobs := c.Status().Jobs; len(jobs) != 0 {
		t.Fatalf("%d jobs registered after the only registration's reply failed: %+v", len(jobs), jobs[0])
	}
	// The same registration with its reply written enters its job.
	server, client = net.Pipe()
	defer client.Close()
	go c.serveConn(server)
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Write(wire.AppendControlFrame(nil, wire.OpRegisterJob, 2, 0, meta)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := wire.ReadControlFrame(bufio.NewReader(client), &wire.Limits{MaxMeta: wire.DefaultControlMaxMeta}, nil); err != nil {
		t.Fatal(err)
	}
	if jobs := c.Status().Jobs; len(jobs) != 1 {
		t.Fatalf("%d jobs after a registration answered, want 1", len(jobs))
	}
}
