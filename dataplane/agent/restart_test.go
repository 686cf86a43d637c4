package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// restartCluster is one node heartbeating through the real agent to a
// controller at a fixed address that the test kills (Close, no cleanup:
// the store keeps what the last write saved) and starts again, with or
// without its state, while the node keeps running.
type restartCluster struct {
	t    *testing.T
	addr string
	ctl  *controller.Controller
	node *dataplane.Node
	dram *dataplane.DRAM
}

func newRestartCluster(t *testing.T, cfg controller.Config) *restartCluster {
	t.Helper()
	r := &restartCluster{t: t, addr: "127.0.0.1:0"}
	r.start(cfg)
	d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d,
		Guard: dataplane.NewTokenGuard(testSecret), Net: netio.Config{Loops: 1}, Logger: quietLog})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	r.node, r.dram = n, d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	mc := metaclient.New(r.addr, metaclient.Options{Secret: testSecret, Logger: quietLog})
	go func() {
		defer close(done)
		defer mc.Close()
		_ = Run(ctx, Config{Node: n, Addr: n.Addr().String(), Controller: mc, Logger: quietLog})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		n.Close()
		d.Close()
		r.ctl.Close()
	})
	r.waitActive()
	return r
}

// start starts a controller at r.addr (a new port the first time).
func (r *restartCluster) start(cfg controller.Config) {
	r.t.Helper()
	cfg.Secret, cfg.Logger = testSecret, quietLog
	cfg.HeartbeatInterval = 50 * time.Millisecond
	if cfg.DeadAfter == 0 {
		cfg.DeadAfter = 2 * time.Second
	}
	ctl, err := controller.New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	a, err := ctl.Listen(r.addr)
	if err != nil {
		ctl.Close()
		r.t.Fatal(err)
	}
	r.ctl, r.addr = ctl, a.String()
}

// restart kills the controller and starts a new one at the same address.
func (r *restartCluster) restart(cfg controller.Config) {
	r.t.Helper()
	r.ctl.Close()
	r.start(cfg)
}

// waitActive waits until the controller lists the node active.
func (r *restartCluster) waitActive() {
	r.t.Helper()
	r.waitFor("the node active", func() bool {
		st := r.ctl.Status()
		return len(st.Nodes) == 1 && st.Nodes[0].State == wire.NodeActive
	})
}

func (r *restartCluster) waitFor(what string, ok func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// synced reports whether the node's job table is at the controller's
// current run (a heartbeat after the restart completed its snapshot).
func (r *restartCluster) synced(after uint64) bool {
	since, snap, _ := r.node.JobSync()
	return since > after && snap == 0
}

// TestControllerRestartKeepsNodeJobs (issue 12 items 1, 2): a controller
// killed and restarted on its store while the node runs: the node is
// accepted back without registering again, its job table and data stay
// (past the orphan grace too), the old token reads the old value and
// deregisters the job (which drops the data), and a new job registers.
func TestControllerRestartKeepsNodeJobs(t *testing.T) {
	store := state.NewMemory()
	cfg := controller.Config{Store: store, OrphanGrace: 200 * time.Millisecond}
	r := newRestartCluster(t, cfg)
	pm, err := r.ctl.RegisterJob("sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	// The node learns of the job at its next heartbeat: until then a put
	// is refused as of an epoch it has not heard of (under load, CI once
	// put before it).
	r.waitFor("the node to know the job", func() bool {
		err = op(t, r.node, wire.OpPut, pm.Job, pm.Token, pm.Epoch, "k")
		return !errors.Is(err, wire.ErrStaleEpoch)
	})
	if err != nil {
		t.Fatal(err)
	}
	since, _, _ := r.node.JobSync()

	r.restart(cfg)
	r.waitFor("the node's table synced with the new run", func() bool { return r.synced(since) })
	time.Sleep(4 * cfg.OrphanGrace) // a known job is never an orphan
	if err := op(t, r.node, wire.OpGet, pm.Job, pm.Token, pm.Epoch, "k"); err != nil {
		t.Fatalf("old token's get after the restart: %v", err)
	}
	if h := r.node.HeldJobs(wire.MaxHeldJobs); len(h) != 0 {
		t.Fatalf("node holds orphans after a restart on the state: %v", h)
	}
	if n := r.ctl.OrphansDropped(); n != 0 {
		t.Fatalf("%d drop orders after a restart on the state", n)
	}
	next, err := r.ctl.RegisterJob("sort", wire.JobHints{})
	if err != nil || next.Job == pm.Job {
		t.Fatalf("new job after the restart: %+v %v", next, err)
	}
	if _, err := r.ctl.DeregisterJob(context.Background(), pm.Job, pm.Token); err != nil {
		t.Fatalf("deregister with the old token: %v", err)
	}
	if u := r.dram.JobUsage([]byte(pm.Job)); u != 0 {
		t.Fatalf("deregistered job still holds %d bytes", u)
	}
}

// TestControllerLostStateOrphans (issue 12 item 2): a controller restarted
// without its state does not know the node's job: the node refuses it at
// once but keeps its data until the orphan grace has passed, then drops
// it on the controller's order, which is counted.
func TestControllerLostStateOrphans(t *testing.T) {
	r := newRestartCluster(t, controller.Config{})
	pm, err := r.ctl.RegisterJob("sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	// The node learns of the job at its next heartbeat: until then a put
	// is refused as of an epoch it has not heard of (under load, CI once
	// put before it).
	r.waitFor("the node to know the job", func() bool {
		err = op(t, r.node, wire.OpPut, pm.Job, pm.Token, pm.Epoch, "k")
		return !errors.Is(err, wire.ErrStaleEpoch)
	})
	if err != nil {
		t.Fatal(err)
	}
	since, _, _ := r.node.JobSync()
	const grace = 500 * time.Millisecond
	r.restart(controller.Config{OrphanGrace: grace})
	start := time.Now()
	r.waitFor("the node's table synced with the new run", func() bool { return r.synced(since) })
	if err := op(t, r.node, wire.OpGet, pm.Job, pm.Token, pm.Epoch, "k"); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("unknown job's get: %v; want refused", err)
	}
	if u := r.dram.JobUsage([]byte(pm.Job)); u == 0 && time.Since(start) < grace {
		t.Fatal("the orphan's data was dropped before the grace")
	}
	r.waitFor("the orphan dropped", func() bool { return r.dram.JobUsage([]byte(pm.Job)) == 0 })
	if time.Since(start) < grace {
		t.Fatalf("dropped after %v, before the grace %v", time.Since(start), grace)
	}
	if n := r.ctl.OrphansDropped(); n != 1 {
		t.Fatalf("OrphansDropped = %d; want 1", n)
	}
}
