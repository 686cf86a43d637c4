package pocket

import (
	"context"
	"slices"
	"testing"
)

// TestDeregisteredHandleTriesASuspectNode: the node a deregistration names
// dead is suspect to the deregistering handle, not dead. A node whose
// agent stopped heartbeating serves on: the handle reads a persisted value
// on it, finds no node gone, and, the node having answered, its credential
// no longer marks it dead. Before, the handle marked the node dead and the
// read answered ErrLost ("recompute it").
//
// The node's agent stops before the job registers, so the node's table
// never lists the job and takes the job's requests at any map epoch. Had
// it listed the job (at epoch 1), it could not serve the map that marking
// it dead bumped to epoch 2, which it never hears of: the test stopped the
// agent after the job's puts, and on a loaded machine (3 runs in 30) a
// heartbeat had listed the job by then and the read failed as "behind".
func TestDeregisteredHandleTriesASuspectNode(t *testing.T) {
	var x string
	r := newDeregRig(t, "suspect", func(c *testCluster) {
		cn := c.nodes[0]
		x = cn.node.Addr().String()
		cn.cancel()
		<-cn.done
	})
	ctx := context.Background()
	r.takeForDead(t, x)
	if err := r.j.Deregister(ctx); err != nil {
		t.Fatalf("deregister with %s taken for dead: %v", x, err)
	}
	if res, _ := r.j.Deregistration(); !slices.Equal(res.Dead, []string{x}) {
		t.Fatalf("deregistration %+v: want %s named dead", res, x)
	}
	m := r.j.Map()
	if !m.Suspect[x] || m.Dead[x] {
		t.Fatalf("after the deregistration: suspect %v, dead %v; want %s suspect only", m.Suspect, m.Dead, x)
	}
	if c, err := decodeCredential(r.j.Credential()); err != nil || !slices.ContainsFunc(c.Nodes, func(n credNode) bool { return n.ID == x && n.Dead }) {
		t.Fatalf("credential %+v, %v: want %s written dead (as older readers read it)", c, err, x)
	}
	keys := r.keysOn("p", x)
	if len(keys) == 0 {
		t.Fatalf("no persisted key on %s", x)
	}
	if got, err := r.j.Get(ctx, keys[0]); err != nil || string(got) != "kept "+keys[0] {
		t.Fatalf("%s on %s, named dead but serving: %q %v; want %q", keys[0], x, got, err, "kept "+keys[0])
	}
	if g := r.j.GoneNodes(); len(g) != 0 {
		t.Errorf("nodes found gone: %q; want none", g)
	}
	if m := r.j.Map(); m.Suspect[x] || m.Dead[x] {
		t.Errorf("after %s answered: suspect %v, dead %v; want neither", x, m.Suspect, m.Dead)
	}
	if c, _ := decodeCredential(r.j.Credential()); slices.ContainsFunc(c.Nodes, func(n credNode) bool { return n.Dead }) {
		t.Errorf("credential %+v: want no node dead once %s answered", c, x)
	}
}

// takeForDead stops the heartbeats of the node at x, which serves on, and
// has the controller mark it dead, and returns the stopped agent's node.
func (r *deregRig) takeForDead(t *testing.T, x string) *clusterNode {
	t.Helper()
	cn := r.c.nodeAt(x)
	cn.cancel()
	<-cn.done
	r.c.markDead(x)
	return cn
}
