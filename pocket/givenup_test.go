package pocket

// Calls whose caller gave up send nothing they had not sent (givenUp);
// a review of the first version found the multi-step calls below going on
// past a step the gate had cut short. Each test failed on that version.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/wire"
	"sync/atomic"
)

// TestGivenUpReadDeleteTakesNoNewerValue: a delete-after-read while the
// key's owner changes finds nothing at the live owner and reads-and-
// deletes at the old owner, which answers busy (moving the key, or its
// device queue full). Its caller gives up. The gate ends the old owner's
// request, whose error is "not sent", so readDelete goes on to a new
// read-and-delete at the live owner: it takes the value another client
// put there meanwhile (v2, acknowledged), and leaves the older copy it
// replaced (v1) at the old owner, to read again (and be moved to the live
// owner by the mover's put-if-absent, the key now empty). Before, the
// read-and-delete waited the old owner out and took v1.
func TestGivenUpReadDeleteTakesNoNewerValue(t *testing.T) {
	c, tiers := newFaultyCluster(t, 3)
	ctx := context.Background()
	j := spreadJob(t, c, "givenup-rd")
	key, a, b, _, _ := joiningKey(j)
	other, err := c.store().OpenCredential(j.Credential()) // another client, routing to b
	if err != nil {
		t.Fatal(err)
	}
	if tg := other.route([]byte(key), 0); tg.addr != b {
		t.Fatalf("other routes to %s", tg.addr)
	}
	tg := j.targetOf(a)
	req := wire.Request{Job: tg.job, Key: []byte(key), Token: tg.token, Epoch: tg.epoch, Version: newVersion()}
	if _, err := j.s.data.Do(ctx, a, wire.OpPut, tg.flags, &req, []byte("v1"), nil); err != nil {
		t.Fatal(err) // the older copy, not yet moved
	}
	var busy atomic.Bool
	var opens atomic.Int32
	busy.Store(true)
	for i, f := range tiers {
		if c.nodes[i].node.Addr().String() == a {
			f.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
				if op == dataplane.FaultOpen && string(k) == key && busy.Load() {
					opens.Add(1)
					return &wire.Error{Code: wire.CodeBusy, Msg: "injected"}
				}
				return nil
			})
		}
	}
	done := make(chan error, 1)
	go func() {
		short, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
		defer cancel()
		_, err := j.Get(short, key, DeleteAfterRead())
		done <- err
	}()
	for opens.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := other.Put(ctx, key, []byte("v2")); err != nil { // replaces v1, acknowledged
		t.Fatal(err)
	}
	t.Logf("delete-after-read: %v", <-done)
	time.Sleep(time.Second)
	busy.Store(false)
	time.Sleep(500 * time.Millisecond)
	v, err := j.Get(ctx, key)
	t.Logf("after: %q, %v", v, err)
	if err == nil && string(v) == "v1" {
		t.Errorf("v2 (acknowledged) was taken by a reader that had given up, and v1, which v2 replaced, reads again")
	}
}

