package pocket

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// Tests of undropped versions (undropped.go), from a review of its first
// version.

// TestUndroppedVersionLiveAtTheOldOwnerStays: a version held by undropped
// (its delete removed it at the old owner A; the live owner B, holding a
// mover's copy of the same version, failed the delete and its stat said
// it holds it) is B's live value. The map then moves the key on from B to
// C (B is now the old owner). A delete by another version X (the delete
// of a delete-after-read whose version was replaced meanwhile) answers
// "not found" (B: conflict, C: not found). The first version of undropped
// took that answer for "the key is deleted" and dropped the chunks of the
// version B still serves: the key read corrupt.
func TestUndroppedVersionLiveAtTheOldOwnerStays(t *testing.T) {
	const cs = 4 << 10
	ctx := context.Background()
	ns := dropMoveCluster(t, 3)
	a, b, c := ns[0], ns[1], ns[2]
	pick := func(addrs []string, k string) string {
		var nodes []Node
		for _, ad := range addrs {
			nodes = append(nodes, Node{Addr: ad, Weight: 1})
		}
		s := placement.NewSet(placementNodes(nodes))
		return s.Node(s.Pick([]byte(k), 0)).ID
	}
	key := ""
	for i := 0; key == ""; i++ {
		k := fmt.Sprint("obj", i)
		if pick([]string{a.addr, b.addr}, k) == b.addr && pick([]string{b.addr, c.addr}, k) == c.addr {
			key = k
		}
	}
	// V: manifest and every chunk at B (a map of B alone).
	j := staticJob(t, Config{ChunkSize: cs}, []string{b.addr})
	val := randBytes(3*cs+10, 7)
	if err := j.Put(ctx, key, val); err != nil {
		t.Fatal(err)
	}
	info, err := b.faulty.Stat([]byte(j.ID()), []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	V := info.Version
	base := j.Map()

	// M1: the key moves from A to B (B joining); A holds the same version
	// V (a mover's copy put at B, not yet deleted at home).
	m1 := base
	m1.Epoch, m1.Nodes, m1.Joining = 1, []Node{{Addr: a.addr, Weight: 1}, {Addr: b.addr, Weight: 1}}, map[string]bool{b.addr: true}
	j.setMap(m1)
	copyManifest(t, j, b.addr, a.addr, key)
	if r := j.route([]byte(key), 0); r.old != a.addr || r.addr != b.addr {
		t.Fatalf("route %+v", r)
	}
	// B fails the delete (any failure: refused, a lost reply...); its stat says V.
	b.faulty.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
		if op == dataplane.FaultDelete && string(k) == key {
			return errors.New("injected: delete refused")
		}
		return nil
	})
	if err := j.Delete(ctx, key); err == nil {
		t.Fatal("delete succeeded")
	}
	b.faulty.SetHook(nil)
	t.Logf("held after the failed delete: %v (V=%x)", j.undropped.keys[key], V)
	if in, err := b.faulty.Stat([]byte(j.ID()), []byte(key)); err != nil || in.Version != V {
		t.Fatalf("B after the failed delete: %v", err)
	}

	// M2: the key moves on from B to C (C joining): B is its old owner.
	m2 := base
	m2.Epoch, m2.Nodes, m2.Joining = 2, []Node{{Addr: b.addr, Weight: 1}, {Addr: c.addr, Weight: 1}}, map[string]bool{c.addr: true}
	j.setMap(m2)
	if r := j.route([]byte(key), 0); r.old != b.addr || r.addr != c.addr {
		t.Fatalf("route %+v", r)
	}
	if got, err := j.Get(ctx, key); err != nil || string(got) != string(val) {
		t.Fatalf("the key on M2: %v", err)
	}
	// A delete-after-read's delete of an older version X (another version
	// than the one the key holds: Get(DeleteAfterRead) retries on it).
	err = j.deleteVersion(ctx, key, V^1)
	t.Logf("delete by version X: %v", err)
	if got, err := j.Get(ctx, key); err != nil || string(got) != string(val) {
		t.Errorf("the key's value after a delete of another version: %d bytes, %v", len(got), err)
	}
}

