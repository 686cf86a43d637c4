package pocket

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/wire"
)

// TestGrowWaitsForASilentOwnersLease: a node of a job's map is cut off
// from its controller (its agent stopped) but not from its clients, and
// serves on within its lease; the job's map grows meanwhile. A client that
// fetches the map afterwards and puts keys the silent node owned must not
// leave a client still on the old map reading their old values from that
// node. Before, the controller handed out the grown map confirmWait
// (DeadAfter here) after the change, though the silent node had not
// confirmed it: the new client's puts of keys moving away from it went to
// the joining node, and the old client read every one of them stale from
// the silent node (a hostile trial: 13 of 13 with the Python client). Now
// a map is not handed out before a silent node that has not confirmed it
// has stopped serving (its lease ended), and then it is.
func TestGrowWaitsForASilentOwnersLease(t *testing.T) {
	c := newClusterWith(t, 3, controller.Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 500 * time.Millisecond, DeadNodeGrace: 3 * time.Second, Logger: quietLog})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sa, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	ja, err := sa.RegisterJob(ctx, "silent", Hints{Lambdas: 20})
	if err != nil || len(ja.Map().Nodes) != 2 {
		t.Fatalf("job on %d node(s): %v", len(ja.Map().Nodes), err)
	}
	silent := ja.Map().Nodes[0].Addr
	var keys []string
	for i := 0; len(keys) < 60; i++ {
		if k := fmt.Sprint("k", i); ja.route([]byte(k), 0).addr == silent {
			keys = append(keys, k)
			if err := ja.Put(ctx, k, []byte("v1")); err != nil {
				t.Fatal(err)
			}
		}
	}
	victim := c.nodeAt(silent)
	victim.cancel() // cut off from the controller; serves on within its lease
	<-victim.done
	if err := c.ctl.GrowJob(ja.ID(), outside(c.ctl, ja.ID())); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // past confirmWait; the node serves for 2.6 s of its 3.5 s lease

	sb, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	jb, err := sb.OpenJob(ctx, ja.ID(), ja.Token())
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	var put []string
	for _, k := range keys {
		if jb.Put(pctx, k, []byte("v2")) == nil {
			put = append(put, k)
		}
	}
	stale := 0
	for _, k := range put {
		if v, err := ja.Get(ctx, k); err == nil && string(v) == "v1" {
			stale++
		}
	}
	t.Logf("map epochs %d (old client) and %d (new client); %d of %d puts acknowledged", ja.Map().Epoch, jb.Map().Epoch, len(put), len(keys))
	if stale > 0 {
		t.Errorf("%d of %d acknowledged puts read back stale by the client on the old map", stale, len(put))
	}
	// Once the node's lease has ended the change's map is handed out,
	// and no client reads the older values.
	waitFor(t, 20*time.Second, "the grown map to be handed out", func() bool {
		return jb.refresh(ctx) == nil && jb.Map().Epoch > ja.Map().Epoch
	})
	for _, k := range put {
		if v, err := ja.Get(ctx, k); err == nil && string(v) != "v2" {
			t.Errorf("get %s after the change's map was handed out: %q", k, v)
		}
	}
}