// TestGivenUpRetiredDeleteStopsAtTheOldOwner: a retired job's delete of a
// key with an old owner (retiredKeyDo: old, then live) whose caller gives
// up while the old owner answers busy. The gate ends the old owner's
// delete (busy, not sent again), then the live owner's delete is sent
// anyway and the call succeeds (bestAnswer): the old, replaced copy is
// left, and reads back after the delete.
func TestGivenUpRetiredDeleteStopsAtTheOldOwner(t *testing.T) {
	c, tiers := newFaultyCluster(t, 3)
	ctx := context.Background()
	j := spreadJob(t, c, "givenup-retold")
	key, a, b, orig, _ := joiningKey(j)
	j.setMap(orig)
	put := func(addr, v string) {
		tg := j.targetOf(addr)
		req := wire.Request{Job: tg.job, Key: []byte(key), Token: tg.token, Epoch: tg.epoch, Version: newVersion()}
		if _, err := j.s.data.Do(ctx, addr, wire.OpPut, wire.FlagPersist|tg.flags, &req, []byte(v), nil); err != nil {
			t.Fatal(err)
		}
	}
	put(a, "v1 (replaced)") // the old owner's older copy
	put(b, "v2")            // the value written at the live owner since
	left := retiredHandle(t, c, j)
	left.setMap(withJoining(left.Map(), b))
	if v, err := left.Get(ctx, key); err != nil || string(v) != "v2" {
		t.Fatalf("before: %q %v", v, err)
	}
	var busy atomic.Bool
	busy.Store(true)
	for i, f := range tiers {
		if c.nodes[i].node.Addr().String() != a {
			continue
		}
		f.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
			if op == dataplane.FaultDelete && string(k) == key && busy.Load() {
				return &wire.Error{Code: wire.CodeBusy, Msg: "injected"}
			}
			return nil
		})
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := left.Delete(short, key)
	cancel()
	t.Logf("delete: %v", err)
	time.Sleep(time.Second)
	busy.Store(false) // the old owner is done moving; before, the delete waited this out
	time.Sleep(time.Second)
	v, err := left.Get(ctx, key)
	t.Logf("after the given-up delete: %q, %v", v, err)
	if err == nil && string(v) != "v2" {
		t.Errorf("the key reads %q, a value replaced before the delete: neither the delete done (not found) nor undone (v2)", v)
	}
}

// TestGivenUpRetiredDeleteIsNotSentAgain: a retired job's delete
// refused busy, whose caller gives up, is not sent again (givenUp). The
// gate's error is CodeUnavailable: goneCheck takes it for a lost
// connection and sends the request again (up to lostTries times).
func TestGivenUpRetiredDeleteIsNotSentAgain(t *testing.T) {
	c, tiers := newFaultyCluster(t, 1)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "givenup-gone", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	awaitListed(t, j)
	if err := j.Put(ctx, "keep", []byte("kept"), Persist()); err != nil {
		t.Fatal(err)
	}
	cred := j.Credential()
	if err := j.Deregister(ctx); err != nil {
		t.Logf("deregister: %v", err)
	}
	left, err := c.store().OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("retired handle: %v", left.retired.Load())
	time.Sleep(500 * time.Millisecond) // the node learns the end from a heartbeat
	if v, err := left.Get(ctx, "keep"); err != nil || string(v) != "kept" {
		t.Fatalf("retired get: %q %v", v, err)
	}
	var busy atomic.Bool
	var deletes, after atomic.Int32
	var returned atomic.Bool
	busy.Store(true)
	tiers[0].SetHook(func(op dataplane.FaultOp, _, key []byte) error {
		if op == dataplane.FaultDelete && string(key) == "keep" {
			deletes.Add(1)
			if returned.Load() {
				after.Add(1)
			}
			if busy.Load() {
				return &wire.Error{Code: wire.CodeBusy, Msg: "injected"}
			}
		}
		return nil
	})
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = left.Delete(short, "keep")
	cancel()
	time.Sleep(10 * time.Millisecond) // a request in flight when the caller returned has reached the node
	returned.Store(true)
	busy.Store(false) // the node would take it now
	t.Logf("delete: %v (errors.Is deadline: %v); %d deletes reached the tier", err, errors.Is(err, context.DeadlineExceeded), deletes.Load())
	time.Sleep(time.Second)
	tiers[0].SetHook(nil)
	v, gerr := left.Get(ctx, "keep")
	t.Logf("after: %d delete requests reached the tier after the caller gave up; get: %q %v", after.Load(), v, gerr)
	if after.Load() > 0 || gerr != nil {
		t.Errorf("a given-up, busy-refused delete was sent again %d times after its caller returned (the key: %q, %v)", after.Load(), v, gerr)
	}
}

