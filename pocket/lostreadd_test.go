package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestNoSpuriousLostWhileReaddedNodeTakesDrain: a job's node A restarts at
// its address (the job lists A as lost), then A is back in the job's map
// and the job's other node B drains, while clients put and get 3 MiB
// (chunked) values and read values put before the drain. No get may answer
// ErrLost for a value that exists: every key that answered lost is read
// again afterwards.
//
//   - adopted: B alone carries the job, so nothing refills it; the drain of
//     B, its last node, gives the job A again (adoptCandidateLocked takes a
//     lost node that restarted since), active in the map with Since
//     wire.SinceNotYet. On the code before the fix the SDK took A for the
//     old owner of the keys it owns under the whole map, asked A alone,
//     and its "not found" (the value still on B) became ErrLost, since the
//     lost placement {B, lost A} is the map's {B, A}: dozens of values
//     read lost, then read back.
//   - refilled: B alone does not carry the job, so A joins again (refill)
//     before B drains.
func TestNoSpuriousLostWhileReaddedNodeTakesDrain(t *testing.T) {
	t.Run("refilled", func(t *testing.T) { testReaddedDrain(t, false) })
	t.Run("adopted", func(t *testing.T) { testReaddedDrain(t, true) })
}

// nodeBytes is the capacity of each node of testReaddedDrain.
const nodeBytes = 1 << 30

func testReaddedDrain(t *testing.T, adopt bool) {
	pol := controller.Policy{}
	hints := Hints{Lambdas: 20}
	if adopt {
		// One node carries the job's allotment: the job lost a node is not
		// refilled, so the drain of its last node adopts the restarted one.
		pol, hints = controller.Policy{NodeMbps: 1e6}, Hints{}
	}
	c := &testCluster{t: t}
	ctl, err := controller.New(controller.Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 500 * time.Millisecond, DeadNodeGrace: time.Minute, Logger: quietLog, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	laddr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.ctl, c.addr = ctl, laddr.String()
	for range 2 {
		nd, d := c.newNode(nodeBytes)
		c.runAgent(nd, d, nd.Addr().String())
	}
	c.awaitActive(2)
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
			n.tier.Close()
		}
		c.ctl.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "readd", hints)
	if err != nil || len(j.Map().Nodes) != 2 {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	victim := j.Map().Nodes[0].Addr
	other := j.Map().Nodes[1].Addr

	// A restarts empty at its address: the job loses it (lost list) and
	// the controller takes it for a new node.
	c.nodeAt(victim).stop()
	{
		d, err := dataplane.NewDRAM(nodeBytes, dataplane.DRAMOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nd, err := dataplane.NewNode(dataplane.NodeConfig{AwaitSync: true, Listen: victim, DRAM: d,
			Guard: dataplane.NewTokenGuard(testSecret), Net: netio.Config{Loops: 1}})
		if err != nil {
			t.Fatal(err)
		}
		c.runAgent(nd, d, victim)
	}
	if !restartSeen(t, c, j, victim, 20*time.Second) {
		t.Fatalf("%s not lost and active again", victim)
	}
	if err := j.refresh(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("after restart: %+v", j.Map())

	const writers, keysPer, size, preKeys = 4, 3, 3 << 20, 60
	var stop atomic.Bool
	var mu sync.Mutex
	lostKeys := map[string]string{}
	otherErrs := 0
	var ops atomic.Int64
	var wg sync.WaitGroup
	// check reads key and files a lost answer, another error or a wrong
	// value.
	check := func(key string, val []byte) {
		got, err := j.Get(ctx, key)
		ops.Add(1)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, ErrLost):
			lostKeys[key] = fmt.Sprintf("%v (map epoch %d)", err, j.Map().Epoch)
		case err != nil:
			otherErrs++
			t.Logf("get %s: %v", key, err)
		case !bytes.Equal(got, val):
			t.Errorf("get %s: wrong value", key)
		}
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				key := fmt.Sprintf("w%d-k%d", w, n%keysPer)
				val := bytes.Repeat([]byte{byte(w*31 + n)}, size)
				if err := j.Put(ctx, key, val); err != nil {
					mu.Lock()
					otherErrs++
					mu.Unlock()
					t.Logf("put %s: %v", key, err)
					continue
				}
				check(key, val)
			}
		}()
	}
	// Values put before the drain, all on B, read during it.
	pre := map[string][]byte{}
	for i := range preKeys {
		key := fmt.Sprintf("pre-%d", i)
		pre[key] = bytes.Repeat([]byte{byte(i)}, size)
		if err := j.Put(ctx, key, pre[key]); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("pre-values put; map %+v", j.Map())
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			for key, val := range pre {
				check(key, val)
			}
		}
	}()
	time.Sleep(3 * time.Second)
	t.Logf("drain; map %+v", j.Map())
	if _, err := c.ctl.Drain(other, time.Minute); err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatal(err)
	}
	// The map the controller hands out during the drain has A in it (the
	// drain took it in, or a refill did before).
	waitFor(t, 10*time.Second, "the restarted node in the map", func() bool {
		m, err := c.ctl.GetMap(j.ID(), j.Token())
		return err == nil && slices.ContainsFunc(m.Nodes, func(n wire.MapNode) bool { return n.Addr == victim })
	})
	waitFor(t, 60*time.Second, "drain over", func() bool {
		m, err := c.ctl.GetMap(j.ID(), j.Token())
		return err == nil && len(m.Nodes) == 1 && m.Nodes[0].Addr == victim
	})
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()
	t.Logf("final map: %+v; %d put/get rounds, %d other errors", j.Map(), ops.Load(), otherErrs)
	spurious := 0
	for k, e := range lostKeys {
		if _, err := j.Get(ctx, k); err == nil {
			spurious++
			t.Errorf("get %s answered lost, then read back: %s", k, e)
		} else {
			t.Logf("get %s lost and still %v", k, err)
		}
	}
	t.Logf("%d keys answered lost, %d of them read back", len(lostKeys), spurious)
	if ops.Load() == 0 {
		t.Fatal("no rounds")
	}
}

// TestNodeTakingADrainedShareIsNoOldOwner: a node the controller gave a
// job to take its draining last node's share is active in the map with
// Since wire.SinceNotYet, and holds none of the values it owns until the
// drainer moved them, so every key's old owner is the draining node. On
// the old priorSet the node was its own keys' old owner: a read asked it
// alone and answered "not found" for values still on the draining node.
func TestNodeTakingADrainedShareIsNoOldOwner(t *testing.T) {
	a, b := "10.0.0.1:1", "10.0.0.2:1"
	j := &Job{}
	j.setMap(Map{Job: "j", Epoch: 5, Nodes: []Node{{Addr: b, Weight: 1}, {Addr: a, Weight: 1, Since: wire.SinceNotYet}},
		Draining: map[string]bool{b: true}})
	for i := range 200 {
		if tg := j.route(fmt.Appendf(nil, "key-%d", i), 0); tg.addr != a || tg.old != b {
			t.Fatalf("key-%d routes to %s, old owner %q; want %s, old owner %s", i, tg.addr, tg.old, a, b)
		}
	}
}