// TestHeldMapKeepsKeysThatStay: while a grow's map is held back for a
// silent member (as above), the job's clients hold the map before it, and
// the member that confirmed the grow still reads and writes, by that map,
// every key it owns under both; only the keys moving to the joining node
// wait for the map. Before, that member refused every request of the map
// before as stale, and the SDK, which could fetch no newer map, failed
// them all: the whole job was unavailable for the silent node's lease.
func TestHeldMapKeepsKeysThatStay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, j, silent, other := heldJob(t, ctx, 4*time.Second, Config{}, "held")
	var keys []string // the other member's
	for i := 0; len(keys) < 60; i++ {
		if k := fmt.Sprint("k", i); j.route([]byte(k), 0).addr == other {
			keys = append(keys, k)
			if err := j.Put(ctx, k, []byte("v1")); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, _ := growHeld(t, c, j, silent)

	start := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	served := map[string]bool{}
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			octx, ocancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer ocancel()
			v, err := j.Get(octx, k)
			if err == nil && string(v) == "v1" && j.Put(octx, k, []byte("v2")) == nil {
				mu.Lock()
				served[k] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	held := time.Since(start)
	if j.Map().Epoch != old {
		t.Fatalf("the client fetched epoch %d while the map was to be held back (epoch %d before)", j.Map().Epoch, old)
	}
	waitFor(t, 20*time.Second, "the grown map to be handed out", func() bool {
		return j.refresh(ctx) == nil && j.Map().Epoch > old
	})
	stay, moved := 0, 0
	for _, k := range keys {
		v, err := j.Get(ctx, k)
		switch {
		case j.route([]byte(k), 0).addr != other:
			moved++
			if served[k] {
				t.Errorf("key %s, moving to the joining node, was served by the map before while the map was held back", k)
			}
		case !served[k]:
			t.Errorf("key %s, its node's under both maps, was refused by the map before while the map was held back", k)
		default:
			stay++
			if err != nil || string(v) != "v2" {
				t.Errorf("get %s after the change: %q, %v; want v2, put while the map was held back", k, v, err)
			}
		}
	}
	t.Logf("while held (%v): %d of %d keys that stay served, %d moving refused", held.Round(time.Millisecond), stay, len(keys)-moved, moved)
	if stay == 0 || moved == 0 {
		t.Fatalf("%d keys stay and %d move: the test needs both", stay, moved)
	}
}

// TestRestartedOnlyNodeRefusesTheMapBefore: a job's only node restarts
// empty at its address; the controller loses it from the job and takes it
// back (its share Since the loss's epoch, and listed lost). A client still
// on the map before must learn of the loss: a get of its acknowledged value
// answers ErrLost, not "not found". A review found the first version of
// kept keys (controller/keep.go) telling the restarted node to take the
// map before's requests, as it was active in both maps: the get answered
// "not found", and the client never fetched the map that says lost.
func TestRestartedOnlyNodeRefusesTheMapBefore(t *testing.T) {
	c := newClusterWith(t, 1, controller.Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 500 * time.Millisecond, DeadNodeGrace: 3 * time.Second, Logger: quietLog})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "only", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "k", []byte("acknowledged")); err != nil {
		t.Fatal(err)
	}
	addr := c.nodes[0].node.Addr().String()
	c.nodes[0].stop()
	c.addNodeAt(addr)           // an empty process at the same address
	time.Sleep(2 * time.Second) // no client fetches the map meanwhile: the node syncs first
	for range 2 {
		if _, err := j.Get(ctx, "k"); !errors.Is(err, ErrLost) {
			t.Fatalf("get of a value lost with its node's restart, by a client of the map before: %v; want ErrLost", err)
		}
	}
}

// TestHeldMapLeavesNoChunks: while a grow's map is held back for a silent
// member, a client of the map before deletes, overwrites and consumes
// chunked objects whose manifests the other member keeps. None of their
// chunks may be left once the map is out. A review found the first
// version of kept keys taking those calls at the older epoch while every
// node that moved on refused the drop of the replaced version's chunks,
// which the SDK gave up on with the newer map held back: 24 chunks of 11
// deleted objects left for good. Now the node refuses such a call as
// stale, and the SDK runs it on the newer map.
func TestHeldMapLeavesNoChunks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const cs = 4 << 10
	c, j, silent, other := heldJob(t, ctx, 6*time.Second, Config{ChunkSize: cs}, "keepdrop")
	vers := map[string]uint64{}
	var keys []string
	for i := 0; len(keys) < 9; i++ {
		if k := fmt.Sprint("obj", i); j.route([]byte(k), 0).addr == other {
			keys = append(keys, k)
			if err := j.Put(ctx, k, randBytes(3*cs+10, uint64(i))); err != nil {
				t.Fatal(err)
			}
			info, err := c.nodeAt(other).tier.Stat([]byte(j.ID()), []byte(k))
			if err != nil {
				t.Fatal(err)
			}
			vers[k] = info.Version
		}
	}
	old, victim := growHeld(t, c, j, silent)
	var mu sync.Mutex
	done := map[string]bool{}
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch i % 3 {
			case 0:
				err = j.Delete(ctx, k)
			case 1:
				err = j.Put(ctx, k, []byte("small"))
			default:
				_, err = j.Get(ctx, k, DeleteAfterRead())
			}
			if err == nil {
				mu.Lock()
				done[k] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	waitFor(t, 30*time.Second, "the grown map to be handed out", func() bool {
		return j.refresh(ctx) == nil && j.Map().Epoch > old
	})
	time.Sleep(500 * time.Millisecond)
	left := 0
	for k := range done {
		left += chunksLeft(c, j, victim, k, vers[k])
	}
	t.Logf("%d of %d calls on chunked objects at kept keys done", len(done), len(keys))
	if left > 0 {
		t.Errorf("%d chunks of %d objects deleted or replaced by the map before are left on the job's live nodes", left, len(done))
	}
}

