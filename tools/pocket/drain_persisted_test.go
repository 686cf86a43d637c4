package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// stderrOf runs f with os.Stderr sent to a pipe and returns what it wrote.
func stderrOf(t *testing.T, f func() int) (string, int) {
	t.Helper()
	return captured(t, &os.Stderr, f)
}

// TestDrainCommandPersistedValues: `pocket node drain` of a node that keeps
// persist-after-job values of ended jobs fails (exit 1) with the
// controller's refusal, which names the jobs and bytes and what to do; with
// --discard-persisted it drains and says the values go; waiting on a drain
// held for such values shows why, and the error at the limit says it.
// Before, the drain went ahead and the node left with the values. The
// nodes are registrations only, heartbeating when the test says.
func TestDrainCommandPersistedValues(t *testing.T) {
	ctl, addr := drainController(t, "0123456789abcdef-drain-persisted-secret")
	keep := []wire.HeldJob{{Job: "old-3", Bytes: 3 << 20}}
	beat := func(node string, keep []wire.HeldJob, metrics []wire.Metric) {
		t.Helper()
		hb := &wire.Heartbeat{Addr: node, Persisted: keep, PersistedJobs: uint64(len(keep)), Metrics: metrics,
			Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, UsedBytes: 3 << 20, Mbps: 8000}}}
		for _, h := range keep {
			hb.PersistedBytes += h.Bytes
		}
		if _, err := ctl.Heartbeat(hb); err != nil {
			t.Fatal(err)
		}
	}
	nodes := []string{nettest.RefusedAddr(t), nettest.RefusedAddr(t), nettest.RefusedAddr(t)}
	for _, n := range nodes {
		ack, err := ctl.RegisterNode(&wire.NodeRegister{Addr: n, Cores: 2,
			Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000}}})
		if err != nil || ack.State != wire.NodeActive {
			t.Fatalf("register %s: %+v %v", n, ack, err)
		}
	}
	a, b := nodes[0], nodes[1]
	beat(a, keep, nil)
	drain := func(args ...string) (string, string, int) {
		var out string
		errOut, code := stderrOf(t, func() int {
			var code int
			out, code = stdoutOf(t, func() int {
				return runDrain(append([]string{"--insecure", "--controller", addr, "--wait=false"}, args...))
			})
			return code
		})
		return out, errOut, code
	}
	out, errOut, code := drain(a)
	if code != 1 || !strings.Contains(errOut, "old-3 3MiB") || !strings.Contains(errOut, "--discard-persisted") ||
		!strings.Contains(errOut, "pocket rm") || strings.Contains(out, "draining") {
		t.Fatalf("drain of a node keeping persisted values: exit %d, stdout %q, stderr %q; want 1 and the refusal", code, out, errOut)
	}
	// The refusal names the node once and the flag, not the Go option
	// (before: "drain ADDR: conflict: node ADDR ... (DrainOptions.DiscardPersisted)").
	if strings.Count(errOut, a) != 1 || strings.Contains(errOut, "DrainOptions") {
		t.Errorf("drain refusal %q: want the node named once and no Go option name", errOut)
	}
	out, errOut, code = drain("--discard-persisted", a)
	if code != 0 || !strings.Contains(out, "destroyed when it leaves") || !strings.Contains(out, "it leaves within") {
		t.Fatalf("drain --discard-persisted: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A drain that finds such values at its end waits, and says why.
	if out, errOut, code := drain(b); code != 0 {
		t.Fatalf("drain of a node keeping nothing: exit %d: %s %s", code, out, errOut)
	}
	beat(b, keep, []wire.Metric{{Name: wire.MetricDrainDone, Value: 1}})
	var werr error
	out, _ = stdoutOf(t, func() int {
		w := drainWait{node: b, deadline: time.Now().Add(time.Hour), limit: time.Minute}
		_, werr = w.await(context.Background(), metaclient.New(addr, metaclient.Options{}))
		return 0
	})
	var held *heldError
	if !errors.As(werr, &held) || !strings.Contains(werr.Error(), "--discard-persisted") ||
		!strings.Contains(out, "keeps persist-after-job values of 1 ended job(s), 3MiB: old-3 3MiB") {
		t.Fatalf("waiting on a held drain: stdout %q, err %v; want the reason in both, held", out, werr)
	}
}

// TestDrainCommandHeldExitStatus: pocket node drain of a node that gets
// persist-after-job values of an ended job while it drains says so with
// the job as soon as the controller reports them, and when the drain is
// held (the rest moved) stops waiting with exit status 3 and a message
// saying the drain goes on, how to release it and how to watch it; its
// first line promises no departure the values would break. Before, it
// printed "it leaves within 5s", then after the deadline plus 10 s exited
// 1 with "still listed ... context deadline exceeded" while the drain went
// on: a script read a failed drain. A progress line shows no bytes used
// before the node's first drain report (before: "draining: 0B used", then
// the real figure).
func TestDrainCommandHeldExitStatus(t *testing.T) {
	ctl, addr := drainController(t, "0123456789abcdef-drain-held-secret")
	tiers := []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, UsedBytes: 3 << 20, Mbps: 8000}}
	nodes := []string{nettest.RefusedAddr(t), nettest.RefusedAddr(t)}
	for _, n := range nodes {
		if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: n, Cores: 2, Tiers: tiers}); err != nil {
			t.Fatal(err)
		}
	}
	a := nodes[0]
	beats := make(chan error, 1)
	go func() {
		// Once the drain is ordered, the node reports an ended job's
		// persisted values, then that all its other data moved.
		for i := 0; i < 500; i++ {
			if n, ok := findNode(statusView(ctl.Status()), a); ok && n.State == wire.NodeDraining.String() {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		keep := []wire.HeldJob{{Job: "old-3", Bytes: 3 << 20}}
		hb := &wire.Heartbeat{Addr: a, Tiers: tiers, Persisted: keep, PersistedJobs: 1, PersistedBytes: 3 << 20,
			Metrics: []wire.Metric{{Name: wire.MetricDrainLeft, Value: 7}}}
		if _, err := ctl.Heartbeat(hb); err != nil {
			beats <- err
			return
		}
		time.Sleep(300 * time.Millisecond)
		hb.Metrics = []wire.Metric{{Name: wire.MetricDrainDone, Value: 1}}
		_, err := ctl.Heartbeat(hb)
		beats <- err
	}()
	var out string
	errOut, code := stderrOf(t, func() int {
		var code int
		out, code = stdoutOf(t, func() int {
			return runDrain([]string{"--insecure", "--controller", addr, "--deadline", "20s", a})
		})
		return code
	})
	if err := <-beats; err != nil {
		t.Fatal(err)
	}
	if code != exitDrainHeld {
		t.Fatalf("held drain: exit %d, want %d; stdout %q, stderr %q", code, exitDrainHeld, out, errOut)
	}
	first, _, _ := strings.Cut(out, "\n")
	if strings.Contains(first, "it leaves within") || !strings.Contains(first, "hold it until deleted") {
		t.Errorf("first line %q promises the node leaves by its deadline", first)
	}
	for _, want := range []string{"awaiting the node's first drain report", "old-3 3MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "0B used") {
		t.Errorf("progress shows a used figure before the node's first drain report:\n%s", out)
	}
	for _, want := range []string{"goes on but is held", "old-3 3MiB", "--discard-persisted", "pocket rm", "pocket status"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("held drain's message lacks %q: %q", want, errOut)
		}
	}
	if n, ok := findNode(statusView(ctl.Status()), a); !ok || n.State != wire.NodeDraining.String() {
		t.Errorf("the drain does not go on: node %+v listed %v", n, ok)
	}
}

// drainController starts a controller of secret (also POCKET_SECRET, for
// the drain command) on a loopback port whose nodes never die or are
// forgotten while the test runs: registrations the test heartbeats for.
func drainController(t *testing.T, secret string) (*controller.Controller, string) {
	return drainControllerWith(t, secret, controller.Config{DeadAfter: time.Hour, ForgetAfter: time.Hour})
}

// drainControllerWith is drainController of cfg (its secret and logger
// set here).
func drainControllerWith(t *testing.T, secret string, cfg controller.Config) (*controller.Controller, string) {
	t.Helper()
	t.Setenv("POCKET_SECRET", secret)
	cfg.Secret, cfg.Logger = []byte(secret), slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	laddr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ctl, laddr.String()
}
