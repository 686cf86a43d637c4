package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// Attacks on maps that change under a running job (controller/elastic.go,
// dataplane/agent/move.go, pocket/route.go): a member that misses the
// change, and the controller load clients cause while an epoch is held
// back.

var attackSecret = []byte("attack-test-secret-0123456789ab")

// attackNode is a storage node whose agent (its heartbeats, its mover) can
// be stopped and started again while its data plane keeps serving, as a
// node cut off from the controller but not from clients, or whose agent
// stalled, would.
type attackNode struct {
	node   *dataplane.Node
	tier   *dataplane.DRAM
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

// attackCluster is a controller and nodes in this process.
type attackCluster struct {
	t     *testing.T
	ctl   *controller.Controller
	addr  string
	nodes []*attackNode
}

func newAttackCluster(t *testing.T, n int, cfg controller.Config) *attackCluster {
	t.Helper()
	cfg.Secret, cfg.Logger = attackSecret, quietLog
	ctl, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &attackCluster{t: t, ctl: ctl, addr: a.String()}
	t.Cleanup(func() {
		for _, an := range c.nodes {
			an.stopAgent()
			an.node.Close()
			an.tier.Close()
		}
		ctl.Close()
	})
	for i := 0; i < n; i++ {
		d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nd, err := dataplane.NewNode(dataplane.NodeConfig{AwaitSync: true, Listen: "127.0.0.1:0", DRAM: d,
			Guard: dataplane.NewTokenGuard(attackSecret), Net: netio.Config{Loops: 1}})
		if err != nil {
			t.Fatal(err)
		}
		an := &attackNode{node: nd, tier: d, addr: nd.Addr().String()}
		c.nodes = append(c.nodes, an)
		c.startAgent(an)
	}
	waitFor(t, 10*time.Second, "nodes active", func() bool { return countState(ctl, wire.NodeActive) == n })
	return c
}

// startAgent runs the node's agent (registration, heartbeats, mover).
func (c *attackCluster) startAgent(an *attackNode) {
	ctx, cancel := context.WithCancel(context.Background())
	an.cancel, an.done = cancel, make(chan struct{})
	mc := metaclient.New(c.addr, metaclient.Options{Secret: attackSecret, Logger: quietLog})
	done := an.done
	go func() {
		defer close(done)
		defer mc.Close()
		_ = agent.Run(ctx, agent.Config{Node: an.node, Addr: an.addr, Controller: mc})
	}()
}

// stopAgent stops the node's heartbeats and mover; its data plane serves on.
func (an *attackNode) stopAgent() {
	if an.cancel != nil {
		an.cancel()
		<-an.done
		an.cancel = nil
	}
}

func (c *attackCluster) node(addr string) *attackNode {
	for _, an := range c.nodes {
		if an.addr == addr {
			return an
		}
	}
	return nil
}

func nodeState(ctl *controller.Controller, addr string) wire.NodeState {
	for _, n := range ctl.Status().Nodes {
		if n.Addr == addr {
			return n.State
		}
	}
	return 0
}

// getRetrying reads key, retrying "unavailable" (a node still coming back)
// for a few seconds.
func getRetrying(ctx context.Context, j *Job, key string) ([]byte, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := j.Get(ctx, key)
		if !errors.Is(err, wire.ErrUnavailable) || time.Now().After(deadline) {
			return got, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAttackShrinkWhileAMemberIsDown: a member of a job's map misses
// heartbeats (declared dead, not lost) while another member leaves the
// map, and comes back. Under rendezvous hashing the leaving node's keys
// are the only ones that change owner, so the silent member's values keep
// their place; the leaving node's values whose new owner is the silent
// member wait for it (its data plane serves meanwhile here). Every value
// reads back once the map has settled.
func TestAttackShrinkWhileAMemberIsDown(t *testing.T) {
	c, ctx, j := victimCluster(t)
	members := j.Map().Nodes
	down, leaving := c.node(members[0].Addr), c.node(members[1].Addr)
	if down.node.JobValues(j.ID()) == 0 || leaving.node.JobValues(j.ID()) == 0 {
		t.Fatal("a member holds none of the job's values")
	}
	down.stopAgent()
	waitFor(t, 10*time.Second, "the silent member to be declared dead", func() bool {
		return nodeState(c.ctl, down.addr) == wire.NodeDead
	})
	if err := c.ctl.ShrinkJob(j.ID(), leaving.addr); err != nil {
		t.Fatal(err)
	}
	waitUntil(2*time.Second, func() bool { return len(jobNodes(c.ctl, j.ID())) == 2 })
	c.startAgent(down)
	waitFor(t, 10*time.Second, "the member to come back", func() bool { return nodeState(c.ctl, down.addr) == wire.NodeActive })
	waitFor(t, 30*time.Second, "the job's map to settle on 2 nodes", func() bool { return settled(c.ctl, j.ID(), 2) })
	if n := leaving.node.JobValues(j.ID()); n != 0 {
		t.Errorf("the node that left the map still holds %d of the job's values", n)
	}
	checkVictimValues(t, ctx, j, "a member missed the shrink")
}

// victimValues is how many values victimCluster writes.
const victimValues = 400

// victimCluster starts four nodes with fast heartbeats (dead after
// 400 ms, lost after a minute) and a job on three of them holding
// victimValues values of 512 bytes; ctx bounds the test.
func victimCluster(t *testing.T) (*attackCluster, context.Context, *Job) {
	t.Helper()
	c := newAttackCluster(t, 4, controller.Config{HeartbeatInterval: 50 * time.Millisecond,
		DeadAfter: 400 * time.Millisecond, DeadNodeGrace: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	s, err := Dial(ctx, c.addr, Config{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	j, err := s.RegisterJob(ctx, "victim", Hints{PeakMbps: 24000})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(j.Map().Nodes); n != 3 {
		t.Fatalf("job on %d nodes, want 3", n)
	}
	for i := 0; i < victimValues; i++ {
		k := fmt.Sprintf("k/%04d", i)
		if err := j.Put(ctx, k, content(k, 512)); err != nil {
			t.Fatal(err)
		}
	}
	return c, ctx, j
}

// checkVictimValues fails naming the victim's values that do not read
// back, after what happened.
func checkVictimValues(t *testing.T, ctx context.Context, j *Job, after string) {
	t.Helper()
	var missing []string
	for i := 0; i < victimValues; i++ {
		k := fmt.Sprintf("k/%04d", i)
		got, err := getRetrying(ctx, j, k)
		if err != nil || !bytes.Equal(got, content(k, 512)) {
			missing = append(missing, fmt.Sprintf("%s (%v)", k, err))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d acknowledged values do not read back after %s: %v",
			len(missing), victimValues, after, missing[:min(5, len(missing))])
	}
}
