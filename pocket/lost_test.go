package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// newGraceCluster is newTestCluster with a controller that removes a node
// dead for grace from the maps.
func newGraceCluster(t *testing.T, nodes int, grace time.Duration) *testCluster {
	t.Helper()
	return newClusterWith(t, nodes, controller.Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 500 * time.Millisecond, DeadNodeGrace: grace, Logger: quietLog})
}

// newClusterWith starts a controller of cfg on a loopback port and nodes
// that register with it, waits until they are active, and stops them all
// when the test ends.
func newClusterWith(t *testing.T, nodes int, cfg controller.Config) *testCluster {
	t.Helper()
	c := &testCluster{t: t, linger: cfg.RevokeLinger}
	ctl, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.ctl, c.addr = ctl, addr.String()
	for range nodes {
		c.addNodeAt("127.0.0.1:0")
	}
	c.awaitActive(nodes)
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
			n.tier.Close()
		}
		c.ctl.Close()
	})
	return c
}

// nodeAt is the cluster's node at addr.
func (c *testCluster) nodeAt(addr string) *clusterNode {
	return c.nodes[slices.IndexFunc(c.nodes, func(n *clusterNode) bool { return n.node.Addr().String() == addr })]
}

// addNodeAt starts an empty node listening on listen, with its agent.
func (c *testCluster) addNodeAt(listen string) *clusterNode { return c.addNodeLate(listen, 0) }

// addNodeLate is addNodeAt whose agent reaches the controller only after
// delay: the node listens first, as pocket node does while its controller
// is slow or failing over.
func (c *testCluster) addNodeLate(listen string, delay time.Duration) *clusterNode {
	nd, d := c.nodeOn(listen, 64<<20)
	ctx, cancel := context.WithCancel(context.Background())
	cn := &clusterNode{node: nd, tier: d, cancel: cancel, done: make(chan struct{})}
	mc := metaclient.New(c.addr, metaclient.Options{Secret: testSecret, Logger: quietLog})
	go func() {
		defer close(cn.done)
		defer mc.Close()
		if sleepCtx(ctx, delay) {
			_ = agent.Run(ctx, agent.Config{Node: nd, Addr: nd.Addr().String(), Controller: mc})
		}
	}()
	c.nodes = append(c.nodes, cn)
	return cn
}

