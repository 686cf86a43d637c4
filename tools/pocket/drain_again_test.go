package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/wire"
)

// TestDrainAgainPastItsDeadline: `pocket node drain` of a node whose drain
// is held past its deadline (values with no room) says so, not "its data
// moves within 0s" (a new user's trial), and progress figures say they are
// as of the node's last pass.
func TestDrainAgainPastItsDeadline(t *testing.T) {
	ctl, addr := drainController(t, "0123456789abcdef-drain-again-secret")
	nodes := []string{nettest.RefusedAddr(t), nettest.RefusedAddr(t)}
	for _, n := range nodes {
		if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: n, Cores: 2,
			Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000}}}); err != nil {
			t.Fatal(err)
		}
	}
	a := nodes[0]
	drain := func(args ...string) (string, int) {
		return stdoutOf(t, func() int {
			return runDrain(append([]string{"--insecure", "--controller", addr, "--wait=false"}, args...))
		})
	}
	if out, code := drain("--deadline", "1s", a); code != 0 || !strings.Contains(out, "moves within") {
		t.Fatalf("first drain: exit %d, %q", code, out)
	}
	beat := func() {
		if _, err := ctl.Heartbeat(&wire.Heartbeat{Addr: a, Metrics: []wire.Metric{{Name: wire.MetricDrainDone, Value: 0},
			{Name: wire.MetricDrainLeft, Value: 5}, {Name: wire.MetricDrainNoRoom, Value: 5}}}); err != nil {
			t.Fatal(err)
		}
	}
	beat()
	time.Sleep(1500 * time.Millisecond)
	beat()
	out, code := drain("--deadline", "60s", a)
	if code != 0 || !strings.Contains(out, "past its deadline") || strings.Contains(out, "within 0s") {
		t.Fatalf("drain ordered again past its deadline: exit %d, %q", code, out)
	}
	st := ctl.Status()
	for _, n := range statusView(st).Nodes {
		if n.Addr == a {
			if note := drainNote(n); !strings.Contains(note, "5 value(s) left to move at its last pass") {
				t.Fatalf("status note of the held drain: %q", note)
			}
			return
		}
	}
	t.Fatalf("node %s not in the status", a)
}
