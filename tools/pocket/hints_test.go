package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

func node(state wire.NodeState, tiers ...wire.TierStat) wire.NodeStatus {
	return wire.NodeStatus{Addr: "n", State: state, Tiers: tiers}
}

func TestClusterTier(t *testing.T) {
	dram := func(capacity int64, mbps float64) wire.TierStat {
		return wire.TierStat{Kind: uint8(wire.TierDRAM), CapacityBytes: capacity, Mbps: mbps}
	}
	nvme := wire.TierStat{Kind: uint8(wire.TierNVMe), CapacityBytes: 1 << 40, Mbps: 16000}
	st := &wire.ClusterStatus{NodeCount: 4, Nodes: []wire.NodeStatus{
		node(wire.NodeActive, dram(1<<30, 4000)),
		node(wire.NodeActive, dram(2<<30, 0)),
		node(wire.NodeDraining, dram(8<<30, 4000), nvme), // takes no job
		node(wire.NodeActive, dram(1<<30, 1000), nvme),
	}}
	f, err := clusterTier(st, true)
	if err != nil {
		t.Fatal(err)
	}
	nodeMbps := controller.DefaultPolicy().NodeMbps
	want := tierFigures{tier: wire.TierDRAM, nodes: 3, capacityBytes: 4 << 30, mbps: 4000 + nodeMbps + 1000, assumed: 1}
	if f != want {
		t.Fatalf("latency-sensitive: %+v, want %+v", f, want)
	}
	if f, _ := clusterTier(st, false); f.tier != wire.TierNVMe || f.nodes != 1 || f.capacityBytes != 1<<40 || f.mbps != 16000 {
		t.Fatalf("not latency-sensitive, an active NVMe node: %+v, want its NVMe tier", f)
	}
	st.Nodes, st.NodeCount = st.Nodes[:3], 3
	if f, err := clusterTier(st, false); err != nil || f.tier != wire.TierDRAM {
		t.Fatalf("no active NVMe node: tier %v (%v), want dram", f.tier, err)
	}
	st.NodeCount = 4
	if _, err := clusterTier(st, false); !errors.Is(err, errStatusPartial) {
		t.Fatalf("3 of 4 nodes listed: %v, want errStatusPartial", err)
	}
}

func TestHintExcesses(t *testing.T) {
	f := tierFigures{tier: wire.TierDRAM, nodes: 2, capacityBytes: 3 << 30, mbps: 16000, assumed: 2}
	for _, c := range []struct {
		h    wire.JobHints
		want [][]string // per excess, the substrings it must hold
	}{
		{wire.JobHints{CapacityBytes: 3 << 30, PeakMbps: 16000}, nil},
		{wire.JobHints{Lambdas: 26}, nil}, // 15600 Mb/s
		{wire.JobHints{CapacityBytes: 100 << 30}, [][]string{{"--capacity 100GiB", "dram tier holds: 3GiB on 2 active node(s)"}}},
		{wire.JobHints{PeakMbps: 20000}, [][]string{{"--peak-mbps 20000 Mb/s", "16000 Mb/s on 2 active node(s) (2 report no bandwidth and count as 8000 Mb/s each)"}}},
		{wire.JobHints{Lambdas: 100}, [][]string{{"--lambdas 100 (60000 Mb/s at 600 Mb/s a lambda)"}}},
		{wire.JobHints{CapacityBytes: 4 << 30, PeakMbps: 1e6, Lambdas: 1}, [][]string{{"--capacity 4GiB"}, {"--peak-mbps 1000000 Mb/s"}}},
	} {
		got := hintExcesses(c.h, f)
		if len(got) != len(c.want) {
			t.Errorf("%+v: %q, want %d excess(es)", c.h, got, len(c.want))
			continue
		}
		for i, ws := range c.want {
			for _, w := range ws {
				if !strings.Contains(got[i].String(), w) {
					t.Errorf("%+v: %q lacks %q", c.h, got[i], w)
				}
			}
		}
	}
	// With jobs already on the tier, the warning says they get less too
	// (before: only that the new job did, while pocket status then showed
	// "job sort gets at most 416 of its 2400 Mb/s").
	f.jobs, f.allocMbps = 2, 4800
	got := hintExcesses(wire.JobHints{PeakMbps: 20000}, f)
	if len(got) != 1 || !strings.Contains(got[0].String(), "the 2 job(s) already on the tier (4800 Mb/s allotted) get less than theirs") {
		t.Errorf("excess with jobs running: %q, want it to say they get less", got)
	}
	// A hint the tier serves alone but not beside the running jobs draws a
	// note, which --strict does not refuse (before: nothing at all).
	got = hintExcesses(wire.JobHints{PeakMbps: 12000}, f)
	if len(got) != 1 || !got[0].shared || !strings.Contains(got[0].fact, "comes to 16800 of the 16000 Mb/s") {
		t.Fatalf("hint fitting alone, not beside 4800 allotted: %+v; want one shared excess", got)
	}
	if code, ok, _ := reportHints(got, nil, true); !ok || code != 0 {
		t.Errorf("--strict refused a hint that fits the tier alone: %d %v", code, ok)
	}
	if got := hintExcesses(wire.JobHints{PeakMbps: 11000}, f); len(got) != 0 {
		t.Errorf("11000 beside 4800 on 16000: %+v; want nothing", got)
	}
}

