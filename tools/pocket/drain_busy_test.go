package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/wire"
)

// TestDrainRetryBusy: a drain refused as busy (another node of its job
// drains) is refused at once without --retry-busy, and with it (as pocket
// spot orders its drains) is ordered again until the other drain has
// ended. Before, pocket spot's drains of two nodes of one job on one host
// had one refused, and that node left as a dead one, its values lost.
func TestDrainRetryBusy(t *testing.T) {
	ctl, addr := drainController(t, "0123456789abcdef-drain-busy-secret")
	nodes := []string{nettest.RefusedAddr(t), nettest.RefusedAddr(t), nettest.RefusedAddr(t)}
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
	if out, code := drain("--deadline", "1m", second); code != 1 || !strings.Contains(out, "of that job's map drains") ||
		!strings.Contains(out, "--retry-busy orders it again") {
		t.Fatalf("drain beside a running drain of the job's, without --retry-busy: exit %d, %q; want 1, refused", code, out)
	}
	go func() {
		time.Sleep(1500 * time.Millisecond)
		// The first node, its job table synced as an agent's is, reports
		// everything moved: the controller retires it.
		var since uint64
		for i := 0; i < 10; i++ {
			ack, err := ctl.Heartbeat(&wire.Heartbeat{Addr: first, Since: since, Metrics: []wire.Metric{{Name: controller.MetricDrainDone, Value: 1}}})
			if err != nil || ack.Rev == since && !ack.More {
				break
			}
			since = ack.Rev
		}
	}()
	t0 := time.Now()
	out, code := drain("--deadline", "1m", "--retry-busy", second)
	if code != 0 || !strings.Contains(out, "not yet (") || !strings.Contains(out, "ordering it again each second") || time.Since(t0) < time.Second {
		t.Fatalf("drain with --retry-busy beside a running drain: exit %d after %v, %q; want 0 once the first drain ended",
			code, time.Since(t0).Round(time.Millisecond), out)
	}
	if out, code := drain("--deadline", "6s", "--retry-busy", nodes[2]); code != 1 || !strings.Contains(out, "left of its deadline") {
		t.Fatalf("drain with --retry-busy beside a running drain, its deadline short: exit %d, %q; want 1 within a second or two", code, out)
	}
	if out, code := drain("--deadline", "4s", "--retry-busy", nodes[2]); code != 1 || !strings.Contains(out, "leaves less than 5s to order it again") {
		t.Fatalf("drain with --retry-busy and a deadline too short to retry: exit %d, %q; want 1, saying so", code, out)
	}
}

// TestRetryBusyRidesOutAnUnreachableController: once a drain was refused
// as busy, --retry-busy orders it again also after the controller could
// not be reached (restarting, failing over); an interrupt ends the wait
// saying the node is not draining. Before, a controller restarted while
// the command waited ended it with most of its deadline left (a hostile
// trial).
func TestRetryBusyRidesOutAnUnreachableController(t *testing.T) {
	busy := &wire.Error{Code: wire.CodeBusy, Msg: "cannot drain node X now"}
	down := fmt.Errorf("metaclient: drain 127.0.0.1:1: %w", syscall.ECONNREFUSED)
	answers := []error{busy, down, down, nil}
	calls := 0
	order := func(left time.Duration) (time.Duration, error) {
		err := answers[calls]
		calls++
		return left, err
	}
	out, _ := stderrOf(t, func() int {
		d, err := requestDrain(context.Background(), true, order, time.Minute)
		if err != nil || d <= 50*time.Second || calls != 4 {
			t.Errorf("requestDrain = %v, %v after %d orders; want the drain ordered at the fourth, with its deadline left", d, err, calls)
		}
		return 0
	})
	if !strings.Contains(out, "not yet (") {
		t.Errorf("stderr %q", out)
	}
	// A first answer that is not busy is not retried.
	calls, answers = 0, []error{down, nil}
	if _, err := requestDrain(context.Background(), true, order, time.Minute); !errors.Is(err, syscall.ECONNREFUSED) || calls != 1 {
		t.Errorf("a first order that did not reach the controller: %v after %d orders", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls, answers = 0, []error{busy, busy, busy}
	time.AfterFunc(300*time.Millisecond, cancel)
	stderrOf(t, func() int {
		if _, err := requestDrain(ctx, true, order, time.Minute); err == nil || !strings.Contains(err.Error(), "interrupted by a signal before the drain was ordered") {
			t.Errorf("interrupted wait: %v", err)
		}
		return 0
	})
}
