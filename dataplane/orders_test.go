package dataplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// dropOrder is the controller's drop order about job for the node n as
// known at addr, with header flags flags, the nonce nonce and the expiry
// now+token.OrderLife (token.OrderProof, as client.DropJobAt makes it).
func dropOrder(n *Node, addr, job string, flags uint16, nonce string) *wire.Request {
	return dropOrderAt(n.Incarnation(), addr, job, flags, nonce, time.Now().Add(token.OrderLife))
}

// dropOrderAt is dropOrder for incarnation inc and expiry exp.
func dropOrderAt(inc uint64, addr, job string, flags uint16, nonce string, exp time.Time) *wire.Request {
	o := token.Order{Addr: addr, Incarnation: inc, Op: byte(wire.OpDropJob), Flags: flags,
		Nonce: []byte(nonce), ExpiresMs: exp.UnixMilli()}
	return &wire.Request{Job: []byte(job), Key: o.Nonce, Token: token.OrderProof(token.OrderKey(jtSecret, []byte(job)), &o)}
}

// orderFrame is the frame of the drop order req with header flags flags.
func orderFrame(t *testing.T, flags uint16, req *wire.Request) []byte {
	t.Helper()
	meta := append([]byte(nil), wire.NewEncoder().Request(req)...)
	return append(wire.AppendHeader(nil, &wire.Header{Op: wire.OpDropJob, Flags: flags, ID: 1, MetaLen: uint32(len(meta))}), meta...)
}

