package dataplane

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// laneNode runs a node with one event loop over a Faulty DRAM tier whose
// listings of job "slow" block while held: entered delivers once per
// listing that has begun, release lets them all go.
func laneNode(t *testing.T) (n *Node, entered <-chan struct{}, release func()) {
	t.Helper()
	f := NewFaulty(newDRAMTier(t, 64<<20))
	in, out := make(chan struct{}, 256), make(chan struct{})
	f.SetHook(func(op FaultOp, job, _ []byte) error {
		if op == FaultList && string(job) == "slow" {
			in <- struct{}{}
			<-out
		}
		return nil
	})
	var once sync.Once
	release = func() { once.Do(func() { close(out) }) }
	n = startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: f, Net: netio.Config{Loops: 1}}, f)
	t.Cleanup(release) // before the node's close, which waits for its loop
	return n, in, release
}

func newDRAMTier(t *testing.T, capacity int64) *DRAM {
	t.Helper()
	d, err := NewDRAM(capacity, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// within runs f and fails the test unless it ends within d: a liveness
// bound for a request that must not wait on another's work, far above
// the milliseconds it takes.
func within(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: no answer within %v while another connection's listing ran", what, d)
	}
}

// exchange sends one request on c and returns its reply.
func exchange(c *client.Conn, op wire.Op, flags uint16, req *wire.Request, payload []byte) (client.Response, error) {
	if _, err := c.Send(op, flags, req, payload); err != nil {
		return client.Response{}, err
	}
	if err := c.Flush(); err != nil {
		return client.Response{}, err
	}
	return c.Recv()
}

// A listing or prefix delete that scans many keys runs off the event
// loop: while one is held inside its scan, another connection on the
// same (only) loop still has its put and get served, and the held
// request is answered once it ends. On the old code the loop itself was
// inside the scan, and the put waited for it.
func TestScansLeaveTheLoopFree(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint16
		op    wire.Op
	}{
		{"list", 0, wire.OpList},
		{"delete-prefix", wire.FlagPrefix, wire.OpDelete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, entered, release := laneNode(t)
			slow, fast := dial(t, n, "slow"), dial(t, n, "fast")
			if r := roundTrip(t, slow, wire.OpPut, 0, &wire.Request{Job: []byte("slow"), Key: []byte("a/1")}, []byte("v")); r.Err() != nil {
				t.Fatal(r.Err())
			}
			id, err := slow.Send(tc.op, tc.flags, &wire.Request{Job: []byte("slow"), Key: []byte("a/")}, nil)
			if err != nil || slow.Flush() != nil {
				t.Fatal(err)
			}
			<-entered
			within(t, 10*time.Second, "put and get of another job", func() error {
				val := bytes.Repeat([]byte("x"), 1024)
				if r, err := exchange(fast, wire.OpPut, 0, &wire.Request{Job: []byte("fast"), Key: []byte("k")}, val); err != nil || r.Err() != nil {
					return errors.Join(err, r.Err())
				}
				r, err := exchange(fast, wire.OpGet, 0, &wire.Request{Job: []byte("fast"), Key: []byte("k")}, nil)
				if err == nil && !bytes.Equal(r.Payload, val) {
					err = errors.New("get read back another value")
				}
				return errors.Join(err, r.Err())
			})
			release()
			r, err := slow.Recv()
			if err != nil || r.ID != id || r.Err() != nil {
				t.Fatalf("held %s: reply %d (want %d): %v %v", tc.name, r.ID, id, err, r.Err())
			}
			var resp wire.Response
			if err := wire.DecodeResponse(r.Meta, &resp); err != nil {
				t.Fatal(err)
			}
			if tc.op == wire.OpList && (len(resp.Entries) != 1 || string(resp.Entries[0].Key) != "a/1") {
				t.Fatalf("listing: %+v, want a/1", resp.Entries)
			}
			if tc.op == wire.OpDelete && resp.Count != 1 {
				t.Fatalf("prefix delete removed %d names, want 1", resp.Count)
			}
		})
	}
}

// The lane's queue is bounded node-wide (laneQueue) and per connection
// (lanePerConn): past either, a scan is answered busy at once, and every
// scan taken is answered once the lane moves again.
func TestLaneBounds(t *testing.T) {
	n, entered, release := laneNode(t)
	req := &wire.Request{Job: []byte("slow")}
	replies := make(chan error, 1024)
	// send sends k listings on c, and reads `read` replies (any of c's).
	send := func(c *client.Conn, k, read int) {
		for i := 0; i < k; i++ {
			if _, err := c.Send(wire.OpList, 0, req, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		go func() {
			for i := 0; i < read; i++ {
				r, err := c.Recv()
				replies <- errors.Join(err, r.Err())
			}
		}()
	}
	first := dial(t, n, "slow")
	send(first, 1, 0)
	<-entered // the lane is inside the first listing; its queue is empty
	// The first connection has lanePerConn on the lane, then busy; the
	// other connections fill the node's queue, then busy.
	sent := 1 + lanePerConn
	send(first, lanePerConn, sent)
	for ; sent < 1+laneQueue+2*lanePerConn; sent += lanePerConn {
		send(dial(t, n, "slow"), lanePerConn, lanePerConn)
	}
	wantBusy := sent - 1 - laneQueue
	busy, ok := 0, 0
	count := func(err error) {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, wire.ErrBusy):
			busy++
		default:
			t.Fatal(err)
		}
	}
	timeout := time.After(10 * time.Second)
	for busy < wantBusy {
		select {
		case err := <-replies:
			count(err)
		case <-timeout:
			t.Fatalf("%d listings busy while the lane was held, want %d (%d answered)", busy, wantBusy, ok)
		}
	}
	if ok != 0 {
		t.Fatalf("%d listings answered while the lane was held", ok)
	}
	release()
	for busy+ok < sent {
		count(<-replies)
	}
	if busy != wantBusy {
		t.Fatalf("%d of %d listings busy, want %d", busy, sent, wantBusy)
	}
}
