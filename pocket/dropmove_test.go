package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestDropSpansMapChange: requests that must reach every chunk of a
// version or every value under a prefix (a drop of a replaced version:
// drainingFirst; a prefix delete: deletePrefix) go to the job's nodes in
// the order values move, taken from the map they start with. Here the map
// changes while they run, the other way round: node C joins the job's map
// (so A and B are asked first, then C), and once A has been asked, C is
// taken out again and its mover puts its chunk of the version (its value
// under the prefix) at A, after A's mark of the version as dropped has run
// out (one chunk lease). A drop that went on to ask only C left the chunk
// at A until the job ended: the leak TestHistoryGrowShrink found (1 run in
// about 25; traced to a drop that started at the grow's epoch, met a stale
// epoch, and asked the node that had joined only at the shrink's epoch,
// after it had moved its chunks to a node asked 265 ms before, beyond its
// 200 ms lease). A prefix delete likewise left the moved value readable
// after RemoveAll returned. Both fail on the old code. Static nodes, the
// map set by hand and the mover run by the test: deterministic.
func TestDropSpansMapChange(t *testing.T) {
	t.Run("drop version", testDropSpansMapChange)
	t.Run("prefix delete", testPrefixDeleteSpansMapChange)
}

func testDropSpansMapChange(t *testing.T) {
	const cs = 16 << 10
	mc := newMapChange(t, cs)
	a, b, c, j := mc.ns[0], mc.ns[1], mc.ns[2], mc.j
	ctx := context.Background()
	// A version whose chunks 1, 2, 3 are at A, B, C while C joins, and
	// whose chunk 3 goes to A once C leaves.
	key := "obj"
	chunkOwner := func(set *placement.Set, ver uint64, i int) string {
		return set.Node(set.Pick(wire.AppendChunkKey(nil, []byte(key), ver, i), uint32(i))).ID
	}
	w := j.newObject(key, 0)
	for w.ver = 1; chunkOwner(mc.all, w.ver, 1) != a.addr || chunkOwner(mc.all, w.ver, 2) != b.addr ||
		chunkOwner(mc.all, w.ver, 3) != c.addr || chunkOwner(mc.ab, w.ver, 3) != a.addr; w.ver++ {
	}
	val := randBytes(3*cs, 1)
	for i := 1; i <= 3; i++ {
		if err := w.putChunk(ctx, i, val[(i-1)*cs:i*cs]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.commit(ctx, wire.Manifest{Version: w.ver, Size: 3 * cs, Chunk: cs, Count: 3}); err != nil {
		t.Fatal(err)
	}
	chunk := func(i int) []byte { return wire.AppendChunkKey(nil, []byte(key), w.ver, i) }
	mc.changeAt(b, chunk(2), chunk(1))
	if err := j.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	mc.check(string(chunk(3)))
}

func testPrefixDeleteSpansMapChange(t *testing.T) {
	mc := newMapChange(t, 16<<10)
	a, b, c, j := mc.ns[0], mc.ns[1], mc.ns[2], mc.j
	ctx := context.Background()
	// Values at A, B and C while C joins; C's goes to A once C leaves.
	owner := func(set *placement.Set, key string) string { return set.Node(set.Pick([]byte(key), 0)).ID }
	var keys [3]string
	for i := 0; keys[0] == "" || keys[1] == "" || keys[2] == ""; i++ {
		k := fmt.Sprintf("dir/%d", i)
		switch o := owner(mc.all, k); {
		case o == a.addr:
			keys[0] = k
		case o == b.addr:
			keys[1] = k
		case o == c.addr && owner(mc.ab, k) == a.addr:
			keys[2] = k
		}
	}
	for i, k := range keys {
		if err := j.Put(ctx, k, randBytes(100, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	mc.changeAt(b, []byte(keys[1]), []byte(keys[0]))
	if err := j.RemoveAll(ctx, "dir"); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Get(ctx, keys[2]); !errors.Is(err, ErrNotFound) {
		t.Errorf("get %s after RemoveAll: %d bytes, %v; want not found", keys[2], len(got), err)
	}
	mc.check(keys[2])
}

// mapChange is three static nodes A, B, C and a job on them whose map
// (set by hand) has C joining; m2 is the same map with C leaving.
type mapChange struct {
	t       *testing.T
	ns      []*dropMoveNode
	j       *Job
	m2      Map
	all, ab *placement.Set
	moved   chan error
}

func newMapChange(t *testing.T, chunk int64) *mapChange {
	ns := dropMoveCluster(t, 3)
	j := staticJob(t, Config{ChunkSize: chunk}, []string{ns[0].addr, ns[1].addr, ns[2].addr})
	m1 := j.Map()
	m1.Epoch, m1.Joining = 1, map[string]bool{ns[2].addr: true}
	j.setMap(m1)
	m2 := m1
	m2.Epoch, m2.Joining, m2.Draining = 2, nil, map[string]bool{ns[2].addr: true}
	return &mapChange{t: t, ns: ns, j: j, m2: m2, all: placement.NewSet(placementNodes(m1.Nodes)),
		ab: placement.NewSet(placementNodes(m1.Nodes[:2])), moved: make(chan error, 1)}
}

// changeAt arranges the change: when node at deletes key (A is asked at
// the same time), the map becomes m2 and C's mover runs, once A no longer
// holds gone and A's mark of what it dropped has run out; at waits
// meanwhile, so that C is asked only after.
func (mc *mapChange) changeAt(at *dropMoveNode, key, gone []byte) {
	for _, n := range mc.ns {
		n.node.SetChunkLease(20 * time.Millisecond) // drop marks run out quickly
	}
	var once sync.Once
	at.faulty.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
		if op == dataplane.FaultDelete && string(k) == string(key) {
			once.Do(func() { mc.moved <- mc.ns[2].moveAway(mc.j, mc.m2, mc.ns[0], gone) })
		}
		return nil
	})
}

// check fails unless the change ran and no node holds a value of the
// job; left is the key expected to be left behind by the bug.
func (mc *mapChange) check(left string) {
	t := mc.t
	t.Helper()
	select {
	case err := <-mc.moved:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("the request did not reach B: the test did not run its map change")
	}
	for i, n := range mc.ns {
		if u := n.faulty.Usage(); u.Values != 0 {
			t.Errorf("node %d holds %d values (%d bytes) after the delete (%q, moved there: %v)",
				i, u.Values, u.Used, left, holds(n.faulty, mc.j.ID(), []byte(left)))
		}
	}
}

// holds reports whether tier holds key of job.
func holds(tier dataplane.Tier, job string, key []byte) bool {
	_, err := tier.Stat([]byte(job), key)
	return err == nil
}

// dropMoveNode is a static node over a Faulty DRAM tier, with one event
// loop per node.
type dropMoveNode struct {
	addr   string
	node   *dataplane.Node
	faulty *dataplane.Faulty
}

func dropMoveCluster(t *testing.T, n int) []*dropMoveNode {
	t.Helper()
	var ns []*dropMoveNode
	for i := 0; i < n; i++ {
		d, err := dataplane.NewDRAM(4<<20, dataplane.DRAMOptions{PageSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		f := dataplane.NewFaulty(d)
		nd, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: f, Net: netio.Config{Loops: 1}})
		if err != nil {
			t.Fatal(err)
		}
		nd.SetChunkLease(histLease)
		t.Cleanup(func() {
			nd.Close()
			d.Close()
		})
		ns = append(ns, &dropMoveNode{addr: nd.Addr().String(), node: nd, faulty: f})
	}
	return ns
}

// moveAway waits until to no longer holds gone (its drop has run), sets
// j's map to m (this node draining), waits out to's dropped mark (25 of
// its chunk leases), then moves this node's values of the job to their
// owners under m, as the agent's mover does, and checks that one moved.
func (n *dropMoveNode) moveAway(j *Job, m Map, to *dropMoveNode, gone []byte) error {
	job := []byte(j.ID())
	if !waitUntil(5*time.Second, func() bool { return !holds(to.faulty, j.ID(), gone) }) {
		return errors.New("the drop did not reach the first node")
	}
	j.setMap(m)
	time.Sleep(25 * to.node.ChunkLease())
	var owners []placement.Node
	for _, o := range m.Nodes {
		if !m.Draining[o.Addr] {
			owners = append(owners, placement.Node{ID: o.Addr, Weight: o.Weight})
		}
	}
	cl := client.New(client.Options{})
	defer cl.Close()
	st, err := n.node.Migrate(context.Background(), dataplane.MigrateJob{Job: string(job), Epoch: m.Epoch, Nodes: owners}, cl, 1)
	if err != nil {
		return err
	}
	if st.Moved != 1 {
		return fmt.Errorf("the mover moved %d values, want 1 (%+v)", st.Moved, st)
	}
	return nil
}

// TestManifestPutAgainKeepsItsChunks: a manifest put can reach its node
// twice (doReq sends it again after a lost connection once the map has
// changed, and the first may have been stored). The second then replaces
// the put's own manifest, and the node names that version as the one
// replaced: the writer must not drop its own chunks. Before, it did, and
// the value it had just published read as corrupt.
func TestManifestPutAgainKeepsItsChunks(t *testing.T) {
	const cs = 16 << 10
	addrs, tiers := histCluster(t, 3, 4<<20, histLease)
	j := staticJob(t, Config{ChunkSize: cs}, addrs)
	ctx := context.Background()
	val := randBytes(3*cs+100, 1)
	w := j.newObject("obj", 0)
	for i := 1; i <= 4; i++ {
		if err := w.putChunk(ctx, i, val[(i-1)*cs:min(i*cs, len(val))]); err != nil {
			t.Fatal(err)
		}
	}
	m := wire.Manifest{Version: w.ver, Size: int64(len(val)), Chunk: cs, Count: 4}
	for try := 0; try < 2; try++ {
		if err := w.commit(ctx, m); err != nil {
			t.Fatalf("commit %d: %v", try+1, err)
		}
	}
	got, err := j.Get(ctx, "obj")
	if err != nil || !bytes.Equal(got, val) {
		t.Fatalf("get after the manifest was put twice: %d bytes (equal: %v), %v", len(got), bytes.Equal(got, val), err)
	}
	if err := j.Delete(ctx, "obj"); err != nil {
		t.Fatal(err)
	}
	for i, tier := range tiers {
		if u := tier.Usage(); u.Values != 0 {
			t.Errorf("node %d holds %d values (%d bytes) after the delete", i, u.Values, u.Used)
		}
	}
}
