package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// limitedNode starts a DRAM node that takes maxConns connections; those
// over it go to its reserve, which refuses data requests (CodeLimit).
func limitedNode(t *testing.T, maxConns int) *dataplane.Node {
	t.Helper()
	d, err := dataplane.NewDRAM(16<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d,
		Net: netio.Config{Loops: 1, MaxConns: maxConns}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); d.Close() })
	return n
}

// TestRefusedAtLimitGoesOnLiveConnections (hostile trial): a pool holds
// more slots than the node takes connections. Its calls go on the
// connections the node took, and none fails. Before, a call whose slot
// had no connection dialled one, the node's reserve refused its request
// (CodeLimit, "node at its connection limit"), and the call failed: a
// trial's job failed 80 % of its gets while it held 31 connections that
// worked. Here, on that code, 300 of 400 calls failed.
func TestRefusedAtLimitGoesOnLiveConnections(t *testing.T) {
	n := limitedNode(t, 2)
	addr := n.Addr().String()
	c := client.New(client.Options{ConnsPerNode: 8})
	defer c.Close()
	ctx := context.Background()
	req := wire.Request{Job: []byte("j"), Key: []byte("k")}
	// Two callers at once: each dials its slot and is taken.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(ctx, addr, wire.OpPut, 0, &req, []byte("v"), nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	const callers, each = 4, 100
	errs := make(chan error, callers*each)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil)
				if err == nil && string(r.Payload) != "v" {
					err = fmt.Errorf("got %q", r.Payload)
				}
				if err != nil {
					errs <- fmt.Errorf("caller %d, get %d: %w", g, i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed, first := 0, error(nil)
	for err := range errs {
		if failed++; first == nil {
			first = err
		}
	}
	st := n.Stats().Net
	t.Logf("%d of %d gets failed; the node opened %d connections on its reserve, refused %d at accept",
		failed, callers*each, st.Reserved, st.Refused)
	if failed > 0 {
		t.Fatalf("%d of %d gets failed on a pool whose node took 2 of its 8 connections; the first: %v", failed, callers*each, first)
	}
	if st.Reserved == 0 {
		t.Fatal("the node refused no connection: the test tested nothing")
	}
	if st.Refused > 0 {
		t.Errorf("the node closed %d of the pool's connections at accept: its reserve was full (the pool dialled in a burst)", st.Refused)
	}
}

// TestPoolGrowsBackWhenTheNodeTakesConnections: after refusals at the
// limit the pool stops dialling for a while, not for good: once the node
// has a slot again, the pool's next dial after the while takes it.
func TestPoolGrowsBackWhenTheNodeTakesConnections(t *testing.T) {
	n := limitedNode(t, 2)
	addr := n.Addr().String()
	ctx := context.Background()
	req := wire.Request{Job: []byte("j"), Key: []byte("k")}
	hold := client.New(client.Options{ConnsPerNode: 1})
	if _, err := hold.Do(ctx, addr, wire.OpPut, 0, &req, []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	c := client.New(client.Options{ConnsPerNode: 4})
	defer c.Close()
	get := func() {
		t.Helper()
		if _, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	for end := time.Now().Add(5 * time.Second); n.Stats().Net.Reserved < 2 && time.Now().Before(end); time.Sleep(time.Millisecond) {
		get()
	}
	if n.Stats().Net.Reserved < 2 {
		t.Fatalf("the node refused %d connections, want 2 or more", n.Stats().Net.Reserved)
	}
	hold.Close()
	for end := time.Now().Add(2 * time.Second); n.Stats().Net.Open > 1 && time.Now().Before(end); {
		time.Sleep(time.Millisecond) // the holder's connection closed on the node
	}
	for end := time.Now().Add(10 * time.Second); n.Stats().Net.Open < 2 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		get()
	}
	if st := n.Stats().Net; st.Open < 2 {
		t.Fatalf("the node holds %d of the pool's connections 10 s after it had room for 2 (%d refused on its reserve)", st.Open, st.Reserved)
	}
}

// TestRefusalAtLimitFailsNoneOfItsCalls: 16 callers at once whose slot has
// no connection, on a node that takes one: they go on the pool's live
// connection while the slot is dialled, and none fails. Before, all 16
// waited for the slot's dial and went on the connection the node
// refused: the first failed with the refusal, the others with "connection
// lost", an outcome the caller cannot know, though the node served none.
func TestRefusalAtLimitFailsNoneOfItsCalls(t *testing.T) {
	n := limitedNode(t, 1)
	addr := n.Addr().String()
	c := client.New(client.Options{ConnsPerNode: 2})
	defer c.Close()
	ctx := context.Background()
	req := wire.Request{Job: []byte("j"), Key: []byte("k")}
	if _, err := c.Do(ctx, addr, wire.OpPut, 0, &req, []byte("v"), nil); err != nil {
		t.Fatal(err) // slot 1: taken
	}
	// Slot 0's callers: 16 at once on one connection the node refuses.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a get beside a connection the node refused: %v (not sent: %v)", err, client.NotSent(err))
	}
	// Slot 0 was dialled meanwhile: its next caller is refused there,
	// and sent again on slot 1's connection.
	for i, end := 0, time.Now().Add(5*time.Second); n.Stats().Net.Reserved == 0 && time.Now().Before(end); i++ {
		if _, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil); err != nil {
			t.Errorf("get %d after them: %v", i, err)
		}
		time.Sleep(time.Millisecond) // for the dial's goroutine on a busy machine
	}
	if n.Stats().Net.Reserved == 0 {
		t.Fatalf("the node refused no connection: the test tested nothing: %+v", n.Stats().Net)
	}
}