// TestNoExcessWhenTheControllerAutoscales: a controller that autoscales
// (its status says so) starts the nodes a job needs before placing it, or
// refuses the job, so hints beyond the active nodes draw no warning.
// Before, register warned "the job gets less than it asked for" while the
// controller started 2 nodes for it.
func TestNoExcessWhenTheControllerAutoscales(t *testing.T) {
	st := &wire.ClusterStatus{NodeCount: 1, Nodes: []wire.NodeStatus{
		node(wire.NodeActive, wire.TierStat{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, Mbps: 8000})}}
	h := wire.JobHints{PeakMbps: 24000, CapacityBytes: 512 << 20}
	for _, c := range []struct {
		max  uint32
		want int
	}{{0, 1}, {8, 0}} {
		st.AutoscaleMaxNodes = c.max
		f, err := clusterTierFor(st, hintsNeed(h), controller.DefaultPrices())
		if err != nil {
			t.Fatal(err)
		}
		got := hintExcesses(h, f)
		if len(got) != c.want {
			t.Errorf("autoscaler of at most %d nodes: %q, want %d warning(s)", c.max, got, c.want)
		}
		for _, g := range got {
			if !strings.Contains(g.String(), "the controller does not autoscale") {
				t.Errorf("warning %q does not say the controller does not autoscale", g)
			}
		}
	}
}

var hintSecret = []byte("0123456789abcdef-hints-secret")

// startHintCluster starts, in this process, a plain-TCP controller and two
// DRAM nodes of 16 MiB heartbeating through the agent, one reporting
// 1000 Mb/s and one no bandwidth, and returns the controller.
func startHintCluster(t *testing.T) (*controller.Controller, string) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := controller.New(controller.Config{Secret: hintSecret, HeartbeatInterval: 100 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	addr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, mbps := range []float64{1000, 0} {
		startHintNode(t, addr.String(), mbps, quiet)
	}
	deadline := time.Now().Add(10 * time.Second)
	for activeNodes(ctl) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 2 nodes active", activeNodes(ctl))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ctl, addr.String()
}

func activeNodes(ctl *controller.Controller) int {
	n := 0
	for _, ns := range ctl.Status().Nodes {
		if ns.State == wire.NodeActive {
			n++
		}
	}
	return n
}

// startHintNode starts a 16 MiB DRAM node reporting mbps Mb/s and
// heartbeating to the controller at ctlAddr; stop ends it (its values go
// with it), as the test's end does.
func startHintNode(t *testing.T, ctlAddr string, mbps float64, log *slog.Logger) (addr string, stop func()) {
	t.Helper()
	d, err := dataplane.NewDRAM(16<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{AwaitSync: true, Listen: "127.0.0.1:0", DRAM: d,
		Guard: dataplane.NewTokenGuard(hintSecret), Net: netio.Config{Loops: 1}, Logger: log})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	mc := metaclient.New(ctlAddr, metaclient.Options{Secret: hintSecret, Logger: log})
	go func() {
		defer close(done)
		defer mc.Close()
		_ = agent.Run(ctx, agent.Config{Node: nd, Addr: nd.Addr().String(), Controller: mc, Logger: log,
			Mbps: map[dataplane.Kind]float64{wire.TierDRAM: mbps}})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			nd.Close()
			d.Close()
		})
	}
	t.Cleanup(stop)
	return nd.Addr().String(), stop
}