// TestGivenUpRemoveAllStartsNoPass: a recursive delete whose
// caller gave up sends no request it had not sent (givenUp). A pass that
// met a change of the map starts over (passAgain), and the new pass's
// prefix deletes go out after the caller has gone: they delete a value
// another handle put, and was told stored, after the caller's error.
func TestGivenUpRemoveAllStartsNoPass(t *testing.T) {
	c, tiers := newFaultyCluster(t, 3)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "givenup-prefix", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if outside(c.ctl, j.ID()) == "" {
		t.Skipf("job on %d nodes: none left to grow it", len(j.Map().Nodes))
	}
	awaitListed(t, j)
	for _, k := range []string{"d/a", "d/b"} {
		if err := j.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	other, err := c.store().OpenCredential(j.Credential()) // another client of the job
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var held atomic.Int32
	var once sync.Once
	for _, f := range tiers {
		f.SetHook(func(op dataplane.FaultOp, _, key []byte) error {
			if op == dataplane.FaultDelete && string(key) == "d/a" && held.Add(1) == 1 {
				<-release
			}
			return nil
		})
	}
	defer once.Do(func() { close(release) })
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = j.RemoveAllCount(short, "d")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || held.Load() == 0 {
		t.Fatalf("remove all: %v, held %d", err, held.Load())
	}
	// The caller has its error. The job grows meanwhile; the Job's other
	// calls fetch the map.
	old := j.Map().Epoch
	if err := c.ctl.GrowJob(j.ID(), outside(c.ctl, j.ID())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the grown map", func() bool {
		return j.refresh(ctx) == nil && j.Map().Epoch > old && other.refresh(ctx) == nil && other.Map().Epoch > old
	})
	if err := other.Put(ctx, "d/new", []byte("acknowledged")); err != nil {
		t.Fatal(err)
	}
	once.Do(func() { close(release) })
	time.Sleep(2 * time.Second)
	v, gerr := other.Get(ctx, "d/new")
	t.Logf("after the given-up RemoveAll: d/new = %q, %v", v, gerr)
	if gerr != nil {
		t.Errorf("a value put and acknowledged after the caller of RemoveAll gave up was deleted by it: %v", gerr)
	}
}

// joiningKey sets j's map to one where its second node b joins (grown:
// a key b owns is still at its first node a until a mover empties a) and
// returns a key b owns there that a owned before, with both maps.
func joiningKey(j *Job) (key, a, b string, orig, grown Map) {
	orig = j.Map()
	a, b = orig.Nodes[0].Addr, orig.Nodes[1].Addr
	grown = withJoining(orig, b)
	j.setMap(grown)
	for i := 0; key == ""; i++ {
		k := fmt.Sprint("k", i)
		if t := j.route([]byte(k), 0); t.addr == b && t.old == a {
			key = k
		}
	}
	return key, a, b, orig, grown
}

// withJoining returns m with b joining it.
func withJoining(m Map, b string) Map {
	m.Joining = map[string]bool{b: true}
	return m
}

// sameVersionAtBoth puts a chunked object under a key that, once b joins
// the map, has b as live owner and a as old owner; the object's manifest
// is at b (put with the map before the join) and the same manifest
// (version) is copied to a: the state a mover leaves between its put at
// the owner and its delete of the local copy (dataplane/migrate.go,
// "moved by an earlier attempt"), or a move the job's end interrupted.
func sameVersionAtBoth(t *testing.T, j *Job, persist bool) (key string, val []byte, grown Map) {
	ctx := context.Background()
	key, a, b, orig, grown := joiningKey(j)
	j.setMap(orig)
	val = bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB: 3 chunks
	var opts []PutOption
	var pf uint16
	if persist {
		opts, pf = []PutOption{Persist()}, wire.FlagPersist
	}
	if err := j.Put(ctx, key, val, opts...); err != nil {
		t.Fatal(err)
	}
	tb := j.targetOf(b)
	req := wire.Request{Job: tb.job, Key: []byte(key), Token: tb.token, Epoch: tb.epoch}
	r, err := j.s.data.Do(ctx, b, wire.OpGet, tb.flags|wire.FlagVersion, &req, nil, nil)
	if err != nil || r.Flags&wire.FlagManifest == 0 {
		t.Fatalf("manifest at b: %v (flags %x)", err, r.Flags)
	}
	m, err := wire.DecodeManifest(r.Payload)
	if err != nil {
		t.Fatal(err)
	}
	ta := j.targetOf(a)
	req = wire.Request{Job: ta.job, Key: []byte(key), Token: ta.token, Epoch: ta.epoch, Version: m.Version, ObjectSize: m.Size}
	if _, err := j.s.data.Do(ctx, a, wire.OpPut, ta.flags|wire.FlagManifest|pf, &req, r.Payload, nil); err != nil {
		t.Fatal(err)
	}
	return key, val, grown
}

