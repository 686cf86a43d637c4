package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// outputOf runs f with os.Stdout and os.Stderr sent to pipes and returns
// what it wrote to each and f's result.
func outputOf(t *testing.T, f func() int) (string, string, int) {
	t.Helper()
	var errOut string
	out, code := stdoutOf(t, func() int {
		var code int
		errOut, code = captured(t, &os.Stderr, f)
		return code
	})
	return out, errOut, code
}

// profileJSON runs `pocket job profile` with args and --json, and decodes
// its output; it fails the test unless the command exits 0.
func profileJSON(t *testing.T, args ...string) (jobProfileJSON, string) {
	t.Helper()
	out, errOut, code := outputOf(t, func() int { return runJobProfile(append(args, "--json")) })
	if code != 0 {
		t.Fatalf("job profile %v: exit %d: %s%s", args, code, out, errOut)
	}
	var v jobProfileJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("job profile %v: %v: %s", args, err, out)
	}
	return v, errOut
}

// TestJobProfileAsksTheRunningController: `pocket job profile NAME`
// asks the running controller (found as pocket status finds it:
// $POCKET_CONTROLLER, over TLS with the data directory's certificates),
// which holds its state directory locked, and shows the next size under
// that controller's policy (1000 Mb/s a lambda here, not the default
// 600); a name without a profile fails naming how profiles are recorded;
// with the controller stopped it reads the state directory, warning that
// it did, and the runs it shows are the ones the controller served, in the
// same form. Before, the command failed while the controller ran ("a
// running controller holds its state: stop it first").
func TestJobProfileAsksTheRunningController(t *testing.T) {
	data := t.TempDir()
	tlsDir := filepath.Join(data, tlsSubdir)
	if err := pki.Init(tlsDir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	st, err := state.OpenBolt(filepath.Join(data, stateSubdir))
	if err != nil {
		t.Fatal(err)
	}
	ended := time.UnixMilli(1_700_000_000_123).UTC()
	p := state.Profile{Name: "small", Updated: ended, Runs: []state.Run{
		{Job: "small-2", Ended: ended, Duration: 90 * time.Second, PeakMbps: 26, PeakBytes: 3 << 20, Tier: uint8(wire.TierDRAM),
			AllocMbps: 600, AllocBytes: 4 << 20, Phases: []state.Phase{{PeakMbps: 26, PeakBytes: 1 << 20}, {}, {PeakMbps: 3}, {PeakBytes: 3 << 20}}},
		{Job: "small-1", Ended: ended.Add(-time.Hour), Duration: time.Minute, PeakMbps: 20, PeakBytes: 1 << 20, Tier: uint8(wire.TierNVMe), AllocMbps: 16000}}}
	if err := st.Apply(&state.Batch{PutProfiles: []state.Profile{p}}); err != nil {
		st.Close()
		t.Fatal(err)
	}
	srv, err := pki.ServerConfig(tlsDir, "controller")
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	c, stop := controllerOver(t, st, controller.Config{TLS: srv, Policy: controller.Policy{PerLambdaMbps: 1000}})
	addr, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envDataDir, data)
	t.Setenv(envTLSDir, "")
	t.Setenv(metaclient.EnvController, addr.String())

	served, errOut := profileJSON(t, "small")
	if served.Next.Mbps != 1000 || served.Next.Runs != 2 || served.Next.EstimateMbps >= 1000 || errOut != "" {
		t.Fatalf("next size %+v (stderr %q); want the running controller's 1000 Mb/s a lambda, from 2 runs", served.Next, errOut)
	}
	if len(served.Runs) != 2 || served.Runs[0].Job != "small-2" || served.Runs[0].Tier != "dram" || served.Runs[1].Tier != "nvme" ||
		!served.Runs[0].Ended.Equal(ended) || len(served.Runs[0].Phases) != 4 || served.Runs[0].Phases[3].PeakBytes != 3<<20 {
		t.Fatalf("served runs %+v", served.Runs)
	}
	out, errOut, code := outputOf(t, func() int { return runJobProfile([]string{"small"}) })
	if code != 0 || !strings.Contains(out, "without size hints asks for 1000 Mb/s") || !strings.Contains(out, "raised to one lambda's 1000 Mb/s") ||
		!strings.Contains(out, "small-2") || !strings.Contains(out, " nvme ") {
		t.Fatalf("job profile: exit %d:\n%s%s", code, out, errOut)
	}
	_, errOut, code = outputOf(t, func() int { return runJobProfile([]string{"never-ran"}) })
	if code != 1 || !strings.Contains(errOut, "recorded when a job of the name ends") || !strings.Contains(errOut, "small") {
		t.Fatalf("a name without a profile: exit %d: %s", code, errOut)
	}

	stop()
	// The controller named ($POCKET_CONTROLLER) is down: its state is not
	// guessed at (the default data directory may be another cluster's).
	_, errOut, code = outputOf(t, func() int { return runJobProfile([]string{"small"}) })
	if code != 1 || !strings.Contains(errOut, addr.String()) || !strings.Contains(errOut, "--data-dir") {
		t.Fatalf("named controller stopped: exit %d: %s; want an error naming it and --data-dir", code, errOut)
	}
	// No controller named: the default controller and the default data
	// directory are the same (default) cluster's.
	if c, err := net.DialTimeout("tcp", ctlDefaultAddr, time.Second); err == nil {
		c.Close()
		t.Skipf("another program listens at the default controller address %s: the rest needs it free", ctlDefaultAddr)
	}
	t.Setenv(metaclient.EnvController, "")
	stored, errOut := profileJSON(t, "small")
	if stored.Next.Mbps != controller.DefaultPolicy().PerLambdaMbps || !strings.HasPrefix(errOut, "pocket: job profile: note: no controller answered") || !strings.Contains(errOut, data) {
		t.Fatalf("controller stopped: next %+v, stderr %q; want the state's profile under the default policy, with a note (it exits 0), not a failure line", stored.Next, errOut)
	}
	if !reflect.DeepEqual(stored.Runs, served.Runs) || stored.Name != served.Name || !stored.Updated.Equal(served.Updated) ||
		stored.Next.EstimateMbps != served.Next.EstimateMbps || stored.Next.EstimateBytes != served.Next.EstimateBytes {
		t.Fatalf("the state's profile\n%+v\ndiffers from the one the controller served\n%+v", stored, served)
	}
}