// TestRegisterHintsAgainstCluster runs `pocket job register` against a
// cluster of two 16 MiB DRAM nodes (9000 Mb/s: 1000 reported, 8000
// assumed): hints that fit register quietly (with a note when they fit
// alone but not beside the jobs already there); a peak bandwidth or a lambda
// count beyond the cluster is warned about on stderr with the hint, the
// cluster's figure and its units, and still registered; a capacity no tier
// holds is warned about and then refused by the controller; with --strict
// each is refused (exit 1) before registering, and nothing is registered.
func TestRegisterHintsAgainstCluster(t *testing.T) {
	bin := buildPocketBinary(t)
	ctl, addr := startHintCluster(t)
	env := cleanEnv("POCKET_CONTROLLER=" + addr)
	register := func(args ...string) (jobMapJSON, string, int) {
		t.Helper()
		out, errOut, code := pocketRun(t, bin, env, "", append([]string{"job", "register", "--insecure", "--json", "hinted"}, args...)...)
		var m jobMapJSON
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("job register %v: %v\n%s", args, err, out)
			}
		}
		return m, errOut, code
	}
	for _, c := range []struct {
		args []string
		want []string // on stderr; none: stderr empty
	}{
		{[]string{"--capacity", "24MiB", "--peak-mbps", "9000"}, nil},
		// Fits the tier alone, not beside the first job's 9000 Mb/s: a note.
		{[]string{"--lambdas", "15", "--latency-sensitive"}, []string{"note: --lambdas 15", "comes to 18000 of the 9000 Mb/s"}},
		{[]string{"--peak-mbps", "20000"}, []string{"warning: --peak-mbps 20000 Mb/s", "9000 Mb/s on 2 active node(s) (1 report no bandwidth and count as 8000 Mb/s each)"}},
		{[]string{"--lambdas", "100"}, []string{"warning: --lambdas 100 (60000 Mb/s at 600 Mb/s a lambda)", "9000 Mb/s"}},
	} {
		m, errOut, code := register(c.args...)
		if code != 0 || m.JobID == "" {
			t.Errorf("job register %v: exit %d, job %q: %s", c.args, code, m.JobID, errOut)
			continue
		}
		if m.Tier != wire.TierDRAM.String() {
			t.Errorf("job register %v: tier %s, the check assumed dram", c.args, m.Tier)
		}
		if c.want == nil && errOut != "" {
			t.Errorf("job register %v: hints that fit, yet stderr: %s", c.args, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) || strings.Count(errOut, "pocket: job register: ") != len(strings.Split(strings.TrimSpace(errOut), "\n")) {
				t.Errorf("job register %v: stderr %q, want %q on lines with one prefix", c.args, errOut, w)
			}
		}
	}
	before := ctl.Status().JobCount
	// A capacity no tier holds is the controller's refusal (issue 15), with
	// or without --strict: one line, naming the hint (before, a warning
	// that puts beyond it fail came first, for a job never registered).
	for _, strict := range []string{"--json", "--strict"} {
		_, errOut, code := register("--capacity", "1GiB", strict)
		if code != 1 || !strings.Contains(errOut, "no tier fits the job") || !strings.Contains(errOut, "--capacity") ||
			strings.Contains(errOut, "warning") || strings.Count(errOut, "pocket: ") != 1 || strings.Contains(errOut, "--insecure:") {
			t.Errorf("job register --capacity 1GiB %s: exit %d, stderr %q; want the controller's refusal alone, without a TLS hint", strict, code, errOut)
		}
	}
	for _, args := range [][]string{{"--peak-mbps", "20000"}, {"--lambdas", "100"}} {
		_, errOut, code := register(append(args, "--strict")...)
		// The refusal says the job was not registered, never what the job
		// gets (before: "not registered: ... the job gets less than it
		// asked for").
		if code != 1 || !strings.Contains(errOut, "--strict: not registered, as its hints ask for more than the cluster has: "+args[0]) ||
			strings.Contains(errOut, "gets less") || strings.Count(errOut, "pocket: ") != 1 {
			t.Errorf("job register %v --strict: exit %d, stderr %q; want exit 1 naming the hint, not what the job gets", args, code, errOut)
		}
	}
	// A hint that draws a warning, on a registration refused for another
	// reason (a name too long: a usage error since ebdbc2f, exit 2): the
	// refusal alone (before, the warning that the job gets less came
	// first, for a job never registered; a new user's check).
	long := strings.Repeat("n", 300)
	if _, errOut, code := pocketRun(t, bin, env, "", "job", "register", "--insecure", long, "--peak-mbps", "20000"); code != 2 ||
		strings.Contains(errOut, "warning") || strings.Count(errOut, "pocket: ") != 1 {
		t.Errorf("job register of a refused name with --peak-mbps 20000: exit %d, stderr %q; want the refusal alone", code, errOut)
	}
	// A --lambdas hint within the flag's limit whose bandwidth passes the
	// controller's bound is a usage error naming the bound (before: exit
	// 1, "malformed frame: lambdas hint ...").
	if _, errOut, code := register("--lambdas", "1000000000"); code != 2 ||
		!strings.Contains(errOut, "the controller refused the hints: lambdas hint 1000000000") || strings.Contains(errOut, "malformed") {
		t.Errorf("job register --lambdas 1000000000: exit %d, stderr %q; want exit 2 naming the controller's bound", code, errOut)
	}
	if _, errOut, code := register("--capacity", "1MiB", "--strict"); code != 0 || errOut != "" {
		t.Errorf("job register --capacity 1MiB --strict: exit %d: %s", code, errOut)
	}
	if got := ctl.Status().JobCount; got != before+1 {
		t.Errorf("job count %d after the refused jobs and one that fits, want %d", got, before+1)
	}
}