// busyAt makes the node addr answer busy to ops on key while busy is set,
// counting them in hits.
func busyAt(c *testCluster, tiers []*dataplane.Faulty, addr, key string, busy *atomic.Bool, hits *atomic.Int32, ops ...dataplane.FaultOp) {
	hookAt(c, tiers, addr, func(op dataplane.FaultOp, _, k []byte) error {
		if slices.Contains(ops, op) && string(k) == key && busy.Load() {
			hits.Add(1)
			return &wire.Error{Code: wire.CodeBusy, Msg: "injected"}
		}
		return nil
	})
}

// spreadJob registers a job on c over two nodes or more, listed by them.
func spreadJob(t *testing.T, c *testCluster, name string) *Job {
	t.Helper()
	j, err := c.store().RegisterJob(context.Background(), name, Hints{Lambdas: 20})
	if err != nil || len(j.Map().Nodes) < 2 {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	awaitListed(t, j)
	return j
}

// retiredHandle deregisters j and opens it again from its credential,
// retired, as a deregistration leaves a handle, once the nodes have heard.
func retiredHandle(t *testing.T, c *testCluster, j *Job) *Job {
	t.Helper()
	cred := j.Credential()
	if err := j.Deregister(context.Background()); err != nil {
		t.Logf("deregister: %v", err)
	}
	left, err := c.store().OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	left.retired.Store(true)
	return left
}

// TestGivenUpDeleteKeepsTheLiveValuesChunks: a live job's delete while
// the key's owner changes deletes at the old owner (version V), then is
// cut short by the gate at the live owner (busy). deleteBoth dropped V's
// chunks because the live delete failed, though the live owner still held
// V's manifest: the key read corrupt, neither deleted nor left as it was.
func TestGivenUpDeleteKeepsTheLiveValuesChunks(t *testing.T) {
	c, tiers := newFaultyCluster(t, 3)
	ctx := context.Background()
	j := spreadJob(t, c, "givenup-both")
	key, val, grown := sameVersionAtBoth(t, j, false)
	j.setMap(grown)
	hits := deleteWhileBusy(t, c, tiers, j, grown.Nodes[1].Addr, key, dataplane.FaultDelete)
	v, err := j.Get(ctx, key)
	t.Logf("after: %d bytes (same: %v), %v; busy answers %d", len(v), bytes.Equal(v, val), err, hits)
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Errorf("the key reads %v: neither deleted nor left as it was", err)
	}
}

// TestGivenUpRetiredDeleteKeepsTheLiveValuesChunks: the same for a retired
// job (retiredKeyDo): the old owner's delete succeeds, the live owner's is
// cut short; bestAnswer took the old owner's success for the call's, and
// deleteKey dropped the version it names, which the live owner still held.
func TestGivenUpRetiredDeleteKeepsTheLiveValuesChunks(t *testing.T) {
	c, tiers := newFaultyCluster(t, 3)
	ctx := context.Background()
	j := spreadJob(t, c, "givenup-retired")
	key, val, _ := sameVersionAtBoth(t, j, true)
	left := retiredHandle(t, c, j)
	g := left.Map()
	g.Joining = map[string]bool{g.Nodes[1].Addr: true}
	left.setMap(g)
	if v, err := left.Get(ctx, key); err != nil || !bytes.Equal(v, val) {
		t.Fatalf("before: %d bytes, %v", len(v), err)
	}
	hits := deleteWhileBusy(t, c, tiers, left, g.Nodes[1].Addr, key, dataplane.FaultDelete)
	v, err := left.Get(ctx, key)
	t.Logf("after: %d bytes (same: %v), %v; busy answers %d", len(v), bytes.Equal(v, val), err, hits)
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Errorf("the key reads %v: neither deleted nor left as it was", err)
	}
}

