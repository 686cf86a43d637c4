package pocket

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// newSteadyCluster is newTestCluster whose controller marks no node dead
// by itself (DeadAfter an hour): a stopped node stays active in the maps
// (the controller's drop to it fails: a live node that did not drop the
// job's data) until the test marks it dead (killDead).
func newSteadyCluster(t *testing.T, nodes int) *testCluster {
	t.Helper()
	return newClusterWith(t, nodes, controller.Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: time.Hour, DeadNodeGrace: -1, Logger: quietLog})
}

// killDead stops the node at addr (its data is gone) and marks it dead.
func (c *testCluster) killDead(addr string) {
	c.t.Helper()
	c.nodeAt(addr).stop()
	c.markDead(addr)
}

// markDead has the controller mark the node at addr, whose agent has
// stopped, dead until it stays so: a heartbeat the agent sent before it
// stopped may still arrive and revive it (TestDeregisterLiveNodeFailure
// once found the node it had marked dead alive again, on a loaded machine).
func (c *testCluster) markDead(addr string) {
	c.t.Helper()
	for i := 0; ; i++ {
		if err := c.ctl.SetNodeState(addr, wire.NodeDead); err != nil {
			c.t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if nodeState(c.ctl, addr) == wire.NodeDead {
			return
		}
		if i == 10 {
			c.t.Fatalf("node %s does not stay dead", addr)
		}
	}
}

// deadlessCtl is a controller whose maps mark no node dead, as the map a
// deregistration fetches right after a node's death may not (the
// controller hands out a changed map once the live nodes have it): the
// handle learns the dead nodes from the deregistration's result.
type deadlessCtl struct{ Controller }

func (c deadlessCtl) GetMap(ctx context.Context, job string, tok []byte) (Map, error) {
	m, err := c.Controller.GetMap(ctx, job, tok)
	m.Dead = nil
	return m, err
}

// deregRig is a job on three nodes holding persisted values ("p/NNN")
// and others ("t/NNN"), whose store's maps mark no node dead
// (deadlessCtl).
type deregRig struct {
	c     *testCluster
	j     *Job
	nodes []string // the job's map, in map order
	keys  int
}

func newDeregRig(t *testing.T, name string, before ...func(*testCluster)) *deregRig {
	t.Helper()
	c := newSteadyCluster(t, 3)
	for _, f := range before {
		f(c) // before the job registers
	}
	ctx := context.Background()
	s := NewStore(deadlessCtl{&metaController{mc: metaclient.New(c.addr, metaclient.Options{})}}, Config{ChunkSize: 1 << 20})
	t.Cleanup(func() { s.Close() })
	j, err := s.RegisterJob(ctx, name, Hints{Lambdas: 40})
	if err != nil {
		t.Fatal(err)
	}
	r := &deregRig{c: c, j: j, keys: 30}
	for _, n := range j.Map().Nodes {
		r.nodes = append(r.nodes, n.Addr)
	}
	if len(r.nodes) != 3 {
		t.Fatalf("the job's map has %d nodes; the test needs 3", len(r.nodes))
	}
	for i := range r.keys {
		k := fmt.Sprintf("p/%03d", i)
		if err := j.Put(ctx, k, []byte("kept "+k), Persist()); err != nil {
			t.Fatal(err)
		}
		if err := j.Put(ctx, fmt.Sprintf("t/%03d", i), []byte("dropped")); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// keysOn returns the keys under prefix whose owner is addr.
func (r *deregRig) keysOn(prefix, addr string) []string {
	var all []string
	for i := range r.keys {
		all = append(all, fmt.Sprintf("%s/%03d", prefix, i))
	}
	on, _ := splitByOwner(r.j, all, addr)
	return on
}

// checkEnded checks that the handle behaves as an ended job's: a value on
// the dead node reads as lost (its values are gone: recompute them; a
// live job's handle answers unavailable, which reads as "retry"), and on
// the healthy node its persisted values read back, its others read as not
// found, and a put is refused as revoked; the controller no longer knows
// the job.
func (r *deregRig) checkEnded(t *testing.T, dead, healthy string) {
	t.Helper()
	ctx := context.Background()
	if k := r.keysOn("p", dead); len(k) == 0 {
		t.Errorf("no key on %s", dead)
	} else if _, err := r.j.Get(ctx, k[0]); !errors.Is(err, wire.ErrLost) || !strings.Contains(err.Error(), dead) {
		t.Errorf("persisted %s on the dead node after the deregistration: %v; want lost, naming %s", k[0], err, dead)
	}
	p, tmp := r.keysOn("p", healthy), r.keysOn("t", healthy)
	if len(p) == 0 || len(tmp) == 0 {
		t.Fatalf("no key on %s", healthy)
	}
	for _, k := range p {
		got, err := r.j.Get(ctx, k)
		if want := "kept " + k; err != nil || string(got) != want {
			t.Errorf("persisted %s after the deregistration: %q, %v; want %q", k, got, err, want)
		}
	}
	if _, err := r.j.Get(ctx, tmp[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("dropped %s after the deregistration: %v; want not found (an ended job's)", tmp[0], err)
	}
	if err := r.j.Put(ctx, tmp[0], []byte("x")); !errors.Is(err, wire.ErrRevoked) {
		t.Errorf("put after the deregistration: %v; want revoked", err)
	}
	if _, err := r.c.ctl.GetMap(r.j.ID(), r.j.Token()); !errors.Is(err, wire.ErrUnknownJob) {
		t.Errorf("the controller's map of the job after its deregistration: %v; want unknown job", err)
	}
}

// TestDeregisterDeadNodeSucceeds: a deregistration whose only failure is
// a dead node of the map (its copy of the job's data went with it) is a
// success, as for pocket job deregister: Deregister returns nil,
// Deregistration names the dead node, and the handle is an ended job's.
// Before, Deregister returned an error ("1 of 2 node(s) could not drop")
// and left the handle a live job's whose token was revoked: its reads of
// dropped values answered revoked, not "not found".
func TestDeregisterDeadNodeSucceeds(t *testing.T) {
	r := newDeregRig(t, "dead-only")
	dead, healthy := r.nodes[0], r.nodes[1]
	r.c.killDead(dead)
	if err := r.j.Deregister(context.Background()); err != nil {
		t.Errorf("deregister with a dead node: %v; want nil", err)
	}
	res, ok := r.j.Deregistration()
	if !ok || !slices.Equal(res.Dead, []string{dead}) || len(res.Failures) != 0 || res.Nodes != 2 || res.Values == 0 {
		t.Errorf("deregistration: %+v, %v; want 2 nodes dropping values, %s dead, no failure", res, ok, dead)
	}
	// An ended job's listing leaves the dead node out (a live one's fails),
	// without dialing it for goneWait: the deregistration marked it
	// suspect, so its first refused dial finds it gone.
	want := len(r.keysOn("p", r.nodes[1])) + len(r.keysOn("p", r.nodes[2]))
	if got, err := r.j.List(context.Background(), "p/"); err != nil || len(got) != want {
		t.Errorf("listing after the deregistration: %d entries, %v; want %d", len(got), err, want)
	}
	if g := r.j.GoneNodes(); !slices.Equal(g, []string{dead}) {
		t.Errorf("nodes found gone: %q; want %s (named dead by the deregistration, it refused the listing's dial)", g, dead)
	}
	r.checkEnded(t, dead, healthy)
	// The credential carries the dead mark: another process's listing
	// finds the dead node gone at its first refused dial. Before, a
	// credential wrote it as an active node, which the reader dialed for
	// goneWait (5 s) first.
	s := NewStore(nil, Config{})
	defer s.Close()
	cj, err := s.OpenCredential(r.j.Credential())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), goneWait/2)
	defer cancel()
	if got, err := cj.List(ctx, "p/"); err != nil || len(got) != want {
		t.Errorf("listing through the credential within %v: %d entries, %v; want %d", goneWait/2, len(got), err, want)
	}
	if g := cj.GoneNodes(); !slices.Equal(g, []string{dead}) {
		t.Errorf("credential: nodes found gone %q; want %s (marked dead, it refused the first dial)", g, dead)
	}
}

// TestDeregisterLiveNodeFailure: a live node that could not drop the
// job's data makes Deregister return a *DropError naming it (and the dead
// node apart), yet the job is deregistered and the handle an ended job's.
// Before, the error was a plain one (errors.As found nothing), and the
// handle stayed a live job's whose token was revoked.
func TestDeregisterLiveNodeFailure(t *testing.T) {
	r := newDeregRig(t, "live-failure")
	dead, down, healthy := r.nodes[0], r.nodes[1], r.nodes[2]
	r.c.killDead(dead)
	r.c.nodeAt(down).stop() // active to the controller: its drop fails
	err := r.j.Deregister(context.Background())
	var de *DropError
	if !errors.As(err, &de) {
		t.Fatalf("deregister with a dead node and a stopped one: %v; want a *DropError", err)
	}
	if !slices.Equal(de.Result.Dead, []string{dead}) || len(de.Result.Failures) != 1 ||
		!strings.Contains(de.Result.Failures[0], down) || de.Result.Nodes != 1 {
		t.Errorf("drop error %+v; want %s dead and one failure naming %s", de.Result, dead, down)
	}
	if msg := err.Error(); !strings.Contains(msg, "deregistered") || !strings.Contains(msg, down) || !strings.Contains(msg, dead) {
		t.Errorf("error %q: want it to say the job is deregistered, and name %s and %s", msg, down, dead)
	}
	if res, ok := r.j.Deregistration(); !ok || !slices.Equal(res.Failures, de.Result.Failures) {
		t.Errorf("deregistration: %+v, %v; want the error's result", res, ok)
	}
	r.checkEnded(t, dead, healthy)
}

// refusingCtl is a controller whose deregistration fails with err, as one
// that refused it or could not be reached.
type refusingCtl struct {
	Controller
	err error
}

func (c refusingCtl) DeregisterJob(context.Context, string, []byte) (DropResult, error) {
	return DropResult{}, c.err
}

// TestDeregisterRefusedStaysLive: a deregistration the controller did not
// accept returns its error, not a *DropError, and leaves the job live:
// no Deregistration, and its values still read and write.
func TestDeregisterRefusedStaysLive(t *testing.T) {
	c := newTestCluster(t, 1, 64<<20)
	ctx := context.Background()
	mc := c.store().ctl
	s := NewStore(refusingCtl{Controller: mc, err: wire.ErrBadToken}, Config{})
	t.Cleanup(func() { s.Close() })
	j, err := s.RegisterJob(ctx, "refused", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "v", []byte("live")); err != nil {
		t.Fatal(err)
	}
	err = j.Deregister(ctx)
	var de *DropError
	if !errors.Is(err, wire.ErrBadToken) || errors.As(err, &de) {
		t.Fatalf("refused deregistration: %v; want bad token, no *DropError", err)
	}
	if res, ok := j.Deregistration(); ok {
		t.Errorf("deregistration after a refusal: %+v; want none", res)
	}
	if got, err := j.Get(ctx, "v"); err != nil || string(got) != "live" {
		t.Errorf("get after a refused deregistration: %q, %v", got, err)
	}
	if err := j.Put(ctx, "w", []byte("x")); err != nil {
		t.Errorf("put after a refused deregistration: %v", err)
	}
}

// TestCompatDeregisterDeadNode: Pocket's deregister_job succeeds (0) when
// only a dead node did not drop the job's data, and the process reads the
// job's persisted values as an ended job's, through the handle that opened
// it and a new one. Before, it returned -1 and kept the job's token.
func TestCompatDeregisterDeadNode(t *testing.T) {
	c := newSteadyCluster(t, 3)
	h, id := compatJob(t, c.addr, "compat-dead", 40)
	var names []string
	for i := range 12 {
		n := fmt.Sprintf("out%02d", i)
		if h.PutBuffer([]byte("kept"), 4, n, id, true) != 0 {
			t.Fatalf("put: %v", h.Err())
		}
		names = append(names, n)
	}
	j, err := h.job(id)
	if err != nil {
		t.Fatal(err)
	}
	dead := j.Map().Nodes[0].Addr
	_, off := splitByOwner(j, names, dead)
	if len(off) == 0 {
		t.Fatalf("no value off %s", dead)
	}
	c.killDead(dead)
	if DeregisterJob(id) != 0 {
		t.Errorf("deregister_job with a dead node: -1, %v; want 0", h.Err())
	}
	h2, err := Connect("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	for name, hh := range map[string]*Handle{"the handle": h, "a new handle": h2} {
		buf := make([]byte, 4)
		if hh.GetBuffer(off[0], buf, 4, id, false) != 0 || string(buf) != "kept" {
			t.Errorf("%s: persisted %s after deregister_job: %q, %v", name, off[0], buf, hh.Err())
		}
	}
}
