package pocket

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestStaleClientRefusedByDepartedNode: a client still routing by a map
// from before a node left the job's map must not have its puts land on
// that node, where no reader with the current map looks, even after the
// node restarted empty at its address and so learned the job from a
// snapshot of the controller's table. The controller now sends every node
// every job's epoch, marking those out of the map, which refuse the old
// epoch (the client then fetches the map and puts at the owner). Before,
// such a node had epoch 0 for the job, took every epoch, and acknowledged
// puts that readers never found.
func TestStaleClientRefusedByDepartedNode(t *testing.T) {
	c, j, ctx := twoNodeJob(t, "left")
	stale := openJob(t, c.addr, j)
	leaving := j.Map().Nodes[0].Addr
	if err := c.ctl.ShrinkJob(j.ID(), leaving); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(20*time.Second, func() bool { return settled(c.ctl, j.ID(), 1) }) {
		t.Fatalf("the shrink did not end: %+v", jobNodes(c.ctl, j.ID()))
	}
	// The node that left restarts empty at its address.
	c.nodeAt(leaving).stop()
	back := c.addNodeAt(leaving)
	c.awaitActive(2)

	var keys []string
	for i := 0; len(keys) < 20; i++ {
		if k := fmt.Sprint("k", i); stale.route([]byte(k), 0).addr == leaving {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if err := stale.Put(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatalf("put %s by a client with the map from before the shrink: %v", k, err)
		}
	}
	reader := openJob(t, c.addr, j) // the current map
	for _, k := range keys {
		if got, err := reader.Get(ctx, k); err != nil || string(got) != "v-"+k {
			t.Fatalf("%s, put by a client routing by the map from before %s left: %q, %v (the put landed outside the map)", k, leaving, got, err)
		}
	}
	if used := back.tier.Usage().Used; used != 0 {
		t.Fatalf("the node out of the job's map stored %d bytes of it", used)
	}
}

// openJob opens j in a store of its own, with the map the controller
// hands out now.
func openJob(t *testing.T, addr string, j *Job) *Job {
	t.Helper()
	s, err := Dial(context.Background(), addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	o, err := s.OpenJob(context.Background(), j.ID(), j.Token())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestRestartedNodeOfTheMapServesOnceSynced: a node of a job's current map
// restarts at its address and reaches its controller 300 ms after it
// listens; until its table arrives it refuses the job (its epoch 0, older
// than the request's). The SDK sends the same map again after a pause
// (the node is behind, not the map) and the puts succeed. Before, it
// waited for a newer map, which never came, and every put that met the
// node failed after 5 s (a hostile review: 8 of 8).
func TestRestartedNodeOfTheMapServesOnceSynced(t *testing.T) {
	c, j, ctx := twoNodeJob(t, "restart")
	victim := j.Map().Nodes[0].Addr
	var keys []string
	for i := 0; len(keys) < 8; i++ {
		if k := fmt.Sprint("k", i); j.route([]byte(k), 0).addr == victim {
			keys = append(keys, k)
		}
	}
	c.nodeAt(victim).stop()
	c.addNodeLate(victim, 300*time.Millisecond)
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := j.Put(ctx, k, []byte("v-"+k)); err != nil {
				t.Errorf("put %s to the restarted node of the current map: %v", k, err)
			}
		}()
	}
	wg.Wait()
}

// TestRestartedNodeKeysReadLost: a node of a job's map killed and
// restarted at once at its address (within DeadAfter: the controller
// never saw it dead) comes back empty; its keys read as lost ("recompute
// it"), the others as written, and new puts of its keys land elsewhere.
// Before, the node kept its place and its keys read "not found" (a new
// user's kill -9: 12 of 40 keys).
func TestRestartedNodeKeysReadLost(t *testing.T) {
	c, j, ctx := twoNodeJob(t, "restarted")
	victim := j.Map().Nodes[0].Addr
	owner := map[string]string{}
	for i := range 40 {
		k := fmt.Sprint("k", i)
		owner[k] = j.route([]byte(k), 0).addr
		if err := j.Put(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	c.nodeAt(victim).stop()
	c.addNodeAt(victim)
	c.awaitLost(j, victim)
	// Read through a new store, as another function would: this one's
	// pool still holds connections to the old process, and a request on
	// one answers "unavailable" once (TestClusterLostNode).
	j = openJob(t, c.addr, j)
	for k, at := range owner {
		got, err := j.Get(ctx, k)
		switch {
		case at == victim && !errors.Is(err, ErrLost):
			t.Errorf("%s, held by the restarted node: %q, %v; want lost", k, got, err)
		case at != victim && (err != nil || string(got) != "v-"+k):
			t.Errorf("%s: %q, %v", k, got, err)
		}
	}
	if err := j.Put(ctx, "k0", []byte("again")); err != nil {
		t.Fatal(err)
	}
}

// TestNodesBehindOnlyWhenAllAre: a fan-out's refusals call for the same
// map again only when every one is a node behind it; one node unavailable
// or ahead among them calls for a newer map (a hostile review: a behind
// node beside a stopped one made the fan-out resend the same map and fail
// instead of waiting for the map without the stopped node).
func TestNodesBehindOnlyWhenAllAre(t *testing.T) {
	behind := &wire.Error{Code: wire.CodeStaleEpoch, Epoch: 0}
	ahead := &wire.Error{Code: wire.CodeStaleEpoch, Epoch: 9}
	gone := &wire.Error{Code: wire.CodeUnavailable, Msg: "node x: connection refused"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{behind, true},
		{fmt.Errorf("list: %w", behind), true},
		{errors.Join(behind, behind), true},
		{errors.Join(behind, gone), false},
		{errors.Join(gone, behind), false},
		{errors.Join(behind, ahead), false},
		{ahead, false},
		{gone, false},
	} {
		if got := nodesBehind(tc.err, 5); got != tc.want {
			t.Errorf("nodesBehind(%v, 5) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// twoNodeJob starts a cluster of two nodes (a dead node is lost after a
// minute) and registers a job on both, for the test (at most a minute: the
// context returned ends then).
func twoNodeJob(t *testing.T, name string) (*testCluster, *Job, context.Context) {
	t.Helper()
	c := newGraceCluster(t, 2, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	j, err := s.RegisterJob(ctx, name, Hints{Lambdas: 20})
	if err != nil || len(j.Map().Nodes) != 2 {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	return c, j, ctx
}
