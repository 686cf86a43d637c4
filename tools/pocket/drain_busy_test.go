package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/wire"
)

// TestDrainRetryBusy: a drain refused as busy (another node of its job
// drains) is refused at once without --retry-busy, and with it (as pocket
// spot orders its drains) is ordered again until the other drain has
// ended. Before, pocket spot's drains of two nodes of one job on one host
// had one refused, and that node left as a dead one, its values lost.
func TestDrainRetryBusy(t *testing.T) {
	ctl, addr := drainController(t, "0123456789abcdef-drain-busy-secret")
	nodes := []string{closedAddr(t), closedAddr(t), closedAddr(t)}
	for _, n := range nodes {
		if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: n, Cores: 2,
			Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 1000}}}); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := ctl.RegisterJob("spread", wire.JobHints{PeakMbps: 3000}); err != nil || len(m.Nodes) != 3 {
		t.Fatalf("job on %d of 3 nodes: %v", len(m.Nodes), err)
	}
	first, second := nodes[0], nodes[1]
	drain := func(args ...string) (string, int) {
		return stderrOf(t, func() int {
			return runDrain(append([]string{"--insecure", "--controller", addr, "--wait=false"}, args...))
		})
	}
	if out, code := drain("--deadline", "1m", first); code != 0 {
		t.Fatalf("first drain: exit %d, %q", code, out)
	}
	if out, code := drain("--deadline", "1m", second); code != 1 || !strings.Contains(out, "of that job's map drains") {
		t.Fatalf("drain beside a running drain of the job's, without --retry-busy: exit %d, %q; want 1, refused", code, out)
	}
	go func() {
		time.Sleep(1500 * time.Millisecond)
		// The first node reports everything moved: the controller retires it.
		_, _ = ctl.Heartbeat(&wire.Heartbeat{Addr: first, Metrics: []wire.Metric{{Name: controller.MetricDrainDone, Value: 1}}})
	}()
	t0 := time.Now()
	out, code := drain("--deadline", "1m", "--retry-busy", second)
	if code != 0 || !strings.Contains(out, "ordering it again each second") || time.Since(t0) < time.Second {
		t.Fatalf("drain with --retry-busy beside a running drain: exit %d after %v, %q; want 0 once the first drain ended",
			code, time.Since(t0).Round(time.Millisecond), out)
	}
	if out, code := drain("--deadline", "6s", "--retry-busy", nodes[2]); code != 1 {
		t.Fatalf("drain with --retry-busy beside a running drain, its deadline short: exit %d, %q; want 1 within a second or two", code, out)
	}
}
