package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestResumedNodeRejoinsItsJob: a node cut off from its controller past
// its lease (frozen, or its agent stopped) is lost by its job. When it
// comes back the controller has it drop the job's stale data; once it has
// forgotten the job (its revoke linger, here 1 s) the job, whose 96 MiB
// the one 64 MiB node left cannot hold, takes it back, and it serves the
// job again: new values on it read back, the old one it held reads lost.
// On the old code it stayed out of the job's map for good (a new user's
// trial: the job answered "tier full" beside the empty resumed node).
func TestResumedNodeRejoinsItsJob(t *testing.T) {
	c, j, addr, pre := resumeLostNode(t, rejoinConfig(time.Second, nil))
	checkRejoined(t, c, j, addr, pre)
}

// TestResumedNodeRejoinsAfterAControllerRestart: the controller restarts
// (on its stored state) between the resumed node's drop and the end of
// its linger, whose wait it kept in memory only. The new run orders the
// drop again when it first hears from the node, and the job takes the
// node back. On the code before, the node stayed out of the map.
func TestResumedNodeRejoinsAfterAControllerRestart(t *testing.T) {
	cfg := rejoinConfig(5*time.Second, state.NewMemory())
	c, j, addr, pre := resumeLostNode(t, cfg)
	victim := c.nodeAt(addr)
	if !waitUntil(10*time.Second, func() bool { return victim.tier.Usage().Values == 0 }) {
		t.Fatalf("the resumed node still holds %d values", victim.tier.Usage().Values)
	}
	c.restartController(cfg)
	checkRejoined(t, c, j, addr, pre)
}

// checkRejoined waits until addr is back in j's map, and checks that it
// serves the job: 40 new keys (some on it) read back, and pre, which it
// held before it was lost, reads ErrLost.
func checkRejoined(t *testing.T, c *testCluster, j *Job, addr, pre string) {
	t.Helper()
	ctx := context.Background()
	if !waitUntil(20*time.Second, func() bool {
		m, err := c.ctl.GetMap(j.ID(), j.Token())
		return err == nil && slices.ContainsFunc(m.Nodes, func(n wire.MapNode) bool { return n.Addr == addr })
	}) {
		m, _ := c.ctl.GetMap(j.ID(), j.Token())
		t.Fatalf("%s, back and holding none of the job's data, never rejoined the job's map: %+v", addr, m)
	}
	if err := j.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	var onVictim int
	for i := range 40 {
		k, v := fmt.Sprint("after/", i), []byte(fmt.Sprint("value ", i))
		if j.route([]byte(k), 0).addr == addr {
			onVictim++
		}
		if err := j.Put(ctx, k, v); err != nil {
			t.Fatalf("put %s (owner %s) once the node rejoined: %v", k, j.route([]byte(k), 0).addr, err)
		}
		if got, err := j.Get(ctx, k); err != nil || !bytes.Equal(got, v) {
			t.Fatalf("get %s: %q, %v", k, got, err)
		}
	}
	if onVictim == 0 {
		t.Fatal("none of 40 keys placed on the rejoined node")
	}
	if got, err := j.Get(ctx, pre); !errors.Is(err, ErrLost) {
		t.Fatalf("get of the value the node held before it was lost: %q, %v; want ErrLost", got, err)
	}
}

// TestResumedNodeDropsPersistentValuesAndRejoins: the same with a
// persist-after-job value on the node: the drop order takes it too (the
// job lost it: its key answers lost), so the node holds none of the job
// and rejoins. On the code before, the node kept it (the job retired
// there, refusing its puts) and stayed out of the job's map.
func TestResumedNodeDropsPersistentValuesAndRejoins(t *testing.T) {
	c, j, addr, pre := resumeLostNode(t, rejoinConfig(time.Second, nil), Persist())
	checkRejoined(t, c, j, addr, pre)
}

// rejoinConfig is the controller of resumeLostNode's cluster: 100 ms
// heartbeats, a lost node gone from the maps in about a second, the
// nodes' revoke linger, and the state in st (nil: none kept).
func rejoinConfig(linger time.Duration, st state.Store) controller.Config {
	return controller.Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 500 * time.Millisecond,
		DeadNodeGrace: 300 * time.Millisecond, RevokeLinger: linger, Store: st, Logger: quietLog}
}

// resumeLostNode makes a job of 96 MiB on two 64 MiB nodes of a cluster
// whose controller is cfg (its RevokeLinger the nodes' too), puts a value
// (with opts) on the first node, stops that node's agent until the job has
// lost the node, and starts it again. It returns the cluster, the job, the
// node's address and the value's key.
func resumeLostNode(t *testing.T, cfg controller.Config, opts ...PutOption) (*testCluster, *Job, string, string) {
	c, j, addr, pre := cutOffNode(t, cfg, opts...)
	c.resumeAgent(c.nodes[0])
	return c, j, addr, pre
}

// cutOffNode is resumeLostNode up to the loss: the node's agent stays
// stopped.
func cutOffNode(t *testing.T, cfg controller.Config, opts ...PutOption) (*testCluster, *Job, string, string) {
	c := newClusterWith(t, 2, cfg)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "rejoin", Hints{CapacityBytes: 96 << 20})
	if err != nil || len(j.Map().Nodes) != 2 {
		t.Fatalf("job of 96 MiB on %d of two 64 MiB nodes: %v", len(j.Map().Nodes), err)
	}
	victim := c.nodes[0]
	addr := victim.node.Addr().String()
	pre := ownedKey(j, addr, "pre/")
	if err := j.Put(ctx, pre, []byte("held before the loss"), opts...); err != nil {
		t.Fatal(err)
	}
	victim.cancel() // its agent stops; the node serves on, its lease lapses
	<-victim.done
	c.awaitLost(j, addr)
	return c, j, addr, pre
}

// ownedKey is the first key prefix+N that j's map places on addr.
func ownedKey(j *Job, addr, prefix string) string {
	for i := 0; ; i++ {
		if k := fmt.Sprint(prefix, i); j.route([]byte(k), 0).addr == addr {
			return k
		}
	}
}