// holdValues puts a temporary and a persist-after-job value of job on n.
func holdValues(t *testing.T, n *Node, job string) []byte {
	t.Helper()
	tok := token.SignJob(jtSecret, []byte(job), token.Claims{Gen: 1})
	if err := jobOp(t, n, wire.OpPut, job, "tmp", tok, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := jobOp(t, n, wire.OpPut, job, "kept", tok, 0, wire.FlagPersist); err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestDropOrderIsTakenOnce: the controller's order, made for this node,
// is taken once (the temporary value goes, the persist-after-job one
// stays); the same frame sent again, within its validity, is refused as a
// replay, and so is the frame with FlagPrefix added (it would drop the
// persisted value too). With the old admin token any number of replays
// were taken.
func TestDropOrderIsTakenOnce(t *testing.T) {
	const job = "sort-21"
	n := tokenNode(t)
	holdValues(t, n, job)
	frame := orderFrame(t, 0, dropOrder(n, n.Addr().String(), job, 0, "nonce-sort-21-01"))
	if h, err := rawExchange(t, n, frame); err != nil || h.Code != wire.CodeOK {
		t.Fatalf("the order as made for this node: %+v %v", h, err)
	}
	if u := n.jobUsage([]byte(job)); u == 0 {
		t.Fatalf("the drop order dropped the persist-after-job value too")
	}
	if h, err := rawExchange(t, n, frame); err != nil || h.Code != wire.CodeBadToken {
		t.Fatalf("the same order again: %+v %v, want bad token", h, err)
	}
	lim := wire.DefaultLimits()
	h, err := wire.ParseHeader(frame, &lim)
	if err != nil {
		t.Fatal(err)
	}
	h.Flags |= wire.FlagPrefix
	forged := append(wire.AppendHeader(nil, &h), frame[wire.HeaderLen:]...)
	if h, err := rawExchange(t, n, forged); err != nil || h.Code != wire.CodeBadToken {
		t.Fatalf("the order with FlagPrefix added: %+v %v, want bad token", h, err)
	}
	if u := n.jobUsage([]byte(job)); u == 0 {
		t.Errorf("the node holds 0 bytes of %s after the replays: its persist-after-job value is gone", job)
	}
	// The refusal says why.
	c := dial(t, n, job)
	r := roundTrip(t, c, wire.OpDropJob, 0, dropOrder(n, n.Addr().String(), job, 0, "nonce-sort-21-01"), nil)
	if !errors.Is(r.Err(), wire.ErrBadToken) || !strings.Contains(r.Err().Error(), "replay") {
		t.Errorf("a nonce taken before: %v, want bad token naming a replay", r.Err())
	}
}

// TestDropOrderForAnotherProcessIsRefused: an order the controller made
// for the process serving at an address, replayed to a new process at the
// same address (the node restarted: its record of taken orders is gone),
// is refused by the incarnation it names, and the new process's values of
// the job stay. With the old admin token the replay was taken.
func TestDropOrderForAnotherProcessIsRefused(t *testing.T) {
	const job = "sort-22"
	first := tokenNode(t)
	addr := first.Addr().String()
	frame := orderFrame(t, 0, dropOrder(first, addr, job, 0, "nonce-sort-22-01"))
	if h, err := rawExchange(t, first, frame); err != nil || h.Code != wire.CodeOK {
		t.Fatalf("the order to the first process: %+v %v", h, err)
	}
	first.Close()
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var second *Node
	for deadline := time.Now().Add(5 * time.Second); ; {
		if second, err = NewNode(NodeConfig{Listen: addr, DRAM: d, Guard: NewTokenGuard(jtSecret), Net: netio.Config{Loops: 2}}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a new process at %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer second.Close()
	if second.Incarnation() == first.Incarnation() {
		t.Fatal("two processes drew the same incarnation")
	}
	tok := holdValues(t, second, job)
	if h, err := rawExchange(t, second, frame); err != nil || h.Code != wire.CodeBadToken {
		t.Fatalf("the first process's order replayed to the second at %s: %+v %v, want bad token", addr, h, err)
	}
	if err := jobOp(t, second, wire.OpGet, job, "tmp", tok, 0, 0); err != nil {
		t.Errorf("get %s/tmp on the second process after the replay: %v", job, err)
	}
}

// TestDropOrderValidity: an order is taken only within its validity by the
// node's clock (expiry plus token.OrderSkew), and no order may ask to live
// longer than token.OrderLife plus token.OrderSkew. With the old admin
// token an order never expired.
func TestDropOrderValidity(t *testing.T) {
	const job = "sort-23"
	n := tokenNode(t)
	tok := holdValues(t, n, job)
	addr := n.Addr().String()
	c := dial(t, n, job)
	for _, tc := range []struct {
		name string
		exp  time.Time
	}{
		{"expired a minute ago", time.Now().Add(-token.OrderSkew - time.Minute)},
		{"valid for a day", time.Now().Add(24 * time.Hour)},
	} {
		r := roundTrip(t, c, wire.OpDropJob, 0, dropOrderAt(n.Incarnation(), addr, job, 0, "nonce-"+tc.name, tc.exp), nil)
		if !errors.Is(r.Err(), wire.ErrBadToken) {
			t.Errorf("an order %s: %v, want bad token", tc.name, r.Err())
		}
	}
	if err := jobOp(t, n, wire.OpGet, job, "tmp", tok, 0, 0); err != nil {
		t.Errorf("get %s/tmp after the refused orders: %v", job, err)
	}
}

// TestDropOrderNamesTheAdvertisedAddress: a node known by another address
// than the one it is bound to (pocket node --advertise; agent.Run calls
// SetAdvertised) takes orders made for the advertised address only, and
// the controller's client path (DropJobAt with the node's incarnation)
// works; DropJob (incarnation unknown) is refused.
func TestDropOrderNamesTheAdvertisedAddress(t *testing.T) {
	const job = "sort-24"
	n := tokenNode(t)
	holdValues(t, n, job)
	n.SetAdvertised("node-7.pocket.test:7000")
	c := dial(t, n, job)
	r := roundTrip(t, c, wire.OpDropJob, 0, dropOrder(n, n.Addr().String(), job, 0, "nonce-sort-24-01"), nil)
	if !errors.Is(r.Err(), wire.ErrBadToken) {
		t.Fatalf("an order for the bound address of a node advertised elsewhere: %v, want bad token", r.Err())
	}
	if r := roundTrip(t, c, wire.OpDropJob, 0, dropOrder(n, "node-7.pocket.test:7000", job, 0, "nonce-sort-24-02"), nil); r.Err() != nil {
		t.Fatalf("an order for the advertised address: %v", r.Err())
	}

	m := tokenNode(t)
	holdValues(t, m, job)
	cl := client.New(client.Options{ConnsPerNode: 1, DialTimeout: time.Second})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin := token.OrderKey(jtSecret, []byte(job))
	if _, err := cl.DropJob(ctx, m.Addr().String(), job, admin); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("DropJob without the node's incarnation: %v, want bad token", err)
	}
	if _, err := cl.DropJobAt(ctx, m.Addr().String(), job, admin, m.Incarnation()^1); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("DropJobAt with another incarnation: %v, want bad token", err)
	}
	d, err := cl.DropJobAt(ctx, m.Addr().String(), job, admin, m.Incarnation())
	if err != nil || d.Values != 1 || d.Kept <= 0 || d.Kept != m.jobUsage([]byte(job)) {
		t.Fatalf("DropJobAt with the node's incarnation: %+v, %v; want 1 value (the persisted one stays, its %d bytes kept)", d, err, m.jobUsage([]byte(job)))
	}
	// The order for a node the job lost (its flag in the proof) takes the
	// persisted value too.
	l := tokenNode(t)
	holdValues(t, l, job)
	if d, err := cl.DropLostJobAt(ctx, l.Addr().String(), job, admin, l.Incarnation()); err != nil || d.Values != 2 || d.Kept != 0 {
		t.Fatalf("DropLostJobAt: %+v, %v; want both values dropped, none kept", d, err)
	}
}

// TestOrderLogForgetsExpiredNonces: the node's record of taken orders
// stays bounded: once it is half full, nonces whose orders can no longer
// pass are forgotten, and a nonce still valid is refused again.
func TestOrderLogForgetsExpiredNonces(t *testing.T) {
	var l orderLog
	now := time.Now()
	old := now.Add(-token.OrderSkew - time.Second).UnixMilli()
	for i := range maxOrders / 2 {
		if err := l.take([]byte{byte(i), byte(i >> 8), byte(i >> 16), 1, 2, 3, 4, 5}, old, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.take([]byte("fresh-nonce"), now.Add(token.OrderLife).UnixMilli(), now); err != nil {
		t.Fatal(err)
	}
	if len(l.seen) != 1 {
		t.Errorf("after the prune the log holds %d nonces, want 1", len(l.seen))
	}
	if err := l.take([]byte("fresh-nonce"), now.Add(token.OrderLife).UnixMilli(), now); !errors.Is(err, wire.ErrBadToken) {
		t.Errorf("a nonce taken before: %v, want bad token", err)
	}
}

// TestOrderLogSweepsAmortized: with more than maxOrders/2 nonces still
// valid, take used to walk the whole log on every call (about 45,000
// entries per order here); a sweep now runs at most once per maxOrders/8
// takes, so the nonces visited stay within a few per take. A full log
// still refuses (busy) and takes again once its nonces expire.
func TestOrderLogSweepsAmortized(t *testing.T) {
	var l orderLog
	now := time.Now()
	valid := now.Add(token.OrderLife).UnixMilli()
	nonce := func(i int) []byte { return []byte{byte(i), byte(i >> 8), byte(i >> 16), 9} }
	const takes = maxOrders/2 + 12000
	for i := range takes {
		if err := l.take(nonce(i), valid, now); err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
	}
	if perTake := float64(l.visited) / takes; perTake > 4 {
		t.Errorf("sweeps visited %d nonces for %d takes (%.1f per take), want at most 4 per take", l.visited, takes, perTake)
	}
	for i := takes; i < maxOrders; i++ {
		if err := l.take(nonce(i), valid, now); err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
	}
	if err := l.take(nonce(maxOrders), valid, now); !errors.Is(err, errOrdersFull) {
		t.Fatalf("a take beyond %d valid nonces: %v, want busy", maxOrders, err)
	}
	visited := l.visited
	for i := range 1000 {
		_ = l.take(nonce(maxOrders+1+i), valid, now)
	}
	if l.visited != visited {
		t.Errorf("a full log swept again within a second: %d more nonces visited", l.visited-visited)
	}
	later := now.Add(token.OrderLife + token.OrderSkew + 2*time.Second)
	if err := l.take([]byte("after expiry"), later.Add(token.OrderLife).UnixMilli(), later); err != nil {
		t.Fatalf("a take once the log's nonces expired: %v", err)
	}
	if len(l.seen) != 1 {
		t.Errorf("after expiry the log holds %d nonces, want 1", len(l.seen))
	}
}

// TestDropOrderedJobServedOnceBackInTheMap: a live job dropped here by the
// controller's order (a node the job lost, back) is refused while the
// revocation lingers; the controller takes the node back into the job's
// map only after that, and the ack that brings the job back, even the
// first the node applies past the linger (it was silent meanwhile), makes
// it live: the job's puts pass. Before, that ack met the revoked entry
// (same gen: ignored) and the sweep then removed the entry, so the job,
// back in the node's map, was refused as revoked for good.
func TestDropOrderedJobServedOnceBackInTheMap(t *testing.T) {
	const job = "lost-7"
	n := tokenNode(t)
	n.jobs.linger = 50 * time.Millisecond
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: job, Gen: 90, Epoch: 3}))
	tok := jobTok(job, 90)
	if err := jobOp(t, n, wire.OpPut, job, "stale", tok, 3, 0); err != nil {
		t.Fatal(err)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 101, Jobs: []wire.JobEpoch{{Job: job, Gen: 90, Epoch: 4, Out: true}}})
	if freed := n.DropJob([]byte(job), true); freed.Bytes <= 0 {
		t.Fatalf("the order freed %+v", freed)
	}
	if err := jobOp(t, n, wire.OpGet, job, "stale", tok, 4, 0); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("get while the revocation lingers: %v, want revoked", err)
	}
	time.Sleep(60 * time.Millisecond) // past the linger, with no ack meanwhile
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 105, Jobs: []wire.JobEpoch{{Job: job, Gen: 90, Epoch: 6}}})
	if err := jobOp(t, n, wire.OpPut, job, "new", tok, 6, 0); err != nil {
		t.Fatalf("put of the job once the node is back in its map: %v", err)
	}
	if err := jobOp(t, n, wire.OpGet, job, "stale", tok, 6, 0); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("get of the value dropped by the order: %v, want not found", err)
	}
}