// TestRefusedWithNoLiveConnection: callers of a pool with no connection
// the node took, on the connection the node refuses at its limit, are
// answered the refusal, marked not sent (the node served none of them).
// Before, the first was answered the refusal unmarked and the others
// "connection lost". Each call dials at most once: a hostile check saw
// the pool dial 4 connections a call when it tried again on new ones.
func TestRefusedWithNoLiveConnection(t *testing.T) {
	n := limitedNode(t, 1)
	addr := n.Addr().String()
	hold := client.New(client.Options{ConnsPerNode: 1})
	defer hold.Close()
	ctx := context.Background()
	req := wire.Request{Job: []byte("j"), Key: []byte("k")}
	if _, err := hold.Do(ctx, addr, wire.OpPut, 0, &req, []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, wire.ErrLimit) || !client.NotSent(err) {
			t.Errorf("a get on a full node with no connection of its own: %v (not sent: %v), want a refusal at the limit marked not sent", err, client.NotSent(err))
		}
	}
	before := n.Stats().Net.Accepted
	const calls = 20
	for range calls {
		if _, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil); !errors.Is(err, wire.ErrLimit) {
			t.Fatalf("a get on a full node: %v, want a refusal at the limit", err)
		}
	}
	if dials := n.Stats().Net.Accepted - before; dials > calls {
		t.Errorf("%d calls to a full node dialled %d connections, want at most one a call", calls, dials)
	}
}

// TestSlowFirstCallHoldsNoOther (hostile check): a new connection's first
// call goes alone for a moment, not until its reply: on a pool of one
// connection, gets after a slow first one are answered while it waits.
// When they waited for its reply, 8 fast gets took 950 ms behind a slow
// one of a second.
func TestSlowFirstCallHoldsNoOther(t *testing.T) {
	f := newFakeNode(t)
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	ctx := context.Background()
	slow := make(chan error, 1)
	go func() { slow <- f.get(ctx, c, "slow", nil) }()
	f.waitKey(t, "slow")
	fast, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for i := range 8 {
		if err := f.get(fast, c, fmt.Sprint("k", i), nil); err != nil {
			t.Fatalf("get %d behind a slow first get: %v", i, err)
		}
	}
	close(f.slow)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
}

// limitLiar is a node that serves puts, counting each key's executions,
// and answers a get of "limit" with CodeLimit, after which it sends the
// replies of the puts it has executed meanwhile.
type limitLiar struct {
	ln   net.Listener
	mu   sync.Mutex
	runs map[string]int
	got  chan string
}

func newLimitLiar(t *testing.T) *limitLiar {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &limitLiar{ln: ln, runs: map[string]int{}, got: make(chan string, 64)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go l.serve(nc)
		}
	}()
	return l
}

func (l *limitLiar) serve(nc net.Conn) {
	defer nc.Close()
	lim := wire.DefaultLimits()
	var held []byte // replies of puts executed since the last get
	for {
		h, req, _, err := readRequest(nc, &lim)
		if err != nil {
			return
		}
		key := string(req.Key)
		reply := wire.AppendHeader(nil, &wire.Header{Op: h.Op.Reply(), ID: h.ID})
		switch {
		case h.Op == wire.OpPut:
			l.mu.Lock()
			l.runs[key]++
			l.mu.Unlock()
			held = append(held, reply...)
			if key == "warm" {
				nc.Write(held)
				held = nil
			}
		case key == "limit":
			reply = wire.AppendHeader(nil, &wire.Header{Op: h.Op.Reply(), ID: h.ID, Code: wire.CodeLimit})
			nc.Write(append(reply, held...))
			held = nil
		default:
			nc.Write(reply)
		}
		l.got <- key
	}
}