// awaitLost waits until the controller's map of j lists addr as lost.
func (c *testCluster) awaitLost(j *Job, addr string) wire.PlacementMap {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := c.ctl.GetMap(j.ID(), j.Token())
		if err != nil {
			c.t.Fatal(err)
		}
		for _, l := range m.Lost {
			if l.Addr == addr {
				return *m
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s never left the map of %s: %+v", addr, j.ID(), m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClusterLostNode: a node killed and dead past the grace leaves the
// map (the epoch rises); its keys answer ErrLost, not ErrNotFound, the
// others read as written; a large object with a chunk on it answers
// ErrLost (Get and a stream) instead of ErrCorrupt; the lost keys can be
// written again, on the remaining nodes; a node restarted empty at the
// dead node's address joins as a new node and takes new jobs' keys. On
// the code before dead nodes left maps, the node stayed in the map marked
// dead forever (awaitLost fails).
func TestClusterLostNode(t *testing.T) {
	c := newGraceCluster(t, 3, 300*time.Millisecond)
	ctx := context.Background()
	s, err := Dial(ctx, c.addr, Config{ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "lose", Hints{Lambdas: 40})
	if err != nil || len(j.Map().Nodes) != 3 {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	const keys = 90
	for i := range keys {
		if err := j.Put(ctx, fmt.Sprint(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	big := randBytes(1<<20, 7) // 16 chunks over 3 nodes
	if err := j.Put(ctx, "big", big); err != nil {
		t.Fatal(err)
	}
	victim := chunkHolder(t, j, "big")
	owner := map[int]string{}
	for i := range keys {
		owner[i] = j.route([]byte(fmt.Sprint(i)), 0).addr
	}
	epoch := j.Map().Epoch
	c.nodeAt(victim).stop()

	m := c.awaitLost(j, victim)
	if m.Epoch <= epoch || len(m.Nodes) != 2 {
		t.Fatalf("map after the loss: epoch %d (was %d), %d nodes", m.Epoch, epoch, len(m.Nodes))
	}
	// The SDK still holds the old map: its first request to the victim is
	// refused, and it fetches the map once and retries.
	ok, lost := 0, 0
	for i := range keys {
		got, err := j.Get(ctx, fmt.Sprint(i))
		switch {
		case owner[i] == victim && errors.Is(err, ErrLost) && !errors.Is(err, ErrNotFound):
			if !bytes.Contains([]byte(err.Error()), []byte(victim)) {
				t.Errorf("key %d: error does not name the lost node: %v", i, err)
			}
			lost++
		case owner[i] != victim && err == nil && bytes.Equal(got, []byte{byte(i)}):
			ok++
		default:
			t.Fatalf("key %d (on %s, victim %s): %q %v", i, owner[i], victim, got, err)
		}
	}
	if ok == 0 || lost == 0 {
		t.Fatalf("ok %d, lost %d: the test proves nothing", ok, lost)
	}
	if j.Map().Epoch != m.Epoch {
		t.Fatalf("SDK map at epoch %d, controller's at %d", j.Map().Epoch, m.Epoch)
	}
	lostKey := ""
	for i := range keys {
		if owner[i] == victim {
			lostKey = fmt.Sprint(i)
			break
		}
	}
	if _, err := j.Stat(ctx, lostKey); !errors.Is(err, ErrLost) {
		t.Errorf("stat of a lost key: %v", err)
	}
	if ok, err := j.Exists(ctx, lostKey); ok || err != nil {
		t.Errorf("exists of a lost key: %v %v", ok, err)
	}
	// A delete answers as Get and Stat do (before: "not found").
	if err := j.Delete(ctx, lostKey); !errors.Is(err, ErrLost) || errors.Is(err, ErrNotFound) {
		t.Errorf("delete of a lost key: %v; want ErrLost", err)
	}
	if n, err := j.RemoveAllCount(ctx, lostKey); err != nil || n.Count() != 0 {
		t.Errorf("recursive delete of a lost key: %+v, %v; want nothing there", n, err)
	}
	// Which is what pocket rm then says (before, "no key").
	if ls := j.LostOwners(lostKey); len(ls) != 1 || ls[0].Addr != victim || ls[0].Epoch != m.Epoch {
		t.Errorf("lost owners of a lost key: %+v; want %s at epoch %d", ls, victim, m.Epoch)
	}
	for i := range keys {
		if owner[i] != victim {
			if ls := j.LostOwners(fmt.Sprint(i)); len(ls) != 0 {
				t.Fatalf("lost owners of key %d, on %s: %+v", i, owner[i], ls)
			}
			break
		}
	}
	if _, err := j.Get(ctx, "never-written-anywhere"); err == nil {
		t.Error("a key never written reads")
	}
	// The large object's manifest is on a live node, a chunk was not.
	if _, err := j.Get(ctx, "big"); !errors.Is(err, ErrLost) {
		t.Errorf("get of an object with a lost chunk: %v", err)
	}
	if err := readStream(ctx, j, "big"); !errors.Is(err, ErrLost) {
		t.Errorf("stream of an object with a lost chunk: %v", err)
	}
	// Writes go to the remaining nodes, and read back.
	for i := range keys {
		if owner[i] != victim {
			continue
		}
		k := fmt.Sprint(i)
		if err := j.Put(ctx, k, []byte("again")); err != nil {
			t.Fatalf("put of lost key %s: %v", k, err)
		}
		if got, err := j.Get(ctx, k); err != nil || string(got) != "again" {
			t.Fatalf("lost key %s written again: %q %v", k, got, err)
		}
	}
	if err := j.Put(ctx, "big", big); err != nil {
		t.Fatal(err)
	}
	if got, err := j.Get(ctx, "big"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("large object written again: %d bytes, %v", len(got), err)
	}

	// A node restarted empty at the victim's address is a new node.
	back := c.addNodeAt(victim)
	c.awaitActive(3)
	if m2, _ := c.ctl.GetMap(j.ID(), j.Token()); slices.ContainsFunc(m2.Nodes, func(n wire.MapNode) bool { return n.Addr == victim }) {
		t.Fatalf("the old job took the returned node back: %+v", m2)
	}
	// A new job's clients are new processes: a store whose pool still
	// holds a connection to the dead node answers "connection lost" once
	// on it before it dials again (package client), a request the SDK
	// does not repeat on an unchanged map.
	s2, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	k, err := s2.RegisterJob(ctx, "after", Hints{Lambdas: 40})
	if err != nil || !slices.ContainsFunc(k.Map().Nodes, func(n Node) bool { return n.Addr == victim }) {
		t.Fatalf("new job %+v %v: want it on the returned node", k.Map(), err)
	}
	for i := range keys {
		if err := k.Put(ctx, fmt.Sprint(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if got, err := k.Get(ctx, fmt.Sprint(i)); err != nil || !bytes.Equal(got, []byte{byte(i)}) {
			t.Fatalf("new job's key %d: %q %v", i, got, err)
		}
	}
	if back.tier.Usage().Used == 0 {
		t.Fatal("the returned node holds none of the new job's keys")
	}
}

// chunkHolder returns a node that holds a chunk of key's current version
// and not its manifest.
func chunkHolder(t *testing.T, j *Job, key string) string {
	t.Helper()
	_, ver, err := j.getInto(context.Background(), key, nil, wire.FlagVersion)
	if err != nil {
		t.Fatal(err)
	}
	manifest := j.route([]byte(key), 0).addr
	for i := 1; i <= 16; i++ {
		if a := j.route(wire.AppendChunkKey(nil, []byte(key), ver, i), uint32(i)).addr; a != manifest {
			return a
		}
	}
	t.Fatalf("every chunk of %s is on its manifest's node", key)
	return ""
}

// readStream reads key to the end through NewReader.
func readStream(ctx context.Context, j *Job, key string) error {
	r, err := j.NewReader(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(io.Discard, r)
	return err
}

// TestLostErr: "not found" for a key whose owner over the map and its lost
// nodes is a lost node becomes ErrLost naming the node; for other keys,
// and for every other error, the error stays as it is.
func TestLostErr(t *testing.T) {
	s := NewStore(nil, Config{})
	defer s.Close()
	j, err := s.newJob(Map{Job: "l-1", Nodes: []Node{{Addr: "a:1", Weight: 0.5}, {Addr: "b:1", Weight: 0.5}},
		Lost: []LostNode{{Addr: "c:1", Weight: 0.5, Epoch: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	notFound := &wire.Error{Code: wire.CodeNotFound, Msg: "no such key"}
	lost, kept := 0, 0
	for i := range 300 {
		key := fmt.Appendf(nil, "k%d", i)
		got := j.lostErr(key, 0, notFound)
		switch {
		case errors.Is(got, ErrLost) && !errors.Is(got, ErrNotFound) && bytes.Contains([]byte(got.Error()), []byte("c:1")):
			lost++
		case got == error(notFound):
			kept++
		default:
			t.Fatalf("key %s: %v", key, got)
		}
		if other := j.lostErr(key, 0, wire.ErrBusy); other != wire.ErrBusy {
			t.Fatalf("busy became %v", other)
		}
	}
	// The lost node held about a third of the keys.
	if lost < 50 || kept < 100 {
		t.Fatalf("%d lost, %d not found: want about 100 and 200", lost, kept)
	}
	plain, _ := s.newJob(Map{Job: "l-2", Nodes: []Node{{Addr: "a:1", Weight: 1}}})
	if got := plain.lostErr([]byte("k"), 0, notFound); got != error(notFound) {
		t.Fatalf("a map with no lost node: %v", got)
	}
}
