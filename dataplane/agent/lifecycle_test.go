package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// lifeController starts a controller on loopback with a 50 ms heartbeat;
// the test's end closes it.
func lifeController(t *testing.T) (*controller.Controller, string) {
	t.Helper()
	ctl, err := controller.New(controller.Config{Secret: testSecret, HeartbeatInterval: 50 * time.Millisecond,
		DeadAfter: 2 * time.Second, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	a, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		ctl.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	return ctl, a.String()
}

// runAgent runs the agent of n, advertising addr and 1000 Mb/s, with the
// controller at ctl; the channel gets Run's error. The test's end stops it (before the
// node closes: register runAgent after guardedNode).
func runAgent(t *testing.T, ctl string, n *dataplane.Node, addr string) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	mc := metaclient.New(ctl, metaclient.Options{Secret: testSecret, Logger: quietLog})
	done := make(chan error, 1)
	go func() {
		err := Run(ctx, Config{Node: n, Addr: addr, Controller: mc, Logger: quietLog,
			Mbps: map[dataplane.Kind]float64{dataplane.KindDRAM: 1000}})
		mc.Close()
		done <- err
	}()
	ended := make(chan error, 1)
	go func() { err := <-done; ended <- err; close(ended) }()
	t.Cleanup(func() {
		cancel()
		<-ended
	})
	return ended
}

// awaitEnd returns Run's error, failing the test if it has not ended
// within limit.
func awaitEnd(t *testing.T, what string, ended <-chan error, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-ended:
		return err
	case <-time.After(limit):
		t.Fatalf("%s: the agent still runs after %v", what, limit)
		return nil
	}
}

// stillRuns fails the test if Run has ended.
func stillRuns(t *testing.T, what string, ended <-chan error) {
	t.Helper()
	select {
	case err := <-ended:
		t.Fatalf("%s: the agent ended: %v", what, err)
	default:
	}
}

// activeNodes is the number of nodes the controller lists as active, and
// whether addr is one of them.
func activeNodes(ctl *controller.Controller, addr string) (int, bool) {
	n, in := 0, false
	for _, ns := range ctl.Status().Nodes {
		if ns.State == wire.NodeActive {
			n++
			in = in || ns.Addr == addr
		}
	}
	return n, in
}

// TestRetiredNodeRunEnds: a node drained with values on it moves them to
// the job's other node and, once the controller has retired it, its
// agent's Run ends with ErrRetired (wrapping the controller's
// CodeDraining refusal); the other node's agent runs on, and the values
// read from it. Before, Run kept retrying the refused registration and
// the retired node came back as an active node a minute later.
func TestRetiredNodeRunEnds(t *testing.T) {
	ctl, addr := lifeController(t)
	na, _ := guardedNode(t, 16<<20, 1)
	nb, _ := guardedNode(t, 16<<20, 1)
	endA := runAgent(t, addr, na, na.Addr().String())
	endB := runAgent(t, addr, nb, nb.Addr().String())
	waitFor(t, "two active nodes", func() bool { n, _ := activeNodes(ctl, ""); return n == 2 })
	m, err := ctl.RegisterJob("life", wire.JobHints{PeakMbps: 2000})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("register: %+v %v", m, err)
	}
	waitFor(t, "the job on node a", func() bool {
		return op(t, na, wire.OpPut, m.Job, m.Token, m.Epoch, "probe") == nil
	})
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
		if err := op(t, na, wire.OpPut, m.Job, m.Token, m.Epoch, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ctl.Drain(na.Addr().String(), time.Minute); err != nil {
		t.Fatal(err)
	}
	err = awaitEnd(t, "a drained node", endA, 20*time.Second)
	if !errors.Is(err, ErrRetired) || !errors.Is(err, wire.ErrDraining) {
		t.Fatalf("the drained node's Run ended with %v; want ErrRetired wrapping the controller's refusal", err)
	}
	stillRuns(t, "the other node", endB)
	if n, in := activeNodes(ctl, nb.Addr().String()); n != 1 || !in {
		t.Fatalf("after the drain: %d active nodes (b among them: %v); want b alone", n, in)
	}
	// The map without a is handed out once b has confirmed its epoch.
	waitFor(t, "every value on the remaining node", func() bool {
		m2, err := ctl.GetMap(m.Job, m.Token)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range append(keys, "probe") {
			if op(t, nb, wire.OpGet, m.Job, m.Token, m2.Epoch, k) != nil {
				return false
			}
		}
		return true
	})
}

// TestSecondNodeAtAnAddressRunEnds: a node advertising the address of a
// live node is refused (the live node proves another incarnation there),
// and its agent's Run ends with ErrAddressInUse wrapping the controller's
// CodeExists refusal, at its first registration; the live node stays
// active. Before, Run retried once a second forever, and the controller
// logged a warning for every attempt.
func TestSecondNodeAtAnAddressRunEnds(t *testing.T) {
	ctl, addr := lifeController(t)
	live, _ := guardedNode(t, 16<<20, 1)
	endLive := runAgent(t, addr, live, live.Addr().String())
	waitFor(t, "the live node active", func() bool { _, in := activeNodes(ctl, live.Addr().String()); return in })
	second, _ := guardedNode(t, 16<<20, 1)
	err := awaitEnd(t, "a second node at a live node's address", runAgent(t, addr, second, live.Addr().String()), 10*time.Second)
	if !errors.Is(err, ErrAddressInUse) || !errors.Is(err, wire.ErrExists) {
		t.Fatalf("the second node's Run ended with %v; want ErrAddressInUse wrapping the controller's refusal", err)
	}
	stillRuns(t, "the live node", endLive)
	if n, in := activeNodes(ctl, live.Addr().String()); n != 1 || !in {
		t.Fatalf("%d active nodes (the live one among them: %v); want the live one alone", n, in)
	}
}

// TestUnconfirmedRestartKeepsRetrying: a node registering at a known
// address with another incarnation, where the controller cannot reach a
// node to confirm the restart (CodeUnavailable), is not refused for good:
// its agent keeps retrying (a restarted node behind a passing fault must
// get in once it is reached).
func TestUnconfirmedRestartKeepsRetrying(t *testing.T) {
	ctl, addr := lifeController(t)
	gone := nettest.RefusedAddr(t) // nobody serves here
	if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: gone, Incarnation: 5, Cores: 1,
		Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 20}}}); err != nil {
		t.Fatal(err)
	}
	n, _ := guardedNode(t, 16<<20, 1)
	end := runAgent(t, addr, n, gone)
	time.Sleep(2500 * time.Millisecond) // two or three registration attempts, 1 s apart
	stillRuns(t, "a node whose restart cannot be confirmed", end)
}