// TestUndroppedVersionGoesWhenTheKeyIsConsumed: old owner A holds a
// chunked V, live owner B a newer plain value; B fails the delete and the
// stat, so V is held. The key is then consumed by Get(DeleteAfterRead)
// instead of deleted again. The first version of undropped settled held
// versions on deletes only: V's chunks stayed until the job ended.
func TestUndroppedVersionGoesWhenTheKeyIsConsumed(t *testing.T) {
	ctx := context.Background()
	j, a, b, key := heldAt(t, "")
	t.Logf("held: %v", j.undropped.keys[key])
	got, err := j.Get(ctx, key, DeleteAfterRead())
	if err != nil || string(got) != "newer" {
		t.Fatalf("consume: %q %v", got, err)
	}
	n, k := chunkBytes([]*dataplane.Faulty{a.faulty, b.faulty}, j.ID())
	t.Logf("after the key was consumed: %d chunks (%d bytes) of its dead version left; held %v", k, n, j.undropped.keys[key])
	if k > 0 {
		t.Errorf("%d chunks of a dead version left after the key was consumed", k)
	}
}

// heldAt builds the state of TestUndroppedVersionGoesWhenTheKeyIsConsumed
// for a key under prefix: old owner a holds a chunked V, live owner b a
// newer plain value; b fails the delete and the stat, so V is held.
func heldAt(t *testing.T, prefix string) (*Job, *dropMoveNode, *dropMoveNode, string) {
	const cs = 4 << 10
	ctx := context.Background()
	ns := dropMoveCluster(t, 2)
	a, b := ns[0], ns[1]
	nodes := []Node{{Addr: a.addr, Weight: 1}, {Addr: b.addr, Weight: 1}}
	s := placement.NewSet(placementNodes(nodes))
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprint(prefix, "obj", i); s.Node(s.Pick([]byte(k), 0)).ID == b.addr {
			key = k
		}
	}
	j := staticJob(t, Config{ChunkSize: cs}, []string{b.addr})
	if err := j.Put(ctx, key, randBytes(3*cs+10, 7)); err != nil {
		t.Fatal(err)
	}
	m1 := j.Map()
	m1.Epoch, m1.Nodes, m1.Joining = 1, nodes, map[string]bool{b.addr: true}
	j.setMap(m1)
	copyManifest(t, j, b.addr, a.addr, key)
	if _, err := rawAt(t, j, b.addr, wire.OpPut, 0, key, []byte("newer")); err != nil {
		t.Fatal(err)
	}
	b.faulty.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
		if (op == dataplane.FaultDelete || op == dataplane.FaultStat) && string(k) == key {
			return errors.New("injected: refused")
		}
		return nil
	})
	if err := j.Delete(ctx, key); err == nil {
		t.Fatal("delete succeeded")
	}
	b.faulty.SetHook(nil)
	if j.undropped.n.Load() != 1 {
		t.Fatalf("nothing held")
	}
	return j, a, b, key
}

// TestUndroppedVersionGoesWithItsDirectory: the key is then removed by
// RemoveAll of its directory (a prefix delete, which skips chunk keys).
// A review found the first version of settling leaving prefix deletes
// out: V's chunks stayed until the job ended.
func TestUndroppedVersionGoesWithItsDirectory(t *testing.T) {
	ctx := context.Background()
	j, a, b, key := heldAt(t, "d/")
	if err := j.RemoveAll(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Get(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after RemoveAll: %v", err)
	}
	n, k := chunkBytes([]*dataplane.Faulty{a.faulty, b.faulty}, j.ID())
	t.Logf("after RemoveAll: %d chunks (%d bytes) of the dead version, %d keys still held", k, n, j.undropped.n.Load())
	if k > 0 {
		t.Errorf("%d chunks of a dead version left after its directory was removed", k)
	}
}

// TestUndroppedSettleKeepsTheCallersDeadline: with V held and the old
// owner answering its stat busy (moving, or its tier making room), a put
// of the key with a 200 ms context held the key's fence for 10 s (the
// settle waited busy out on a context of its own), and every later call
// of the key paid the wait again (a review: a delete took 19.5 s). Now
// the settle runs within the caller's context and takes busy for "not
// known".
func TestUndroppedSettleKeepsTheCallersDeadline(t *testing.T) {
	j, a, _, key := heldAt(t, "")
	a.faulty.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
		if op == dataplane.FaultStat && string(k) == key {
			return &wire.Error{Code: wire.CodeBusy, Msg: "injected busy"}
		}
		return nil
	})
	defer a.faulty.SetHook(nil)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := j.Put(ctx, key, []byte("x"))
	cancel()
	t.Logf("put: %v after %v", err, time.Since(start).Round(time.Millisecond))
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	err = j.Delete(ctx, key)
	cancel()
	t.Logf("next delete (200 ms context): %v after %v", err, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	err = j.Delete(context.Background(), key)
	t.Logf("delete without deadline: %v, took %v", err, time.Since(start).Round(time.Millisecond))
	if time.Since(start) > 5*time.Second {
		t.Errorf("a delete of the key took %v inside settle", time.Since(start))
	}
}
