package main

import (
	"strings"
	"testing"
	"time"

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
	ctl, addr := drainController(t, "0123456789abcdef-drain-lost-secret")
	tiers := []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, UsedBytes: 3 << 20, Mbps: 8000}}
	nodes := []string{closedAddr(t), closedAddr(t), closedAddr(t)}
	for i, n := range nodes {
		if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: n, Cores: 2, Tiers: tiers, Incarnation: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
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
		ctl.Heartbeat(&wire.Heartbeat{Addr: dead, Tiers: tiers, Metrics: []wire.Metric{{Name: wire.MetricDrainLeft, Value: 29}}})
		ctl.SetNodeState(dead, wire.NodeDead)
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
		ctl.Heartbeat(&wire.Heartbeat{Addr: done, Tiers: tiers, Metrics: []wire.Metric{{Name: wire.MetricDrainDone, Value: 1}}})
	})
	if code != 0 || !strings.Contains(out, "drained and gone") || !strings.Contains(out, "moved all its data") {
		t.Fatalf("drain that moved everything: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}
