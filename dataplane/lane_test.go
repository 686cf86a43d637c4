package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// laneNode runs a node with one event loop over a Faulty DRAM tier whose
// listings of job "slow" block while held: entered delivers once per
// listing that has begun, release lets them all go. scanned returns the
// jobs of the listings begun so far, in order.
func laneNode(t *testing.T) (n *Node, entered <-chan struct{}, release func(), scanned func() []string) {
	t.Helper()
	f := NewFaulty(newDRAMTier(t, 64<<20))
	in, out := make(chan struct{}, 256), make(chan struct{})
	var mu sync.Mutex
	var jobs []string
	f.SetHook(func(op FaultOp, job, _ []byte) error {
		if op != FaultList {
			return nil
		}
		mu.Lock()
		jobs = append(jobs, string(job))
		mu.Unlock()
		if string(job) == "slow" {
			in <- struct{}{}
			<-out
		}
		return nil
	})
	var once sync.Once
	release = func() { once.Do(func() { close(out) }) }
	n = startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: f, Net: netio.Config{Loops: 1}}, f)
	t.Cleanup(release) // before the node's close, which waits for its loop
	return n, in, release, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(jobs)
	}
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
			n, entered, release, _ := laneNode(t)
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

// lister returns a function that sends k listings of job on a new
// connection to n and puts their replies' errors on replies in the
// background, until the connection closes.
func lister(t *testing.T, n *Node, replies chan<- error) func(job string, k int) *client.Conn {
	return func(job string, k int) *client.Conn {
		c := dial(t, n, job)
		for i := 0; i < k; i++ {
			if _, err := c.Send(wire.OpList, 0, &wire.Request{Job: []byte(job)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		go func() {
			for i := 0; i < k; i++ {
				r, err := c.Recv()
				if err != nil {
					return // closed
				}
				replies <- r.Err()
			}
		}()
		return c
	}
}

// The lane holds at most lanePerConn requests of a connection,
// lanePerJob of a job and laneQueue in all, answering the rest busy at
// once; it runs the jobs in turn, one request each, and drops the
// requests of a connection that closed. On the old lane (first come,
// first served, 64 in all) the first 16 scans after the held one were all
// job a's, and a closed connection's scans ran.
func TestLaneBoundsAndTurns(t *testing.T) {
	n, entered, release, scanned := laneNode(t)
	replies := make(chan error, 1024)
	send := lister(t, n, replies)
	send("slow", 1)
	<-entered // the lane is inside the first listing; its queue is empty
	// A connection that closes with its requests waiting: dropped unrun.
	open := n.Stats().Net.Open
	send("gone", 2).Close()
	waitFor(t, func() bool { return n.Stats().Net.Open == open })
	sent := 2
	for i := 0; i < 5; i++ { // job a: 20, lanePerJob taken
		send("a", lanePerConn)
		sent += lanePerConn
	}
	send("b", lanePerConn+1) // one connection: lanePerConn taken
	sent += lanePerConn + 1
	var jobs []string
	for i := 0; i < 15; i++ { // 15 jobs of 16: the node's queue fills
		job := fmt.Sprintf("c%02d", i)
		jobs = append(jobs, job)
		for k := 0; k < lanePerJob/lanePerConn; k++ {
			send(job, lanePerConn)
			sent += lanePerConn
		}
	}
	wantBusy := sent - laneQueue
	busy := 0
	timeout := time.After(10 * time.Second)
	for busy < wantBusy {
		select {
		case err := <-replies:
			if !errors.Is(err, wire.ErrBusy) {
				t.Fatalf("answered %v while the lane was held", err)
			}
			busy++
		case <-timeout:
			t.Fatalf("%d listings busy while the lane was held, want %d", busy, wantBusy)
		}
	}
	release()
	for ok := 0; ok < laneQueue-2; ok++ {
		select {
		case err := <-replies:
			if err != nil {
				t.Fatalf("listing %d after the lane moved: %v", ok, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d listings answered after the lane moved", ok, laneQueue-2)
		}
	}
	got := scanned()
	if got[0] != "slow" {
		t.Fatalf("first scan of job %s", got[0])
	}
	turn := got[1 : 1+2+len(jobs)]
	if want := append([]string{"a", "b"}, jobs...); !slices.Equal(turn, want) {
		t.Fatalf("the first scans after the held one went to jobs %v, want one each: %v", turn, want)
	}
	if slices.Contains(got, "gone") {
		t.Fatal("the closed connection's listing ran")
	}
}

// A full lane takes the request of a job with fewer waiting than another
// job has: the newest request of the job with the most waiting makes
// room, answered busy. A hostile trial kept the queue full from 24 jobs
// of 16, sending each busy request again within 2 ms, and another job's
// listing waited 762 ms p50 and up to 17 s: it could not get in. On the
// old code job v's and w's listings here were answered busy.
func TestLaneTakesAJobPastAFullQueue(t *testing.T) {
	n, entered, release, scanned := laneNode(t)
	replies := make(chan error, 1024)
	send := lister(t, n, replies)
	send("slow", 1)
	<-entered
	for j := 0; j < laneQueue/lanePerJob; j++ {
		for k := 0; k < lanePerJob/lanePerConn; k++ {
			send(fmt.Sprintf("full-%02d", j), lanePerConn)
		}
	}
	waiting := func() int {
		n.lanes.quick.mu.Lock()
		defer n.lanes.quick.mu.Unlock()
		return n.lanes.quick.n
	}
	waitFor(t, func() bool { return waiting() == laneQueue })
	send("v", 1)
	send("w", 1)
	for busy := 0; busy < 2; {
		select {
		case err := <-replies:
			if !errors.Is(err, wire.ErrBusy) {
				t.Fatalf("answered %v while the lane was held, want busy", err)
			}
			busy++
		case <-time.After(10 * time.Second):
			t.Fatalf("%d requests made room for jobs v and w, want 2", busy)
		}
	}
	if w := waiting(); w != laneQueue {
		t.Fatalf("%d requests waiting, want %d", w, laneQueue)
	}
	release()
	for ok := 0; ok < laneQueue; ok++ {
		select {
		case err := <-replies:
			if err != nil {
				t.Fatalf("listing %d after the lane moved: %v", ok, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d listings answered after the lane moved", ok, laneQueue)
		}
	}
	turn := scanned()[1 : 1+laneQueue/lanePerJob+2]
	if !slices.Contains(turn, "v") || !slices.Contains(turn, "w") {
		t.Fatalf("the first turn after the held scan went to %v, want v and w among them", turn)
	}
}
