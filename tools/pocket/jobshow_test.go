package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// jobShowKeys are the keys of pocket job show --json, every one always
// present.
var jobShowKeys = []string{"job_id", "tier", "epoch", "ended", "expires", "nodes", "lost", "used_known", "used_bytes", "used_uncounted"}

// showJSON runs pocket job show --json --insecure JOB with env and returns
// its decoded output (failing the test on a null or a missing key), its
// stderr and its exit status; tok must appear in neither output.
func showJSON(t *testing.T, bin string, env []string, job, tok string) (jobShowJSON, string, int) {
	t.Helper()
	out, errOut, code := pocketRun(t, bin, env, "", "job", "show", "--insecure", "--json", job)
	if strings.Contains(out+errOut, tok) {
		t.Fatalf("job show --json printed the token: stdout %q, stderr %q", out, errOut)
	}
	if code != 0 && code != exitPartial {
		t.Fatalf("job show --json %s: exit %d, stdout %q, stderr %q", job, code, out, errOut)
	}
	wantKeys(t, "job show --json", jsonObject(t, "job show --json", []byte(out)), jobShowKeys...)
	var v jobShowJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	return v, errOut, code
}

// TestJobShowMapAndUse (issue 15): a tenant holding a job's id and token
// sees the job's map and use with pocket job show: its id, tier, epoch,
// nodes (those registration gave, active) and used bytes (0 before a put,
// the SDK's Job.Usage after it), in text and in --json; another job's
// token and an unknown id get a one-line "bad token" error, exit 1 and
// nothing on stdout; a deregistered job shows as ended, with the bytes of
// its persisted value. The token is
// printed by none of it.
func TestJobShowMapAndUse(t *testing.T) {
	bin := buildPocketBinary(t)
	_, addr := startHintCluster(t)
	base := cleanEnv("POCKET_CONTROLLER=" + addr)
	register := func(name string) jobMapJSON {
		t.Helper()
		out, errOut, code := pocketRun(t, bin, base, "", "job", "register", "--insecure", "--json", "--lambdas", "1", name)
		var m jobMapJSON
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m.Token == "" {
			t.Fatalf("job register %s: exit %d, stdout %q, stderr %q", name, code, out, errOut)
		}
		return m
	}
	reg, other := register("shown"), register("other")
	env := append(base[:len(base):len(base)], "POCKET_TOKEN="+reg.Token)

	v, _, code := showJSON(t, bin, env, reg.JobID, reg.Token)
	if code != 0 || v.JobID != reg.JobID || v.Tier != reg.Tier || v.Epoch != reg.Epoch || v.Ended || !v.UsedKnown || v.UsedBytes != 0 ||
		len(v.Lost) != 0 || len(v.UsedUncounted) != 0 {
		t.Fatalf("job show --json of a fresh job: exit %d, %+v; want registration's map (%+v), live, 0 bytes used", code, v, reg)
	}
	if len(v.Nodes) != len(reg.Nodes) || len(v.Nodes) == 0 {
		t.Fatalf("job show nodes %+v, registration's %+v", v.Nodes, reg.Nodes)
	}
	for i, n := range v.Nodes {
		if n.Addr != reg.Nodes[i].Addr || n.State != "active" || n.Weight != reg.Nodes[i].Weight {
			t.Errorf("job show node %d: %+v, want %+v active", i, n, reg.Nodes[i])
		}
	}

	value := strings.Repeat("v", 200<<10)
	if out, errOut, code := pocketRun(t, bin, env, value, "put", "--insecure", reg.JobID, "a/b", "-"); code != 0 {
		t.Fatalf("put: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A persisted value keeps the job's final map at the controller once
	// it is deregistered (controller/ended.go); without one the map may
	// be dropped at the nodes' next heartbeat, and the job is unknown.
	if out, errOut, code := pocketRun(t, bin, env, "kept", "put", "--insecure", "--persist", reg.JobID, "p/kept", "-"); code != 0 {
		t.Fatalf("put --persist: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	want := sdkUsage(t, addr, reg)
	if want < int64(len(value)) {
		t.Fatalf("the SDK's Usage is %d after a put of %d bytes", want, len(value))
	}
	if v, _, code = showJSON(t, bin, env, reg.JobID, reg.Token); code != 0 || !v.UsedKnown || v.UsedBytes != want {
		t.Errorf("job show --json after the put: exit %d, used_known %v, used_bytes %d; want %d (Job.Usage)", code, v.UsedKnown, v.UsedBytes, want)
	}

	out, errOut, code := pocketRun(t, bin, env, "", "job", "show", "--insecure", reg.JobID)
	head := "job " + reg.JobID + ": live, map epoch " + itoa(reg.Epoch) + ", " + itoa(uint64(len(reg.Nodes))) + " dram node(s)\n"
	if code != 0 || errOut != "" || !strings.HasPrefix(out, head) || !strings.Contains(out, "\nused "+units.FormatSize(want)+"\n") {
		t.Errorf("job show: exit %d, stdout %q, stderr %q; want it to start %q and say used %s", code, out, errOut, head, units.FormatSize(want))
	}
	for _, n := range reg.Nodes {
		if !strings.Contains(out, n.Addr) || strings.Contains(out, "dead") {
			t.Errorf("job show does not list node %s active: %q", n.Addr, out)
		}
	}
	if strings.Contains(out+errOut, reg.Token) {
		t.Errorf("job show printed the token: %q %q", out, errOut)
	}

	wrong := append(base[:len(base):len(base)], "POCKET_TOKEN="+other.Token)
	for _, job := range []string{reg.JobID, "shown-1"} {
		out, errOut, code := pocketRun(t, bin, wrong, "", "job", "show", "--insecure", job)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "pocket: job show: ") ||
			!strings.Contains(errOut, "bad token") || strings.Contains(errOut, other.Token) {
			t.Errorf("job show %s with another job's token: exit %d, stdout %q, stderr %q; want exit 1, one line saying bad token", job, code, out, errOut)
		}
	}

	out, errOut, code = pocketRun(t, bin, env, "", "job", "deregister", "--insecure", "--json", reg.JobID)
	var dereg deregisterJSON
	if code != 0 || json.Unmarshal([]byte(out), &dereg) != nil || dereg.Credential == "" {
		t.Fatalf("job deregister --json: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// By its token, and by the credential its deregistration printed.
	// Before, the credential's job showed as live: the map a credential
	// carries is not marked ended (a new user's trial).
	byCred := append(base[:len(base):len(base)], "POCKET_CREDENTIAL="+dereg.Credential)
	for how, env := range map[string][]string{"token": env, "credential": byCred} {
		if v, _, code = showJSON(t, bin, env, reg.JobID, reg.Token); code != 0 || !v.Ended || v.JobID != reg.JobID || !v.UsedKnown ||
			v.UsedBytes <= 0 || v.UsedBytes >= want {
			t.Errorf("job show --json of the deregistered job by its %s: exit %d, %+v; want ended, its persisted value's bytes (more than 0, less than the %d of the live job)",
				how, code, v, want)
		}
	}
}

// sdkUsage is the job's used bytes as the SDK counts them.
func sdkUsage(t *testing.T, addr string, reg jobMapJSON) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := token.Parse(reg.Token)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pocket.Dial(ctx, addr, pocket.Config{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.OpenJob(ctx, reg.JobID, tok)
	if err != nil {
		t.Fatal(err)
	}
	n, err := j.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestJobShowDeadAndLostNode: a node of a job's two-node map stops. pocket
// job show marks it dead, leaves its bytes out of used_bytes (naming it in
// used_uncounted) and exits 3 with a note on stderr; once the
// controller's dead-node grace has passed it shows the node lost, at the
// epoch of the map without it, and the map's remaining node active.
func TestJobShowDeadAndLostNode(t *testing.T) {
	bin := buildPocketBinary(t)
	ctl, addr, quiet := showController(t, 3*time.Second)
	stops := map[string]func(){}
	for range 2 {
		a, stop := startHintNode(t, addr, 1000, quiet)
		stops[a] = stop
	}
	m, tok := twoNodeJob(t, ctl, "spread")
	env := cleanEnv("POCKET_CONTROLLER="+addr, "POCKET_TOKEN="+tok)
	gone, kept := m.Nodes[0].Addr, m.Nodes[1].Addr
	stops[gone]()

	v, errOut := awaitShow(t, bin, env, m.Job, tok, func(v jobShowJSON) bool { return len(v.Nodes) == 2 && v.Nodes[0].State == "dead" })
	if len(v.UsedUncounted) != 1 || v.UsedUncounted[0] != gone || !strings.Contains(errOut, "dead ("+gone+")") {
		t.Errorf("job show with node %s dead: %+v, stderr %q; want it in used_uncounted, and named on stderr", gone, v, errOut)
	}
	v, _ = awaitShow(t, bin, env, m.Job, tok, func(v jobShowJSON) bool { return len(v.Lost) > 0 })
	if len(v.Lost) != 1 || v.Lost[0].Addr != gone || v.Lost[0].Epoch == 0 || v.Lost[0].Epoch > v.Epoch ||
		len(v.Nodes) != 1 || v.Nodes[0].Addr != kept || v.Nodes[0].State != "active" {
		t.Errorf("job show once %s is lost: %+v; want it lost, and %s the one active node", gone, v, kept)
	}
	out, _, code := pocketRun(t, bin, env, "", "job", "show", "--insecure", m.Job)
	if code != 0 || !strings.Contains(out, "lost "+gone+" at epoch "+itoa(v.Lost[0].Epoch)) {
		t.Errorf("job show once %s is lost: exit %d, stdout %q; want exit 0 and a line naming it lost", gone, code, out)
	}
}

// awaitShow runs job show --json until done holds for its output (20 s
// at most), and returns that output and its stderr. An output in which a
// node of the map is dead must come with exit 3.
func awaitShow(t *testing.T, bin string, env []string, job, tok string, done func(jobShowJSON) bool) (jobShowJSON, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, errOut, code := showJSON(t, bin, env, job, tok)
		if dead := len(v.UsedUncounted) > 0; dead != (code == exitPartial) {
			t.Fatalf("job show: exit %d with used_uncounted %v; want 3 exactly when a node is dead", code, v.UsedUncounted)
		}
		if done(v) {
			return v, errOut
		}
		if time.Now().After(deadline) {
			t.Fatalf("job show 20 s on: %+v", v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestJobShowFrozenNodeBounded: a node of the job's map that takes the
// count's request and never answers (a frozen process) holds job show
// usageWait, not the client's 30 s silence bound: the map prints with
// used_known false, exit 3 and a note naming the wait. Before, job show
// printed nothing for 22-30 s (a new user's trial, kill -STOP of a node).
func TestJobShowFrozenNodeBounded(t *testing.T) {
	bin := buildPocketBinary(t)
	ctl, addr, quiet := showController(t, 0)
	startHintNode(t, addr, 1000, quiet)
	frozen := frozenNode(t, ctl)
	m, tok := twoNodeJob(t, ctl, "frozen")
	env := cleanEnv("POCKET_CONTROLLER="+addr, "POCKET_TOKEN="+tok)
	start := time.Now()
	v, errOut, code := showJSON(t, bin, env, m.Job, tok)
	took := time.Since(start)
	if code != exitPartial || v.UsedKnown || len(v.Nodes) != 2 || !strings.Contains(errOut, "within "+usageWait.String()) ||
		took > usageWait+10*time.Second {
		t.Errorf("job show with node %s frozen: exit %d after %v, %+v, stderr %q; want exit 3, used_known false and a note within about %v",
			frozen, code, took.Round(time.Millisecond), v, errOut, usageWait)
	}
}

// showController starts a controller on a loopback port with 100 ms
// heartbeats and the dead-node grace grace (0: the default), and returns
// it, its address and a logger that discards.
func showController(t *testing.T, grace time.Duration) (*controller.Controller, string, *slog.Logger) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := controller.New(controller.Config{Secret: hintSecret, HeartbeatInterval: 100 * time.Millisecond, DeadNodeGrace: grace, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	la, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ctl, la.String(), quiet
}

// twoNodeJob waits until ctl has 2 active 16 MiB nodes and registers job
// name over both (a capacity hint more than one holds); it returns the
// map and the token as the CLI takes it.
func twoNodeJob(t *testing.T, ctl *controller.Controller, name string) (*wire.PlacementMap, string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); activeNodes(ctl) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 nodes active", activeNodes(ctl))
		}
	}
	m, err := ctl.RegisterJob(name, wire.JobHints{CapacityBytes: 20 << 20})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("register: %+v %v; want two nodes", m, err)
	}
	return m, token.Format(m.Token)
}

// frozenNode registers with ctl a DRAM node of 16 MiB whose address
// accepts connections and reads them but never answers, and keeps it
// active with heartbeats until the test ends; it returns its address.
func frozenNode(t *testing.T, ctl *controller.Controller) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	a := ln.Addr().String()
	tiers := []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 16 << 20, Mbps: 1000}}
	if _, err := ctl.RegisterNode(&wire.NodeRegister{Addr: a, Cores: 2, Tiers: tiers}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				_, _ = ctl.Heartbeat(&wire.Heartbeat{Addr: a, Tiers: tiers})
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return a
}

// TestJobShowEndedJobsDeadNodeIsGone: a node of an ended job's map that
// is dead or was found gone shows as "gone", with the used line and the
// note saying so, where a live job's dead node shows as "dead". Before,
// an ended job's node retired empty by the autoscaler showed as dead,
// its bytes "not counted" (a new user's trial).
func TestJobShowEndedJobsDeadNodeIsGone(t *testing.T) {
	m := pocket.Map{Job: "e-1", Epoch: 3, Nodes: []pocket.Node{{Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}, {Addr: "c:1", Weight: 1}},
		Dead: map[string]bool{"a:1": true}}
	for _, c := range []struct {
		ended bool
		want  []string
		used  string
	}{
		{false, []string{"dead", "active", "active"}, "not counted: dead node(s) a:1"},
		{true, []string{"gone", "gone", "active"}, "not counted: gone node(s) a:1"},
	} {
		v := jobShowView(m, c.ended, []string{"b:1"})
		v.UsedKnown = true
		var got []string
		for _, n := range v.Nodes {
			got = append(got, n.State)
		}
		if !slices.Equal(got, c.want) || v.Ended != c.ended || !strings.Contains(usedLine(v), c.used) {
			t.Errorf("ended %v: states %v, used line %q; want %v and %q", c.ended, got, usedLine(v), c.want, c.used)
		}
	}
}

// TestJobShowLostAfterTheEnd: a node an ended job lost after it ended is
// noted at the epoch after its final map's, which stays as it ended; job
// show says "after the job ended" instead of an epoch past the map's own
// (a new user read "map epoch 1" beside "lost ... at epoch 2"). A node
// lost while the job ran keeps its epoch.
func TestJobShowLostAfterTheEnd(t *testing.T) {
	v := jobShowJSON{JobID: "j-1", Tier: "nvme", Epoch: 1, Ended: true,
		Nodes: []mapNodeJSON{{Addr: "127.0.0.1:7001", Weight: 0.5, State: "active"}},
		Lost:  []lostJSON{{Addr: "127.0.0.1:7000", Epoch: 1}, {Addr: "127.0.0.1:7002", Epoch: 2, AfterEnd: true}}}
	out, _ := stdoutOf(t, func() int { printJobShow(v); return 0 })
	for _, w := range []string{"lost 127.0.0.1:7000 at epoch 1:", "lost 127.0.0.1:7002 after the job ended"} {
		if !strings.Contains(out, w) {
			t.Fatalf("job show printed\n%s\nwithout %q", out, w)
		}
	}
	if strings.Contains(out, "at epoch 2") {
		t.Fatalf("job show printed an epoch past the map's:\n%s", out)
	}
	// --json marks it (jobShowView, from the map).
	m := pocket.Map{Job: "j-1", Epoch: 1, Ended: true, Lost: []pocket.LostNode{{Addr: "127.0.0.1:7000", Epoch: 1}, {Addr: "127.0.0.1:7002", Epoch: 2}}}
	if got := jobShowView(m, true, nil).Lost; got[0].AfterEnd || !got[1].AfterEnd {
		t.Fatalf("--json lost nodes %+v: want only the second after the end", got)
	}
}
