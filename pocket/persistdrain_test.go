package pocket

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/orchestrator"
	"github.com/pocketstore/pocket/wire"
)

// Persisted values of ended jobs against drains: a job puts values with
// Persist and deregisters; its values stay on their nodes, read through
// its credential. A drained node exits once its drain completes, and
// scale-in drains nodes, so a drain must never take such values away
// unless it was told to (controller.DrainOptions.DiscardPersisted).

// exitNode is an in-process storage node that stops serving when the
// controller retires it, as `pocket node` exits.
type exitNode struct {
	addr   string
	node   *dataplane.Node
	tier   *dataplane.DRAM
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	exited atomic.Bool // the controller retired it and it closed
}

func (e *exitNode) close() {
	e.once.Do(func() {
		e.node.Close()
		e.tier.Close()
	})
}

// stop ends the node's agent and closes the node (as an orchestrator's
// Stop ends the process).
func (e *exitNode) stop() {
	e.cancel()
	<-e.done
	e.close()
}

// startExitCluster starts a controller (100 ms heartbeats) and n nodes of
// 64 MiB DRAM that close when retired.
func startExitCluster(t *testing.T, n int) (*controller.Controller, string, []*exitNode) {
	t.Helper()
	ctl, addr := startTestController(t, 5*time.Second)
	var nodes []*exitNode
	t.Cleanup(func() {
		for _, en := range nodes {
			en.stop()
		}
	})
	for i := 0; i < n; i++ {
		d, nd := newDRAMNode(t, 64<<20)
		ctx, cancel := context.WithCancel(context.Background())
		en := &exitNode{addr: nd.Addr().String(), node: nd, tier: d, cancel: cancel, done: make(chan struct{})}
		nodes = append(nodes, en)
		mc := metaclient.New(addr, metaclient.Options{Secret: drainSecret, Logger: quietLog})
		go func() {
			defer close(en.done)
			defer mc.Close()
			err := agent.Run(ctx, agent.Config{Node: nd, Addr: en.addr, Controller: mc, Logger: quietLog})
			if errors.Is(err, agent.ErrRetired) {
				en.close()
				en.exited.Store(true)
			}
		}()
	}
	waitFor(t, 10*time.Second, "nodes active", func() bool { return countState(ctl, wire.NodeActive) == n })
	return ctl, addr, nodes
}