// TestStaleLiveOwnerLeavesNoDeadChunks: a client whose map is mid-change
// (the key moving from the silent node a to b) deletes a key whose old
// owner a holds a chunked version and whose live owner b holds a newer
// plain value. a deletes the chunked version; b, which has moved on to a
// grow held back for a, refuses the delete as stale (the key moves on to
// the joining node), and its stat too, so whether b holds the same version
// is unknown and its chunks are kept. The delete is sent again once the
// grown map is out (by the call, or by its caller when the call gave up
// waiting for the map) and deletes b's value. Before, the chunked
// version's chunks stayed until the job ended: that delete's answer named
// b's value only. Now they are dropped once a later delete through the
// Job has deleted the key (undropped.go).
func TestStaleLiveOwnerLeavesNoDeadChunks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const cs = 4 << 10
	c, j, a, b := heldJob(t, ctx, 6*time.Second, Config{ChunkSize: cs}, "stalelive")
	orig := j.Map()
	moving := orig
	moving.Joining = map[string]bool{b: true} // a key b owns is still at a
	vers := map[string]uint64{}
	for i := 0; len(vers) < 24; i++ {
		k := fmt.Sprint("obj", i)
		j.setMap(moving)
		if tg := j.route([]byte(k), 0); tg.addr != b || tg.old != a {
			continue
		}
		j.setMap(orig)
		if err := j.Put(ctx, k, randBytes(3*cs+10, uint64(i))); err != nil {
			t.Fatal(err)
		}
		info, err := c.nodeAt(b).tier.Stat([]byte(j.ID()), []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		vers[k] = info.Version
		copyManifest(t, j, b, a, k) // the older, chunked copy at the old owner
		if _, err := rawAt(t, j, b, wire.OpPut, 0, k, []byte("newer")); err != nil {
			t.Fatal(err) // the live owner's newer value, replacing nothing it drops
		}
	}
	old, victim := growHeld(t, c, j, a)
	var keys []string
	for k := range vers {
		if _, err := rawAt(t, j, b, wire.OpStat, 0, k, nil); errors.Is(err, wire.ErrStaleEpoch) {
			keys = append(keys, k) // moves on to the joining node: b refuses it
		}
	}
	if len(keys) == 0 {
		t.Fatal("no key moves on to the joining node")
	}
	// A handle per key, so that one call's fetch of the map (the
	// controller's, without the change) does not route another's first
	// attempt past the old owner.
	handles := map[string]*Job{}
	for _, k := range keys {
		h, err := c.store().OpenCredential(j.Credential())
		if err != nil {
			t.Fatal(err)
		}
		h.setMap(moving)
		handles[k] = h
	}
	var mu sync.Mutex
	var again []string
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := handles[k].Delete(ctx, k); err != nil {
				mu.Lock()
				again = append(again, k)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if holds(c.nodeAt(a).tier, j.ID(), []byte(k)) {
			t.Fatalf("%s: the delete did not remove the old owner's copy", k)
		}
	}
	waitFor(t, 30*time.Second, "the grown map to be handed out", func() bool {
		return j.refresh(ctx) == nil && j.Map().Epoch > old
	})
	for _, k := range again {
		if err := handles[k].Delete(ctx, k); err != nil {
			t.Fatalf("delete %s again on the grown map: %v", k, err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	left := 0
	for _, k := range keys {
		if _, err := j.Get(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after its delete: %v", k, err)
		}
		left += chunksLeft(c, j, victim, k, vers[k])
	}
	t.Logf("%d deletes refused by the live owner, %d of them done again by the caller", len(keys), len(again))
	if left > 0 {
		t.Errorf("%d chunks of %d deleted objects are left on the job's live nodes", left, len(keys))
	}
}

// chunksLeft counts the chunks 1 to 4 of key's version ver on c's nodes
// but skip.
func chunksLeft(c *testCluster, j *Job, skip *clusterNode, key string, ver uint64) (n int) {
	for _, nd := range c.nodes {
		for i := 1; nd != skip && i <= 4; i++ {
			if holds(nd.tier, j.ID(), wire.AppendChunkKey(nil, []byte(key), ver, i)) {
				n++
			}
		}
	}
	return n
}

// copyManifest puts the manifest key holds at from at to too, with its
// version, as a mover's copy would be.
func copyManifest(t *testing.T, j *Job, from, to, key string) {
	t.Helper()
	ctx := context.Background()
	tf := j.targetOf(from)
	req := wire.Request{Job: tf.job, Key: []byte(key), Token: tf.token, Epoch: tf.epoch}
	r, err := j.s.data.Do(ctx, from, wire.OpGet, tf.flags|wire.FlagVersion, &req, nil, nil)
	if err != nil || r.Flags&wire.FlagManifest == 0 {
		t.Fatalf("manifest at %s: %v (flags %x)", from, err, r.Flags)
	}
	m, err := wire.DecodeManifest(r.Payload)
	if err != nil {
		t.Fatal(err)
	}
	tt := j.targetOf(to)
	req = wire.Request{Job: tt.job, Key: []byte(key), Token: tt.token, Epoch: tt.epoch, Version: m.Version, ObjectSize: m.Size}
	if _, err := j.s.data.Do(ctx, to, wire.OpPut, tt.flags|wire.FlagManifest, &req, r.Payload, nil); err != nil {
		t.Fatal(err)
	}
}

// TestGivenUpPutIsNotSentLater: a put whose caller gives up while it waits
// for a newer map (held back for a silent member) is not sent once the
// map is out. Before, the SDK saw it through on a context of its own
// (settle, 10 s) and sent it then: the value read back was the given-up
// put's, which another client's acknowledged put could have preceded (a
// trial: an acknowledged 41 read back as the given-up 40).
func TestGivenUpPutIsNotSentLater(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, j, silent, other := heldJob(t, ctx, 3*time.Second, Config{}, "givenup")
	var keys []string
	for i := 0; len(keys) < 30; i++ {
		if k := fmt.Sprint("k", i); j.route([]byte(k), 0).addr == other {
			keys = append(keys, k)
			if err := j.Put(ctx, k, []byte("v1")); err != nil {
				t.Fatal(err)
			}
		}
	}
	old, _ := growHeld(t, c, j, silent)
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := map[string]bool{}
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer pcancel()
			if err := j.Put(pctx, k, []byte("given up")); err != nil {
				mu.Lock()
				refused[k] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	waitFor(t, 20*time.Second, "the grown map to be handed out", func() bool {
		return j.refresh(ctx) == nil && j.Map().Epoch > old
	})
	time.Sleep(time.Second)
	landed := 0
	for k := range refused {
		if v, err := j.Get(ctx, k); err == nil && string(v) == "given up" {
			landed++
		}
	}
	t.Logf("%d of %d puts given up (keys moving to the joining node); %d landed later", len(refused), len(keys), landed)
	if len(refused) == 0 {
		t.Fatal("no put was given up: the test needs keys that move")
	}
	if landed > 0 {
		t.Errorf("%d puts whose callers had given up before they were sent landed once the map was out", landed)
	}
}

// heldJob starts a cluster of three nodes (100 ms heartbeats, dead after
// 0.5 s, lost after grace more: a lease of 0.5 s plus grace), and registers
// a job of name over two of them through a client with cfg: silent, the
// one growHeld cuts off, and other.
func heldJob(t *testing.T, ctx context.Context, grace time.Duration, cfg Config, name string) (c *testCluster, j *Job, silent, other string) {
	t.Helper()
	c = newClusterWith(t, 3, controller.Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 500 * time.Millisecond, DeadNodeGrace: grace, Logger: quietLog})
	s, err := Dial(ctx, c.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	j, err = s.RegisterJob(ctx, name, Hints{Lambdas: 20})
	if err != nil || len(j.Map().Nodes) != 2 {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	return c, j, j.Map().Nodes[0].Addr, j.Map().Nodes[1].Addr
}

// growHeld cuts the node silent off from the controller (it serves on
// within its lease) and grows j onto the third node; a second later the
// other member has the grow's epoch and the map is held back for silent.
// It returns j's epoch before the grow, and silent's node.
func growHeld(t *testing.T, c *testCluster, j *Job, silent string) (uint64, *clusterNode) {
	t.Helper()
	victim := c.nodeAt(silent)
	victim.cancel()
	<-victim.done
	old := j.Map().Epoch
	if err := c.ctl.GrowJob(j.ID(), outside(c.ctl, j.ID())); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	return old, victim
}