// TestLostJobDropOrderTakesLatePersistentValues: an order that drops a
// job's every value (the controller's for a node the job lost:
// wire.FlagPrefix) also takes, when the revocation lingers out, a
// persistent value that landed after the drop (a commit that outlasted
// the drop's wait for it): the node then holds none of the job, as the
// controller, taking it back into the job's map, assumes. Before, the
// second drop kept persistent values, and the stale one would be served
// again once the node was back in the map.
func TestLostJobDropOrderTakesLatePersistentValues(t *testing.T) {
	const job = "lost-8"
	n := tokenNode(t)
	n.jobs.linger = time.Millisecond
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: job, Gen: 90, Epoch: 3}))
	if err := jobOp(t, n, wire.OpPut, job, "kept", jobTok(job, 90), 3, wire.FlagPersist); err != nil {
		t.Fatal(err)
	}
	n.DropJob([]byte(job), false)
	if u := n.jobUsage([]byte(job)); u != 0 {
		t.Fatalf("the order to drop every value left %d bytes", u)
	}
	late, err := n.cfg.DRAM.Create([]byte(job), []byte("late"), 5, Meta{Flags: Persist})
	if err != nil {
		t.Fatal(err)
	}
	copy(late.Buffers()[0], "stale")
	if _, err := late.Commit(); err != nil {
		t.Fatal(err)
	}
	n.sweepRevoked(time.Now().Add(time.Second))
	if u := n.jobUsage([]byte(job)); u != 0 {
		t.Fatalf("the late persistent value outlived the revocation's linger: %d bytes", u)
	}
}

