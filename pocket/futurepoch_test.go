package pocket

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/wire"
)

// Requests stamped with a map epoch newer than the node has heard of
// (dataplane/jobtable.go): refused, naming the node's epoch, while the
// node's agent heartbeats early to catch up.

// rawDo sends one request to addr, as a hostile client holding a job's
// token would (no SDK in the way), and returns the node's error.
func rawDo(t *testing.T, addr string, op wire.Op, job string, tok []byte, epoch uint64, key string) error {
	t.Helper()
	c, err := client.DialConn(context.Background(), addr, client.ConnOptions{Job: []byte(job)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var payload []byte
	if op == wire.OpPut {
		payload = []byte("written outside the map: " + key)
	}
	if _, err := c.Send(op, 0, &wire.Request{Job: []byte(job), Key: []byte(key), Token: tok, Epoch: epoch}, payload); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return r.Err()
}

// TestFutureEpochCannotWriteOutsideTheMap (hostile review: writes outside
// the job's map): job a's client, with a's valid token, sends puts
// stamped with a's epoch + 100 to a node outside a's map (the one serving
// job b). Every put is refused as stale, naming a's epoch there (older
// than the client's: an SDK would take the node as behind and ask again),
// nothing is stored, the node's bytes do not change, and b's values are
// untouched. The old node took any newer epoch as its own lag and stored
// the puts, so any token holder could fill other jobs' nodes.
func TestFutureEpochCannotWriteOutsideTheMap(t *testing.T) {
	c := newAttackCluster(t, 2, controller.Config{HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	b, err := s.RegisterJob(ctx, "b", Hints{CapacityBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.RegisterJob(ctx, "a", Hints{CapacityBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Map().Nodes) != 1 || len(b.Map().Nodes) != 1 {
		t.Fatalf("maps of %d and %d nodes, want one each", len(a.Map().Nodes), len(b.Map().Nodes))
	}
	for i := range 10 {
		if err := b.Put(ctx, fmt.Sprint("b", i), []byte(fmt.Sprint("value of b", i))); err != nil {
			t.Fatal(err)
		}
	}
	target := c.node(outside(c.ctl, a.ID()))
	if b.Map().Nodes[0].Addr != target.addr {
		t.Fatalf("b placed on a's node %s, not on the other one", b.Map().Nodes[0].Addr)
	}
	epoch := a.Map().Epoch
	// The target has heard of a (a stat stores nothing, whatever the
	// answer): it refuses a's own epoch as a map it is not in.
	waitFor(t, 10*time.Second, "the node outside a's map to hear of a", func() bool {
		err := rawDo(t, target.addr, wire.OpStat, a.ID(), a.Token(), epoch, "k")
		return errors.Is(err, wire.ErrStaleEpoch) && strings.Contains(err.Error(), "not in the job's placement map")
	})
	used := target.tier.Usage().Used
	var we *wire.Error
	for i := range 50 {
		err := rawDo(t, target.addr, wire.OpPut, a.ID(), a.Token(), epoch+100, fmt.Sprint("fill", i))
		if !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != epoch {
			t.Fatalf("put %d of job %s at epoch %d (its map's is %d) on %s, outside its map: %v; want stale naming %d",
				i, a.ID(), epoch+100, epoch, target.addr, err, epoch)
		}
	}
	if n, u := target.node.JobValues(a.ID()), target.tier.Usage().Used; n != 0 || u != used {
		t.Fatalf("the node outside a's map holds %d of a's values; its bytes went from %d to %d", n, used, u)
	}
	for i := range 10 {
		k := fmt.Sprint("b", i)
		if got, err := b.Get(ctx, k); err != nil || string(got) != "value of "+k {
			t.Fatalf("b's %s: %q, %v", k, got, err)
		}
	}
	if err := a.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("a's client with its own map: %v", err)
	}
}

// TestNewerMapReachesABehindNodePromptly: with heartbeats 5 s apart, a
// job grows onto a second node, and a client routing by the new map
// (epoch e+1, as a client holds once the controller hands it out) puts
// to both nodes before either has heard of e+1. The nodes refuse it at
// first (naming e: behind), wake their agents, and learn e+1 from an
// early heartbeat; the SDK sends the same map again after its pause, and
// every put succeeds within a few seconds, well before the nodes' next
// regular heartbeats would have brought the epoch. Then the controller,
// whose nodes confirmed e+1 early, hands the new map out.
func TestNewerMapReachesABehindNodePromptly(t *testing.T) {
	const interval = 5 * time.Second
	c := newAttackCluster(t, 2, controller.Config{HeartbeatInterval: interval, DeadAfter: 4 * interval})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	s, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	j, err := s.RegisterJob(ctx, "grower", Hints{CapacityBytes: 1 << 20})
	if err != nil || len(j.Map().Nodes) != 1 {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	for i := range 20 {
		if err := j.Put(ctx, fmt.Sprint("k", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	epoch := j.Map().Epoch
	// Both nodes have heard of the job at epoch e (a stat stores nothing,
	// whatever the answer): the one in the map refuses the epoch before,
	// the other e itself.
	for _, an := range c.nodes {
		probe := epoch
		if an.addr == j.Map().Nodes[0].Addr {
			probe = epoch - 1
		}
		waitFor(t, 10*time.Second, "the nodes to hear of the job", func() bool {
			return errors.Is(rawDo(t, an.addr, wire.OpStat, j.ID(), j.Token(), probe, "k"), wire.ErrStaleEpoch)
		})
	}
	if err := c.ctl.GrowJob(j.ID(), ""); err != nil {
		t.Fatal(err)
	}
	next := jobStatus(t, c.ctl, j.ID())
	if next.Epoch <= epoch || len(next.Nodes) != 2 {
		t.Fatalf("after the growth: epoch %d (was %d), %d nodes", next.Epoch, epoch, len(next.Nodes))
	}
	mp := fromWire(&wire.PlacementMap{Job: j.ID(), Token: j.Token(), Tier: uint8(j.Map().Tier), Epoch: next.Epoch, Nodes: next.Nodes})
	j.setMap(mp)
	// One key owned by each node under the new map.
	keys := map[string]string{}
	for i := 0; len(keys) < 2 && i < 10000; i++ {
		k := fmt.Sprint("new", i)
		if a := j.route([]byte(k), 0).addr; keys[a] == "" {
			keys[a] = k
		}
	}
	if len(keys) != 2 {
		t.Fatalf("no key for each node: %v", keys)
	}
	for addr, k := range keys {
		start := time.Now()
		if err := j.Put(ctx, k, []byte("v")); err != nil {
			t.Fatalf("put %s to %s by the new map (epoch %d): %v", k, addr, next.Epoch, err)
		}
		t.Logf("put %s to %s by the new map: %v", k, addr, time.Since(start))
		if took := time.Since(start); took > interval/2 {
			t.Fatalf("put %s to %s by the new map took %v, not within %v (the node waited for its regular heartbeat)", k, addr, took, interval/2)
		}
	}
	waitFor(t, interval/2, "the controller to hand out the new map", func() bool {
		m, err := c.ctl.GetMap(j.ID(), j.Token())
		return err == nil && m.Epoch >= next.Epoch
	})
}

// jobStatus is the controller's status of job id (its current map, handed
// out or not yet).
func jobStatus(t *testing.T, ctl *controller.Controller, id string) wire.JobStatus {
	t.Helper()
	for _, js := range ctl.Status().Jobs {
		if js.Job == id {
			return js
		}
	}
	t.Fatalf("job %s not in the controller's status", id)
	return wire.JobStatus{}
}
