package pocket

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
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
	c := newGraceCluster(t, 2, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "left", Hints{Lambdas: 20})
	if err != nil || len(j.Map().Nodes) != 2 {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	stale := openJob(t, c.addr, j)
	leaving := j.Map().Nodes[0].Addr
	if err := c.ctl.ShrinkJob(j.ID(), leaving); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(20*time.Second, func() bool { return settled(c.ctl, j.ID(), 1) }) {
		t.Fatalf("the shrink did not end: %+v", jobNodes(c.ctl, j.ID()))
	}
	// The node that left restarts empty at its address.
	c.nodes[slices.IndexFunc(c.nodes, func(n *clusterNode) bool { return n.node.Addr().String() == leaving })].stop()
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
