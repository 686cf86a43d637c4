package pocket

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
)

// TestListingSpansMapChange: a listing asks the job's nodes in the order
// values move (movePhases), taken from the map it starts with, as a drop
// and a prefix delete do (TestDropSpansMapChange). Here node C joins the
// job's map, so A and B are listed first and C last; just before C lists,
// C is taken out of the map again and its mover puts its value at its
// owner without C, A or B, both listed already. A listing that completes
// names every key that existed throughout, once: the old one missed the
// moved key (List: two of three names; CountFiles: 2). Static nodes, the
// map set by hand and the mover run by the test: deterministic.
func TestListingSpansMapChange(t *testing.T) {
	t.Run("list", func(t *testing.T) {
		keys, j := listMapChange(t)
		ents, err := j.List(context.Background(), "dir/")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name)
		}
		if !slices.Equal(got, keys[:]) {
			t.Errorf("List during the map change: %q, want %q", got, keys)
		}
	})
	t.Run("count files", func(t *testing.T) {
		_, j := listMapChange(t)
		n, err := j.CountFiles(context.Background(), "dir")
		if err != nil || n != 3 {
			t.Errorf("CountFiles during the map change: %d, %v; want 3", n, err)
		}
	})
}

// listMapChange puts three values under dir/, at A, B and C while C joins
// the map, and arranges that C's first listing of the job first sets the
// map with C leaving and moves C's values away (to A or B). It returns the
// keys, sorted.
func listMapChange(t *testing.T) ([3]string, *Job) {
	mc := newMapChange(t, 16<<10)
	a, b, c, j := mc.ns[0], mc.ns[1], mc.ns[2], mc.j
	owner := func(set *placement.Set, key string) string { return set.Node(set.Pick([]byte(key), 0)).ID }
	var keys [3]string
	for i := 0; keys[0] == "" || keys[1] == "" || keys[2] == ""; i++ {
		k := fmt.Sprintf("dir/%03d", i)
		switch o := owner(mc.all, k); {
		case o == a.addr && keys[0] == "":
			keys[0] = k
		case o == b.addr && keys[1] == "":
			keys[1] = k
		case o == c.addr && keys[2] == "":
			keys[2] = k
		}
	}
	slices.Sort(keys[:])
	for i, k := range keys {
		if err := j.Put(context.Background(), k, randBytes(100, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	var fired atomic.Bool
	moved := make(chan error, 1)
	c.faulty.SetHook(func(op dataplane.FaultOp, job, _ []byte) error {
		if op == dataplane.FaultList && string(job) == j.ID() && fired.CompareAndSwap(false, true) {
			j.setMap(mc.m2)
			moved <- c.migrateOff(j, mc.m2, 1)
		}
		return nil
	})
	t.Cleanup(func() {
		select {
		case err := <-moved:
			if err != nil {
				t.Error(err)
			}
		default:
			t.Error("the listing did not reach C: the test did not run its map change")
		}
	})
	return keys, j
}

// migrateOff moves this node's values of j to their owners under m (its
// nodes but the draining ones), as the agent's mover does, and checks
// that want of them moved.
func (n *dropMoveNode) migrateOff(j *Job, m Map, want int64) error {
	var owners []placement.Node
	for _, o := range m.Nodes {
		if !m.Draining[o.Addr] {
			owners = append(owners, placement.Node{ID: o.Addr, Weight: o.Weight})
		}
	}
	cl := client.New(client.Options{})
	defer cl.Close()
	st, err := n.node.Migrate(context.Background(), dataplane.MigrateJob{Job: j.ID(), Epoch: m.Epoch, Nodes: owners}, cl, 1)
	if err != nil {
		return err
	}
	if st.Moved != want {
		return fmt.Errorf("the mover moved %d values, want %d (%+v)", st.Moved, want, st)
	}
	return nil
}