// TestPutNoSpaceSaysWhatToDo: a put larger than the job's nodes hold is
// refused with the value's size, the job's nodes and tier, and what to do.
func TestPutNoSpaceSaysWhatToDo(t *testing.T) {
	bin := buildPocketBinary(t)
	_, addr := startHintCluster(t)
	env := cleanEnv("POCKET_CONTROLLER=" + addr)
	out, errOut, code := pocketRun(t, bin, env, "", "job", "register", "--insecure", "--json", "full")
	var m jobMapJSON
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("job register: exit %d: %s %s", code, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(file, make([]byte, 40<<20), 0o600); err != nil { // the nodes hold 32 MiB
		t.Fatal(err)
	}
	env = append(env, envToken+"="+m.Token)
	_, errOut, code = pocketRun(t, bin, env, "", "put", "--insecure", m.JobID, "big", file)
	for _, want := range []string{"no space", "the value is 40MiB", "the job's 2 dram node(s)", "pocket rm " + m.JobID, "pocket status"} {
		if code != 1 || !strings.Contains(errOut, want) || strings.Count(errOut, "pocket: ") != 1 {
			t.Errorf("put of 40MiB on 32MiB of nodes: exit %d, stderr %q; want %q", code, errOut, want)
		}
	}
}

// TestLeaderFirst: job register asks the controller that answered its
// hint check first; a list without it, or with it first, is kept.
func TestLeaderFirst(t *testing.T) {
	for _, c := range []struct{ list, leader, want string }{
		{"a:1,b:2,c:3", "b:2", "b:2,a:1,c:3"},
		{"a:1,b:2,c:3", "c:3", "c:3,a:1,b:2"},
		{"a:1,b:2,c:3", "a:1", "a:1,b:2,c:3"},
		{"a:1,b:2", "d:4", "a:1,b:2"},
		{"a:1,b:2", "", "a:1,b:2"},
		{"a:1", "a:1", "a:1"},
	} {
		if got := leaderFirst(c.list, c.leader); got != c.want {
			t.Errorf("leaderFirst(%q, %q) = %q, want %q", c.list, c.leader, got, c.want)
		}
	}
}