// rawAt sends op for key straight to addr (no routing).
func rawAt(t *testing.T, j *Job, addr string, op wire.Op, flags uint16, key string, payload []byte) (wire.Response, error) {
	t.Helper()
	tg := j.targetOf(addr)
	req := wire.Request{Job: tg.job, Key: []byte(key), Token: tg.token, Epoch: tg.epoch, Version: newVersion()}
	r, err := j.s.data.Do(context.Background(), addr, op, tg.flags|flags, &req, payload, nil)
	return r.Meta, err
}

// chunkBytes sums the bytes of chunk keys (keys holding 0x00) of job on
// every tier.
func chunkBytes(tiers []*dataplane.Faulty, job string) (n int64, keys int) {
	for _, f := range tiers {
		tier := f.Inner()
		_ = tier.List([]byte(job), nil, nil, func(key []byte, info dataplane.Info) bool {
			if bytes.IndexByte(key, 0) >= 0 {
				n += info.Size
				keys++
			}
			return true
		})
	}
	return n, keys
}

func hookAt(c *testCluster, tiers []*dataplane.Faulty, addr string, h dataplane.FaultHook) {
	for i, f := range tiers {
		if c.nodes[i].node.Addr().String() == addr {
			f.SetHook(h)
		}
	}
}

// TestGivenUpPutStillDropsTheOlderCopy: a put that lands at the live owner
// after its caller gave up still deletes the key's older copy at its old
// owner (dropOld), waiting out that owner's busy answers: cleanup runs on a
// context of its own. A first version kept the caller's context values,
// and the old owner's first busy answer ended it: the older copy read
// again once the live owner was emptied.
func TestGivenUpPutStillDropsTheOlderCopy(t *testing.T) {
	c, tiers := newFaultyCluster(t, 3)
	ctx := context.Background()
	j := spreadJob(t, c, "givenup-dropold")
	key, a, b, _, _ := joiningKey(j)
	if _, err := rawAt(t, j, a, wire.OpPut, 0, key, []byte("v1 (older copy)")); err != nil {
		t.Fatal(err)
	}
	var busy atomic.Bool
	var busyHits atomic.Int32
	busy.Store(true)
	hookAt(c, tiers, a, func(op dataplane.FaultOp, _, k []byte) error {
		if op == dataplane.FaultDelete && string(k) == key && busy.Load() {
			busyHits.Add(1)
			return &wire.Error{Code: wire.CodeBusy, Msg: "injected"}
		}
		return nil
	})
	hookAt(c, tiers, b, func(op dataplane.FaultOp, _, k []byte) error {
		if (op == dataplane.FaultCreate) && string(k) == key {
			time.Sleep(300 * time.Millisecond) // the put is in flight when its caller gives up
		}
		return nil
	})
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	err := j.Put(short, key, []byte("v2"))
	cancel()
	t.Logf("put: %v", err)
	time.Sleep(time.Second) // the put lands at b; dropOld meets a busy old owner
	busy.Store(false)
	time.Sleep(2 * time.Second)
	if v, err := j.Get(ctx, key); err != nil || string(v) != "v2" {
		t.Fatalf("the put did not land: %q %v", v, err)
	}
	_, serr := rawAt(t, j, a, wire.OpStat, 0, key, nil)
	t.Logf("old owner after: %v; busy answers %d", serr, busyHits.Load())
	if !errors.Is(serr, wire.ErrNotFound) {
		t.Errorf("dropOld was cut short by the gate (busy answers %d): the older copy stays at the old owner (stat: %v)", busyHits.Load(), serr)
		// The harm dropOld names: the live owner loses the key (restarted
		// empty), and the older value reads again.
		if _, err := rawAt(t, j, b, wire.OpDelete, 0, key, nil); err == nil {
			v, err := j.Get(ctx, key)
			t.Logf("live owner emptied: get reads %q, %v", v, err)
		}
	}
}

// versionAtOnly puts a chunked object V whose manifest is at the old owner
// a only (under the grown map), and a small value at the live owner b
// (liveVal, or nothing when empty).
func versionAtOnly(t *testing.T, j *Job, persist bool, liveVal string) (key string, grown Map) {
	key, _, grown = sameVersionAtBoth(t, j, persist)
	b := grown.Nodes[1].Addr
	var pf uint16
	if persist {
		pf = wire.FlagPersist
	}
	if liveVal == "" {
		if _, err := rawAt(t, j, b, wire.OpDelete, 0, key, nil); err != nil {
			t.Fatal(err)
		}
	} else if _, err := rawAt(t, j, b, wire.OpPut, pf, key, []byte(liveVal)); err != nil {
		t.Fatal(err)
	}
	return key, grown
}

