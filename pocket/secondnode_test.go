package pocket

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// startMisadvertised runs a node listening on a port of its own whose agent
// advertises addr, another node's address (a copied --advertise); the
// channel gets its agent's Run error. The test's end stops it.
func startMisadvertised(t *testing.T, c *testCluster, addr string) <-chan error {
	t.Helper()
	nd, d := c.newNode(16 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	ended := make(chan error, 1)
	mc := metaclient.New(c.addr, metaclient.Options{Secret: testSecret, Logger: quietLog})
	go func() {
		defer close(done)
		defer mc.Close()
		ended <- agent.Run(ctx, agent.Config{Node: nd, Addr: addr, Controller: mc, Logger: quietLog})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		nd.Close()
		d.Close()
	})
	return ended
}

// TestSecondNodeAtALiveAddressKeepsItsValues: a second node started with
// a live node's advertised address registers (through its agent, which
// then stops with agent.ErrAddressInUse, and once more by hand) and is
// refused: it is not the node serving there. The job keeps the live node in its map, nothing is
// listed lost, and every value reads as written. Before, the controller
// took the second node's incarnation for a restart of the live one: the
// job lost the node at once and its keys read "lost" (a hostile review).
func TestSecondNodeAtALiveAddressKeepsItsValues(t *testing.T) {
	c, j, ctx := twoNodeJob(t, "second")
	victim := j.Map().Nodes[0].Addr
	want := map[string]string{}
	for i := range 40 {
		k := fmt.Sprint("k", i)
		want[k] = "v-" + k
		if err := j.Put(ctx, k, []byte(want[k])); err != nil {
			t.Fatal(err)
		}
	}
	before, err := c.ctl.GetMap(j.ID(), j.Token())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-startMisadvertised(t, c, victim):
		if !errors.Is(err, agent.ErrAddressInUse) || !strings.Contains(err.Error(), "refusing a second node at the same address") {
			t.Fatalf("the second node's agent ended with %v; want refused as a second node", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the second node's agent never saw its registration refused")
	}
	mc := metaclient.New(c.addr, metaclient.Options{Secret: testSecret, Logger: quietLog})
	defer mc.Close()
	_, err = mc.RegisterNode(ctx, wire.NodeRegister{Addr: victim, Incarnation: 7, Cores: 1,
		Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 20}}})
	if !errors.Is(err, wire.ErrExists) || !strings.Contains(err.Error(), victim) {
		t.Fatalf("a second registration at %s: %v; want refused, naming the address", victim, err)
	}
	after, err := c.ctl.GetMap(j.ID(), j.Token())
	if err != nil {
		t.Fatal(err)
	}
	if _, in := mapHas(after, victim); !in || len(after.Lost) != 0 || after.Epoch != before.Epoch {
		t.Fatalf("map after a second node claimed %s: %+v; want it unchanged (%+v)", victim, after, before)
	}
	j = openJob(t, c.addr, j)
	for k, v := range want {
		if got, err := j.Get(ctx, k); err != nil || string(got) != v {
			t.Errorf("%s: %q, %v; want %q", k, got, err, v)
		}
	}
}

// mapHas reports whether m lists addr among its nodes, and its state.
func mapHas(m *wire.PlacementMap, addr string) (wire.NodeState, bool) {
	for _, n := range m.Nodes {
		if n.Addr == addr {
			return n.State, true
		}
	}
	return 0, false
}