// TestLimitOnAnAnsweredConnectionRefusesThatCallAlone (hostile check): a
// node that answers CodeLimit on a connection it has answered on before
// refuses that call, not the connection: the calls under way on it get
// their own replies and are not sent again. Before, all were sent again,
// and the fake node executed 8 of 8 puts twice.
func TestLimitOnAnAnsweredConnectionRefusesThatCallAlone(t *testing.T) {
	l := newLimitLiar(t)
	addr := l.ln.Addr().String()
	c := client.New(client.Options{ConnsPerNode: 1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	do := func(op wire.Op, key string) error {
		_, err := c.Do(ctx, addr, op, 0, &wire.Request{Job: []byte("j"), Key: []byte(key)}, nil, nil)
		return err
	}
	if err := do(wire.OpPut, "warm"); err != nil {
		t.Fatal(err)
	}
	<-l.got
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := do(wire.OpPut, fmt.Sprint("p", i)); err != nil {
				t.Errorf("put p%d: %v", i, err)
			}
		}()
	}
	for range 8 {
		<-l.got
	}
	if err := do(wire.OpGet, "limit"); !errors.Is(err, wire.ErrLimit) {
		t.Errorf("the get the node refused: %v, want its refusal", err)
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, n := range l.runs {
		if n != 1 {
			t.Errorf("put %s executed %d times", k, n)
		}
	}
}

// TestColdBurstDialsAFewAtATime (hostile check): a cold pool's burst of
// callers dials at most maxGrowing (4) connections the node has not yet
// answered on at once, the node's reserve's share of one address, while
// the node answers them within firstReplyWait (a node slower than that
// gets more: the callers do not wait on its slow first replies). Before,
// a pool of 16 had 14 open and unanswered at once, and at a full node
// those past the reserve were closed at accept, their calls lost with an
// outcome unknown.
func TestColdBurstDialsAFewAtATime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var unanswered, most atomic.Int32
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if n := unanswered.Add(1); n > most.Load() {
				most.Store(n) // one accept loop: no other writer
			}
			go func() {
				defer nc.Close()
				lim := wire.DefaultLimits()
				for first := true; ; first = false {
					h, _, _, err := readRequest(nc, &lim)
					if err != nil {
						return
					}
					if first {
						time.Sleep(2 * time.Millisecond) // a reserve's answer takes a round trip or so
					}
					if _, err := nc.Write(wire.AppendHeader(nil, &wire.Header{Op: h.Op.Reply(), ID: h.ID})); err != nil {
						return
					}
					if first {
						unanswered.Add(-1)
					}
				}
			}()
		}
	}()
	const callers = 16
	c := client.New(client.Options{ConnsPerNode: callers})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(ctx, ln.Addr().String(), wire.OpGet, 0, &wire.Request{Job: []byte("j"), Key: []byte("k")}, nil, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// maxGrowing, and a little over it where a first reply came later
	// than firstReplyWait on a loaded machine (-race).
	if m := most.Load(); m > 6 {
		t.Errorf("a cold pool of %d callers had %d connections open and not yet answered at once, want at most 4 (6 on a loaded machine)", callers, m)
	}
}

// TestColdStartRefusalWaitsForTheOthers (hostile check): a cold pool at a
// node with room for one of its connections: the calls the node refuses
// go on the connection it takes, once it answers, and none fails. Before,
// a refusal that came back before any connection had answered was the
// call's answer (1-4 of 16 calls in half of the runs).
func TestColdStartRefusalWaitsForTheOthers(t *testing.T) {
	n := limitedNode(t, 2)
	addr := n.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := wire.Request{Job: []byte("j"), Key: []byte("k")}
	hold := client.New(client.Options{ConnsPerNode: 1})
	defer hold.Close()
	if _, err := hold.Do(ctx, addr, wire.OpPut, 0, &req, []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for round := range 10 {
		c := client.New(client.Options{ConnsPerNode: 4})
		var wg sync.WaitGroup
		var bad atomic.Int32
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Do(ctx, addr, wire.OpGet, 0, &req, nil, nil); err != nil {
					bad.Add(1)
					t.Logf("round %d: %v (not sent: %v)", round, err, client.NotSent(err))
				}
			}()
		}
		wg.Wait()
		c.Close()
		failed += int(bad.Load())
		for end := time.Now().Add(2 * time.Second); n.Stats().Net.Open > 1 && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond) // the round's connection gone
		}
	}
	// One refusal in a run is let through: the node may not yet have
	// freed the previous round's slot, and then refuses every connection
	// of a pool (seen once in 20 runs; the code before failed 15-21).
	if failed > 1 {
		t.Fatalf("%d of 40 calls of cold pools failed beside a connection the node took", failed)
	}
	if n.Stats().Net.Reserved == 0 {
		t.Fatal("the node refused no connection: the test tested nothing")
	}
}