// TestGivenUpDeleteLeavesNoDeadChunks: a live job's delete of a moving key
// whose old owner holds V (chunked) and whose live owner holds another
// value W: the old owner deletes V, the live owner answers busy and the
// caller gives up; the stat that decides whether the live owner holds V
// (liveMayHold) waits out busy on a context of its own, so V's chunks,
// named by no manifest, are dropped. A first version sent it once, was
// refused busy too, and kept them for good.
func TestGivenUpDeleteLeavesNoDeadChunks(t *testing.T) {
	c, tiers := newFaultyCluster(t, 3)
	ctx := context.Background()
	j := spreadJob(t, c, "givenup-leak")
	key, grown := versionAtOnly(t, j, false, "W")
	j.setMap(grown)
	before, nk := chunkBytes(tiers, j.ID())
	t.Logf("chunks before: %d bytes, %d keys", before, nk)
	hits := deleteWhileBusy(t, c, tiers, j, grown.Nodes[1].Addr, key, dataplane.FaultDelete, dataplane.FaultStat)
	v, gerr := j.Get(ctx, key)
	after, nk := chunkBytes(tiers, j.ID())
	t.Logf("after: key reads %q, %v; chunks %d bytes, %d keys; busy answers %d", v, gerr, after, nk, hits)
	if gerr != nil || string(v) != "W" {
		t.Fatalf("key reads %q %v", v, gerr)
	}
	if after > 0 {
		t.Errorf("V's chunks (%d bytes) are kept though no manifest names V: the key reads W", after)
	}
}

// TestGivenUpRetiredDeleteLeavesNoDeadChunks: the same for a retired job
// (retiredKeyDo): the old owner deletes V, the live owner (holding W) is
// busy, the caller gone; the stat runs on a context of its own and V's
// chunks go (the job's sweep has run: nothing else would take them).
func TestGivenUpRetiredDeleteLeavesNoDeadChunks(t *testing.T) {
	c, tiers := newFaultyCluster(t, 3)
	ctx := context.Background()
	j := spreadJob(t, c, "givenup-retleak")
	key, _ := versionAtOnly(t, j, true, "W")
	left := retiredHandle(t, c, j)
	g := left.Map()
	g.Joining = map[string]bool{g.Nodes[1].Addr: true}
	left.setMap(g)
	before, nk := chunkBytes(tiers, j.ID())
	t.Logf("chunks before: %d bytes, %d keys", before, nk)
	hits := deleteWhileBusy(t, c, tiers, left, g.Nodes[1].Addr, key, dataplane.FaultDelete, dataplane.FaultStat)
	v, gerr := left.Get(ctx, key)
	after, nk := chunkBytes(tiers, j.ID())
	t.Logf("after: key reads %q, %v; chunks %d bytes, %d keys; busy answers %d", v, gerr, after, nk, hits)
	if after > 0 {
		t.Errorf("V's chunks (%d bytes) are kept though no manifest names V", after)
	}
}

// deleteWhileBusy deletes key through j with a context of 200 ms while the
// node addr answers busy to ops on it, for a second after that; it returns
// how many busy answers the node gave.
func deleteWhileBusy(t *testing.T, c *testCluster, tiers []*dataplane.Faulty, j *Job, addr, key string, ops ...dataplane.FaultOp) int32 {
	t.Helper()
	var busy atomic.Bool
	var hits atomic.Int32
	busy.Store(true)
	busyAt(c, tiers, addr, key, &busy, &hits, ops...)
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := j.Delete(short, key)
	cancel()
	t.Logf("delete: %v (deadline: %v)", err, errors.Is(err, context.DeadlineExceeded))
	time.Sleep(time.Second)
	busy.Store(false)
	time.Sleep(500 * time.Millisecond)
	return hits.Load()
}
