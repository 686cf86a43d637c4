package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// stdoutOf runs f with os.Stdout sent to a pipe and returns what it wrote
// and f's result.
func stdoutOf(t *testing.T, f func() int) (string, int) {
	t.Helper()
	return captured(t, &os.Stdout, f)
}

// captured runs f with *std (os.Stdout or os.Stderr) sent to a pipe,
// puts *std back, and returns what f wrote there and f's result.
func captured(t *testing.T, std **os.File, f func() int) (string, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := *std
	*std = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	code := f()
	*std = old
	w.Close()
	return string(<-done), code
}

// controllerOver starts a controller over st with cfg, its Secret (32
// bytes), Store (st) and Logger (discarding) filled in; it closes st if
// the controller does not start. stop closes the controller and then st,
// once; it also runs when the test ends.
func controllerOver(t *testing.T, st state.Store, cfg controller.Config) (c *controller.Controller, stop func()) {
	t.Helper()
	cfg.Secret, cfg.Store = bytes.Repeat([]byte("k"), 32), st
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := controller.New(cfg)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	stop = sync.OnceFunc(func() { c.Close(); st.Close() })
	t.Cleanup(stop)
	return c, stop
}

// TestJobProfileShowsWhatRegistrationGives: the next size `pocket job
// profile` shows for a name is the allotment registering that name without
// size hints gives (a profile of 26 Mb/s peaks estimates 29 Mb/s, which
// registration raises to one lambda's 600 Mb/s), and --json names the
// runs' tier as status and register do ("dram"). Before, it showed the
// estimate (29 Mb/s) and "tier": 1.
func TestJobProfileShowsWhatRegistrationGives(t *testing.T) {
	dir := t.TempDir()
	sdir := filepath.Join(dir, stateSubdir)
	st, err := state.OpenBolt(sdir)
	if err != nil {
		t.Fatal(err)
	}
	p := state.Profile{Name: "small", Updated: time.UnixMilli(1_700_000_000_000).UTC(), Runs: []state.Run{
		{Job: "small-1", PeakMbps: 26, PeakBytes: 1 << 20, Tier: uint8(wire.TierDRAM), AllocMbps: 16000, Duration: time.Minute}}}
	if err := st.Apply(&state.Batch{PutProfiles: []state.Profile{p}}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out, code := stdoutOf(t, func() int { return runJobProfile([]string{"small", "--data-dir", dir, "--json"}) })
	if code != 0 {
		t.Fatalf("job profile --json: exit %d: %s", code, out)
	}
	var v struct {
		Next struct {
			Mbps         float64 `json:"mbps"`
			EstimateMbps float64 `json:"estimate_mbps"`
		} `json:"next"`
		Runs []map[string]any `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(v.Runs) != 1 || v.Runs[0]["tier"] != "dram" {
		t.Fatalf("runs %+v; want one, with \"tier\": \"dram\"", v.Runs)
	}
	if v.Next.EstimateMbps < 28 || v.Next.EstimateMbps > 29 {
		t.Fatalf("estimate %.1f Mb/s; want 1.1 x 26", v.Next.EstimateMbps)
	}

	// What registration gives, on a controller over the same state.
	st, err = state.OpenBolt(sdir)
	if err != nil {
		t.Fatal(err)
	}
	c, stop := controllerOver(t, st, controller.Config{})
	if _, err := c.RegisterNode(&wire.NodeRegister{Addr: "127.0.0.1:9001", Cores: 2,
		Tiers: []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000}}}); err != nil {
		t.Fatal(err)
	}
	m, err := c.RegisterJob("small", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	var alloc float64
	for _, js := range c.Status().Jobs {
		if js.Job == m.Job {
			alloc = js.AllocMbps
		}
	}
	if alloc != v.Next.Mbps || alloc != controller.DefaultPolicy().PerLambdaMbps {
		t.Fatalf("job profile says the next job gets %.0f Mb/s; registration allotted %.0f", v.Next.Mbps, alloc)
	}

	if _, code := stdoutOf(t, func() int { return runJobProfile([]string{"small", "--data-dir", dir}) }); code == 0 {
		t.Fatal("read the state a running controller holds")
	}
	stop()
	out, code = stdoutOf(t, func() int { return runJobProfile([]string{"small", "--data-dir", dir}) })
	if code != 0 || !strings.Contains(out, "without size hints asks for 600 Mb/s") || !strings.Contains(out, "29 Mb/s, raised to one lambda's 600 Mb/s") ||
		!strings.Contains(out, " dram ") {
		t.Fatalf("job profile: exit %d:\n%s", code, out)
	}
}

func TestMilli(t *testing.T) {
	if got := milli(1.1 * 3000); got != 3300 {
		t.Fatalf("milli(1.1 x 3000) = %v, want 3300", got)
	}
}

// TestQuartersSayUnmeasured: a quarter of a run with no figure at all (no
// heartbeat sampled it) prints "-", not a 0 Mb/s that reads as measured
// idle; a quarter that held bytes without moving any prints 0.
func TestQuartersSayUnmeasured(t *testing.T) {
	got, none := quarters([]state.Phase{{}, {PeakMbps: 812.4, PeakBytes: 1 << 20}, {PeakBytes: 1 << 20}, {PeakMbps: 3}})
	if got != "- 812 0 3" || !none {
		t.Fatalf("quarters %q (unmeasured %v); want \"- 812 0 3\" and true", got, none)
	}
	if got, none := quarters([]state.Phase{{PeakMbps: 1}, {PeakBytes: 1}}); got != "1 0" || none {
		t.Fatalf("quarters %q (unmeasured %v); want \"1 0\" and false", got, none)
	}
}