// exitStore starts a cluster of n nodes (startExitCluster) and a Store
// dialled to its controller, closed when the test ends.
func exitStore(t *testing.T, n int) (*controller.Controller, *Store, []*exitNode) {
	t.Helper()
	ctl, addr, nodes := startExitCluster(t, n)
	s, err := Dial(context.Background(), addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return ctl, s, nodes
}

// persistEnded registers a job on every node, puts k persisted values
// (and as many temporary ones), deregisters it, and returns the keys and
// the job's credential, once every node holds some of the persisted ones
// (and nothing else of the job).
func persistEnded(t *testing.T, s *Store, nodes []*exitNode, k int) ([]string, string) {
	t.Helper()
	ctx := context.Background()
	j, err := s.RegisterJob(ctx, "ended", Hints{Lambdas: 40 * len(nodes)})
	if err != nil || len(j.Map().Nodes) != len(nodes) {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	var keys []string
	for i := 0; i < k; i++ {
		key := fmt.Sprintf("kept/%03d", i)
		if err := j.Put(ctx, key, []byte("value of "+key), Persist()); err != nil {
			t.Fatal(err)
		}
		if err := j.Put(ctx, fmt.Sprintf("tmp/%03d", i), []byte("temporary")); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	cred := j.Credential()
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	for _, en := range nodes {
		if en.tier.Usage().Values == 0 {
			t.Fatalf("node %s holds none of the %d persisted values: the test needs some on each", en.addr, k)
		}
	}
	return keys, cred
}

// readAll reads every key through the credential and returns the keys
// that do not read back.
func readAll(t *testing.T, s *Store, cred string, keys []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	left, err := s.OpenCredentialContext(ctx, cred)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, key := range keys {
		got, err := left.Get(ctx, key)
		if err != nil || string(got) != "value of "+key {
			missing = append(missing, fmt.Sprintf("%s (%q, %v)", key, got, err))
		}
	}
	return missing
}

// TestDrainKeepsEndedJobsPersistedValues: an operator's drain of a node
// holding persisted values of an ended job is refused, naming the job,
// its bytes and what to do, and nothing leaves; told to discard them
// (DiscardPersisted), the drain goes ahead and the node leaves. Before,
// the drain completed at once (the node had no live job's values to move),
// the node exited, and every persisted value it held read as unavailable
// through the credential.
func TestDrainKeepsEndedJobsPersistedValues(t *testing.T) {
	ctl, s, nodes := exitStore(t, 2)
	keys, cred := persistEnded(t, s, nodes, 24)
	victim := nodes[0]
	// Whenever the controller learns what the node keeps (the refusal, or
	// the drain held at its end), no value is lost.
	_, err := ctl.Drain(victim.addr, time.Minute)
	if err == nil {
		// The node had not reported its persisted values yet: the drain
		// must hold at its end instead.
		waitFor(t, 3*time.Second, "the drain to finish moving", func() bool { return drainDone(ctl, victim.addr) || victim.exited.Load() })
		time.Sleep(500 * time.Millisecond) // a few heartbeats and sweeps
	} else {
		msg := err.Error()
		for _, want := range []string{"ended", "persist", "discard", "delete"} {
			if !strings.Contains(strings.ToLower(msg), want) {
				t.Errorf("refusal %q does not mention %q", msg, want)
			}
		}
		if !errors.Is(err, wire.ErrConflict) {
			t.Errorf("refusal %v: want CodeConflict", err)
		}
	}
	if victim.exited.Load() {
		t.Errorf("the drained node exited holding persisted values of an ended job (drain err %v)", err)
	}
	if missing := readAll(t, s, cred, keys); len(missing) > 0 {
		t.Fatalf("%d of %d persisted values lost after a drain not told to discard them: %s", len(missing), len(keys), strings.Join(missing, "; "))
	}
	// Told to discard them, the drain goes ahead: the node leaves and
	// the other node's values still read.
	if _, err := ctl.DrainWith(victim.addr, controller.DrainOptions{Deadline: time.Minute, DiscardPersisted: true}); err != nil {
		t.Fatalf("drain with DiscardPersisted: %v", err)
	}
	waitFor(t, 10*time.Second, "the discarding drain to retire the node", victim.exited.Load)
	if missing := readAll(t, s, cred, keys); len(missing) == 0 || len(missing) == len(keys) {
		t.Fatalf("after discarding the drained node's values, %d of %d are missing: want those of one node", len(missing), len(keys))
	}
}

// drainDone reports whether the node's last heartbeat said its drain had
// moved every live job's value.
func drainDone(ctl *controller.Controller, addr string) bool {
	for _, n := range ctl.Status().Nodes {
		if n.Addr == addr {
			for _, m := range n.Metrics {
				if m.Name == wire.MetricDrainDone && m.Value >= 1 {
					return true
				}
			}
		}
	}
	return false
}

// TestDrainGoesAheadOnceValuesDeleted: once the ended job's persisted
// values are deleted through its credential, the node reports holding
// none (within a few heartbeats) and a drain ordered then completes.
func TestDrainGoesAheadOnceValuesDeleted(t *testing.T) {
	ctl, s, nodes := exitStore(t, 2)
	_, cred := persistEnded(t, s, nodes, 24)
	victim := nodes[0]
	left, err := s.OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	if err := left.RemoveAll(context.Background(), "kept"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "a drain to be taken once the values are deleted", func() bool {
		_, err := ctl.Drain(victim.addr, time.Minute)
		return err == nil
	})
	waitFor(t, 10*time.Second, "the drained node to leave", victim.exited.Load)
}

// TestDrainMovesLiveJobsPersistedValues: a live job's persisted values
// move with its other values when their node drains, and stay readable
// through the credential after the job ends.
func TestDrainMovesLiveJobsPersistedValues(t *testing.T) {
	ctl, s, nodes := exitStore(t, 3)
	ctx := context.Background()
	j, err := s.RegisterJob(ctx, "live", Hints{Lambdas: 120})
	if err != nil || len(j.Map().Nodes) != 3 {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	var keys []string
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("kept/%03d", i)
		if err := j.Put(ctx, key, []byte("value of "+key), Persist()); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	victim := nodes[0]
	if victim.tier.Usage().Values == 0 {
		t.Fatal("the drained node holds none of the values")
	}
	if _, err := ctl.Drain(victim.addr, time.Minute); err != nil {
		t.Fatalf("drain of a node holding a live job's values: %v", err)
	}
	waitFor(t, 20*time.Second, "the drained node to leave", victim.exited.Load)
	// The handle has not met the map's change: Deregister takes the map
	// the values moved by, and the credential carries it.
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	cred := j.Credential()
	if missing := readAll(t, s, cred, keys); len(missing) > 0 {
		t.Fatalf("%d of %d persisted values of a live job lost by a drain: %s", len(missing), len(keys), strings.Join(missing, "; "))
	}
}

// ownOrch is an orchestrator that started the test's nodes: Stop ends
// one as a process's end would.
type ownOrch struct{ nodes []*exitNode }

func (o ownOrch) Start(context.Context, orchestrator.NodeSpec) (orchestrator.Node, error) {
	return orchestrator.Node{}, errors.New("no node to start")
}

func (o ownOrch) Stop(_ context.Context, id string) error {
	for _, en := range o.nodes {
		if en.addr == id {
			en.stop()
			return nil
		}
	}
	return orchestrator.ErrUnknownNode
}

func (o ownOrch) Nodes() []orchestrator.Node {
	var out []orchestrator.Node
	for _, en := range o.nodes {
		out = append(out, orchestrator.Node{ID: en.addr, Addr: en.addr})
	}
	return out
}

func (ownOrch) Close() error { return nil }

// TestScaleInKeepsEndedJobsPersistedValues: on an idle cluster whose every
// node holds persisted values of an ended job, scale-in drains none of
// them (it says why, once). Before, it drained the node with the fewest
// bytes, the orchestrator stopped it, and its values read as unavailable.
func TestScaleInKeepsEndedJobsPersistedValues(t *testing.T) {
	ctl, s, nodes := exitStore(t, 2)
	keys, cred := persistEnded(t, s, nodes, 24)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	as, err := ctl.StartAutoscaler(controller.AutoscaleConfig{Orchestrator: ownOrch{nodes}, MinNodes: 1, MaxNodes: 2,
		Interval: time.Hour, Cooldown: time.Second, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	removed := ""
	for i := 0; i < 15 && removed == ""; i++ {
		time.Sleep(200 * time.Millisecond) // heartbeats after the job's end
		clock.Add(int64(2 * time.Second))
		if d := as.Step(); d.Action == controller.ActionRemove {
			removed = strings.Join(d.Drain, ",")
		}
	}
	if removed != "" {
		waitFor(t, 10*time.Second, "the drained node to stop", func() bool { return countState(ctl, wire.NodeActive)+countState(ctl, wire.NodeDraining) < 2 })
	}
	if missing := readAll(t, s, cred, keys); len(missing) > 0 {
		t.Fatalf("scale-in drained %s: %d of %d persisted values lost: %s", removed, len(missing), len(keys), strings.Join(missing, "; "))
	}
	if removed != "" {
		t.Fatalf("scale-in drained %s, which held persisted values of an ended job", removed)
	}
}
