package pocket

import (
	"context"
	"fmt"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
)

// TestDeleteAtBothOwnersDropsChunks: while a key's owner changes (a node
// joins the job's map, or drains from it), the old owner may still hold a
// chunked object under the key when a client has already written another
// value at the new owner. A delete (and a delete of one version, as a
// delete-after-read makes) removes the object at the old owner: its chunks
// must go too, though the reply the caller sees names the new owner's
// value. Before deleteBoth the chunks stayed until the job ended (the leak
// TestHistoryGrowShrink and TestHistoryDrain found).
func TestDeleteAtBothOwnersDropsChunks(t *testing.T) {
	for _, change := range []string{"joining", "draining"} {
		for _, del := range []string{"delete", "delete version"} {
			t.Run(change+"/"+del, func(t *testing.T) { testDeleteAtBothOwners(t, change, del) })
		}
	}
}

func testDeleteAtBothOwners(t *testing.T, change, del string) {
	const cs = 16 << 10
	mk := newOwnerChange(t, change == "joining", cs)
	j, key, ctx := mk.j, mk.key, context.Background()
	if err := j.Put(ctx, key, randBytes(3*cs+100, 1)); err != nil {
		t.Fatal(err)
	}
	ver := objectVersion(t, mk.tiers, j.ID(), key)
	mk.change()
	// Written after the change: at the key's new owner.
	if err := j.Put(ctx, key, []byte("newer, small")); err != nil {
		t.Fatal(err)
	}
	if del == "delete version" {
		j.deleteVersion(ctx, key, ver)
		if got, err := j.Get(ctx, key); err != nil || string(got) != "newer, small" {
			t.Fatalf("after deleting version %016x: get %q, %v; want the newer value", ver, got, err)
		}
	}
	if err := j.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	for i, tier := range mk.tiers {
		if u := tier.Usage(); u.Values != 0 {
			t.Errorf("node %d holds %d values (%d bytes) after the delete", i, u.Values, u.Used)
		}
	}
}

// objectVersion is the version of the manifest stored under key on one of
// tiers.
func objectVersion(t *testing.T, tiers []dataplane.Tier, job, key string) uint64 {
	t.Helper()
	for _, tier := range tiers {
		if info, err := tier.Stat([]byte(job), []byte(key)); err == nil && info.Version != 0 {
			return info.Version
		}
	}
	t.Fatalf("no manifest of %s on any node", key)
	return 0
}

// ownerChange is a static three-node cluster, a job on it whose map the
// test changes by hand, and a key whose owner is the third node with it in
// the map: its value moves when that node joins the map (join: the job
// starts on the other two) or drains from it (else: on all three).
type ownerChange struct {
	addrs []string
	tiers []dataplane.Tier
	j     *Job
	key   string
	join  bool
}

func newOwnerChange(t *testing.T, join bool, chunk int64) *ownerChange {
	t.Helper()
	addrs, tiers := histCluster(t, 3, 4<<20, histLease)
	before := addrs
	if join {
		before = addrs[:2]
	}
	mk := &ownerChange{addrs: addrs, tiers: tiers, j: staticJob(t, Config{ChunkSize: chunk}, before), join: join}
	whole := placement.NewSet(placementNodes([]Node{{Addr: addrs[0], Weight: 1}, {Addr: addrs[1], Weight: 1}, {Addr: addrs[2], Weight: 1}}))
	for i := 0; mk.key == ""; i++ {
		if k := fmt.Sprintf("obj-%d", i); whole.Node(whole.Pick([]byte(k), 0)).ID == addrs[2] {
			mk.key = k
		}
	}
	return mk
}

// overwriteInChange runs f for a join and a drain, each with a one-record
// value and a chunked object (chunks of cs bytes): v1 put before the
// change, then the map put in the middle of it (change), then v2 put over
// v1 during it, to the key's new owner.
func overwriteInChange(t *testing.T, cs int64, f func(t *testing.T, mk *ownerChange, v1, v2 []byte)) {
	for _, change := range []string{"join", "drain"} {
		for _, size := range []int{100, int(3*cs + 100)} {
			t.Run(fmt.Sprintf("%s/%d", change, size), func(t *testing.T) {
				mk := newOwnerChange(t, change == "join", cs)
				j, key, ctx := mk.j, mk.key, context.Background()
				v1, v2 := randBytes(size, 1), randBytes(size, 2)
				if err := j.Put(ctx, key, v1); err != nil {
					t.Fatal(err)
				}
				mk.change()
				if r := j.route([]byte(key), 0); r.old == "" {
					t.Fatalf("key %q: its owner does not change", key)
				}
				if err := j.Put(ctx, key, v2); err != nil {
					t.Fatal(err)
				}
				f(t, mk, v1, v2)
			})
		}
	}
}

// change puts the job's map in the middle of the change: all three nodes,
// the third joining or draining.
func (mk *ownerChange) change() {
	m := mk.j.Map()
	m.Nodes = []Node{{Addr: mk.addrs[0], Weight: 1}, {Addr: mk.addrs[1], Weight: 1}, {Addr: mk.addrs[2], Weight: 1}}
	if mk.join {
		m.Joining = map[string]bool{mk.addrs[2]: true}
	} else {
		m.Draining = map[string]bool{mk.addrs[2]: true}
	}
	mk.j.setMap(m)
}