// TestDropOrderCountsWhatTheNodeDroppedFirst: a node that hears of a
// job's revocation from a heartbeat drops the job's values at once; the
// controller's drop order that follows (a deregistration's) reports what
// that drop freed with its own. Before, it reported only its own: nothing
// was left, so a new user's deregistration right after a 200 KB put
// reported 0 values dropped, 3 times of several. Fails on the old code:
// the order's reply said 0 values, 0 bytes.
func TestDropOrderCountsWhatTheNodeDroppedFirst(t *testing.T) {
	const job = "etl-31"
	n := tokenNode(t)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: job, Gen: 90, Epoch: 1}))
	tok := jobTok(job, 90)
	for _, k := range []string{"a", "b"} {
		if err := jobOp(t, n, wire.OpPut, job, k, tok, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := jobOp(t, n, wire.OpPut, job, "kept", tok, 1, wire.FlagPersist); err != nil {
		t.Fatal(err)
	}
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 101, Jobs: []wire.JobEpoch{{Job: job, Gen: 90, Revoked: true}}})
	n.bg.wait() // drops run off the heartbeat's goroutine (bgdrop.go)
	cl := client.New(client.Options{ConnsPerNode: 1, DialTimeout: time.Second})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin := token.OrderKey(jtSecret, []byte(job))
	d, err := cl.DropJobAt(ctx, n.Addr().String(), job, admin, n.Incarnation())
	if err != nil || d.Values != 2 || d.Freed <= 0 || d.Kept <= 0 {
		t.Fatalf("the order after the node's own drop: %+v, %v; want the 2 values that drop freed, and their bytes", d, err)
	}
	// Told once: the next order reports only what it drops itself.
	d, err = cl.DropJobAt(ctx, n.Addr().String(), job, admin, n.Incarnation())
	if err != nil || d.Values != 0 || d.Freed != 0 {
		t.Fatalf("a second order: %+v, %v; want nothing dropped", d, err)
	}
}
