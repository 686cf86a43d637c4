package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/wire"
)

// TestDrainCommandSaysWhenValuesWereLost: a node that dies while it
// drains leaves the cluster with values unmoved; pocket node drain says
// so and exits 1. A drain that ends with everything moved exits 0 and says
// how it ended. Before, both printed "drained and gone", exit 0 (a new
// user's trial: 17 of 20 values then answered lost). A new process at the
// address of the node that died is taken at once (before: refused for a
// minute, "drained and retired").
func TestDrainCommandSaysWhenValuesWereLost(t *testing.T) {
	// Nodes die by silence here (DeadAfter 400 ms; a negative grace gives
	// active nodes no lease, a draining node's lease is DeadAfter): the
	// test's heartbeats keep the nodes alive that should stay so.
	ctl, addr := drainControllerWith(t, "0123456789abcdef-drain-lost-secret", controller.Config{
		HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 400 * time.Millisecond, DeadNodeGrace: -1, ForgetAfter: time.Hour})
	tiers := []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, UsedBytes: 3 << 20, Mbps: 8000}}
	nodes := []string{nettest.RefusedAddr(t), nettest.RefusedAddr(t), nettest.RefusedAddr(t)}
	for i, n := range nodes {
		if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: n, Cores: 2, Tiers: tiers, Incarnation: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	var alive sync.Map // node -> the metrics its heartbeats carry
	for _, n := range nodes {
		alive.Store(n, []wire.Metric(nil))
	}
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		for {
			alive.Range(func(k, v any) bool {
				ctl.Heartbeat(&wire.Heartbeat{Addr: k.(string), Tiers: tiers, Metrics: v.([]wire.Metric)})
				return true
			})
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-beating }()
	drain := func(node string, then func()) (string, string, int) {
		t.Helper()
		go func() {
			for i := 0; i < 500; i++ {
				if n, ok := findNode(statusView(ctl.Status()), node); ok && n.State == wire.NodeDraining.String() {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			then()
		}()
		var out string
		errOut, code := stderrOf(t, func() int {
			var code int
			out, code = stdoutOf(t, func() int {
				return runDrain([]string{"--insecure", "--controller", addr, "--deadline", "20s", node})
			})
			return code
		})
		return out, errOut, code
	}
	dead := nodes[0]
	out, errOut, code := drain(dead, func() {
		alive.Store(dead, []wire.Metric{{Name: wire.MetricDrainLeft, Value: 29}})
		time.Sleep(200 * time.Millisecond)
		alive.Delete(dead) // it dies
	})
	if code != 1 || !strings.Contains(errOut, "died while draining") || !strings.Contains(errOut, "lost") ||
		strings.Contains(out, "drained and gone") {
		t.Fatalf("drain of a node that died: exit %d, stdout %q, stderr %q; want 1, saying it died and values are lost", code, out, errOut)
	}
	ack, err := ctl.RegisterNode(&wire.NodeRegister{Addr: dead, Cores: 2, Tiers: tiers, Incarnation: 99})
	if err != nil || !ack.Known {
		t.Fatalf("a new process where a node died draining: %+v, %v; want it taken", ack, err)
	}

	done := nodes[1]
	out, errOut, code = drain(done, func() {
		alive.Store(done, []wire.Metric{{Name: wire.MetricDrainDone, Value: 1}})
	})
	if code != 0 || !strings.Contains(out, "drained and gone") || !strings.Contains(out, "moved all its data") {
		t.Fatalf("drain that moved everything: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
