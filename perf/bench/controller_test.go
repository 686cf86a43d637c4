package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

var clusterSecret = []byte("0123456789abcdef-bench-cluster-secret")

// startCluster starts, in this process, a plain-TCP controller and n DRAM
// nodes of 16 MiB heartbeating through the agent; all stop when the test
// ends. It returns the controller, its address and the nodes by address.
func startCluster(t *testing.T, n int) (*controller.Controller, string, map[string]*dataplane.Node) {
	t.Helper()
	t.Setenv("POCKET_TLS_DIR", "") // the SDK reaches this controller over plain TCP
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctl, err := controller.New(controller.Config{Secret: clusterSecret, HeartbeatInterval: 100 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	addr, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*dataplane.Node{}
	for range n {
		nd := startAgentNode(t, addr.String(), quiet)
		nodes[nd.Addr().String()] = nd
	}
	waitUntil(t, 10*time.Second, "nodes active", func() bool {
		active := 0
		for _, ns := range ctl.Status().Nodes {
			if ns.State == wire.NodeActive {
				active++
			}
		}
		return active == n
	})
	return ctl, addr.String(), nodes
}

func startAgentNode(t *testing.T, ctlAddr string, log *slog.Logger) *dataplane.Node {
	t.Helper()
	d, err := dataplane.NewDRAM(16<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{AwaitSync: true, Listen: "127.0.0.1:0", DRAM: d,
		Guard: dataplane.NewTokenGuard(clusterSecret), Net: netio.Config{Loops: 1}, Logger: log})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	mc := metaclient.New(ctlAddr, metaclient.Options{Secret: clusterSecret, Logger: log})
	go func() {
		defer close(done)
		defer mc.Close()
		_ = agent.Run(ctx, agent.Config{Node: nd, Addr: nd.Addr().String(), Controller: mc, Logger: log})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		nd.Close()
		d.Close()
	})
	return nd
}

func waitUntil(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settled reports whether the job's map has n nodes, none of them joining.
func settled(ctl *controller.Controller, m *wire.PlacementMap, n int) (*wire.PlacementMap, bool) {
	cur, err := ctl.GetMap(m.Job, m.Token)
	if err != nil || len(cur.Nodes) != n {
		return cur, false
	}
	for _, mn := range cur.Nodes {
		if mn.State == wire.NodeJoining {
			return cur, false
		}
	}
	return cur, true
}

// pocket bench --controller ADDR --job ID --token T drives the job that
// `pocket job register` made, through the SDK: no other job is
// registered, the job's map is followed when it grows (the node that
// joined gets the run's requests once the join is done), the run deletes
// the keys it put at its end and says so, and the job is still
// registered. Before, the run's keys stayed in the user's job (a get run's
// 100,000 preloaded keys, 130 MiB on a 64 MiB allotment).
func TestControllerRunDrivesTheRegisteredJob(t *testing.T) {
	ctl, ctlAddr, nodes := startCluster(t, 3)
	m, err := ctl.RegisterJob("mine", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) >= len(nodes) {
		t.Fatalf("the job got all %d nodes: none left to grow to", len(m.Nodes))
	}
	first := nodes[m.Nodes[0].Addr]

	const size, keys = 64, 200
	args := []string{"--controller", ctlAddr, "--job", m.Job, "--token", token.Format(m.Token), "--json",
		"--op", "put", "--size", "64", "--keys", "200", "--conns", "2", "--warmup", "0", "--duration", "8s"}
	var stdout, stderr bytes.Buffer
	code := make(chan int, 1)
	go func() { code <- Main(context.Background(), args, &stdout, &stderr) }()

	before := first.Stats().Requests
	waitUntil(t, 5*time.Second, "the run's first requests", func() bool { return first.Stats().Requests > before+10 })
	if err := ctl.GrowJob(m.Job, ""); err != nil {
		t.Fatal(err)
	}
	var grown *wire.PlacementMap
	waitUntil(t, 5*time.Second, "the job's map to grow", func() bool {
		var ok bool
		grown, ok = settled(ctl, m, len(m.Nodes)+1)
		return ok
	})
	var joined *dataplane.Node
	for _, mn := range grown.Nodes {
		if !slices.ContainsFunc(m.Nodes, func(o wire.MapNode) bool { return o.Addr == mn.Addr }) {
			joined = nodes[mn.Addr]
		}
	}
	from := joined.Stats().Requests
	waitUntil(t, 5*time.Second, "the run's requests at the node that joined", func() bool {
		return joined.Stats().Requests > from+50
	})

	if c := <-code; c != 0 {
		t.Fatalf("bench exit %d, stderr %q", c, stderr.String())
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("%v: %q", err, stdout.String())
	}
	if r.Ops == 0 || r.Errors != 0 || !strings.Contains(r.Target, "job="+m.Job) {
		t.Fatalf("result %+v", r)
	}
	if st := ctl.Status(); st.JobCount != 1 {
		t.Fatalf("%d jobs registered after the run, want only %s: %+v", st.JobCount, m.Job, st.Jobs)
	}
	s, err := pocket.Dial(context.Background(), ctlAddr, pocket.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.OpenJob(context.Background(), m.Job, m.Token)
	if err != nil {
		t.Fatalf("the job after the run: %v", err)
	}
	if r.WrittenKeys == 0 || r.DeletedKeys != r.WrittenKeys || r.Cleanup != CleanupDeleted {
		t.Fatalf("result: wrote %d key(s), deleted %d, cleanup %q; want all deleted", r.WrittenKeys, r.DeletedKeys, r.Cleanup)
	}
	ks := NewKeyspace("b64-", keys)
	for i := range keys {
		if _, err := j.Get(context.Background(), string(ks.Key(i))); !errors.Is(err, pocket.ErrNotFound) {
			t.Fatalf("key %s after the run: %v, want not found", ks.Key(i), err)
		}
	}
}

// TestAddrOutsideTheJobsMapStopsAtOnce (a new user's trial): pocket
// bench --addr NODE --job J against a node that is not in the job's
// placement map stops at once, saying so, whether the run preloads (get)
// or not (put). Before, it adopted the node's epoch, was refused at it
// again and again, and stopped only at the stall limit ("no request
// succeeded for 15s (... not in the job's placement map ...; adopted the
// node's epoch 1)"), or, in a run shorter than that, exited 0 with every
// request refused.
func TestAddrOutsideTheJobsMapStopsAtOnce(t *testing.T) {
	ctl, _, nodes := startCluster(t, 3)
	m, err := ctl.RegisterJob("mine", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	var outside string
	for addr := range nodes {
		if !slices.ContainsFunc(m.Nodes, func(n wire.MapNode) bool { return n.Addr == addr }) {
			outside = addr
		}
	}
	if outside == "" {
		t.Fatalf("the job's map %v holds every node", m.Nodes)
	}
	opts := client.ConnOptions{Job: []byte(m.Job), Token: m.Token, Epoch: m.Epoch}
	waitUntil(t, 10*time.Second, "the node outside the map to hear of the job", func() bool {
		_, err := NodeRoom(context.Background(), outside, opts)
		return err != nil && strings.Contains(err.Error(), "not in the job's placement map")
	})
	for _, op := range []string{"put", "get"} {
		args := []string{"--addr", outside, "--job", m.Job, "--token", token.Format(m.Token), "--op", op, "--size", "64",
			"--keys", "50", "--conns", "2", "--pipeline", "4", "--warmup", "0", "--duration", "20s", "--stall-limit", "8s"}
		var stdout, stderr bytes.Buffer
		start := time.Now()
		code := Main(context.Background(), args, &stdout, &stderr)
		took := time.Since(start)
		if code != 1 || took > 4*time.Second || !strings.Contains(stderr.String(), "not in the job's placement map") ||
			!strings.Contains(stderr.String(), "--controller") || strings.Contains(stderr.String(), "no request succeeded") {
			t.Errorf("%s run against a node outside the job's map: exit %d after %v\nstdout:\n%s\nstderr:\n%s\n"+
				"want exit 1 at once, saying the node is not in the job's map", op, code, took, stdout.String(), stderr.String())
		}
		if strings.Contains(stdout.String(), "the rest are left") {
			t.Errorf("%s run: the refused puts counted as written:\n%s", op, stdout.String())
		}
	}
}

// TestValueLargerThanTheJobsNodesSaysSize (a new user's trial): a put
// run of one key whose value is larger than the job's nodes hold says so,
// with the figures (the value, the tier's bytes over the job's nodes),
// and advises a smaller --size; it is not "N wrong responses", nor
// "fewer keys (--keys 1, ...)" for a run of one key already.
func TestValueLargerThanTheJobsNodesSaysSize(t *testing.T) {
	ctl, ctlAddr, _ := startCluster(t, 3)
	m, err := ctl.RegisterJob("mine", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	hold := units.FormatSize(int64(len(m.Nodes)) * 16 << 20) // startCluster's nodes have 16 MiB each
	args := []string{"--controller", ctlAddr, "--job", m.Job, "--token", token.Format(m.Token), "--op", "put", "--size", "40MiB",
		"--keys", "1", "--conns", "1", "--warmup", "0", "--duration", "1s"}
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	msg := stderr.String()
	if code != 1 || !strings.Contains(msg, "a value of 40MiB is larger than the dram tier of the job's") ||
		!strings.Contains(msg, "can hold ("+hold+" in all") || !strings.Contains(msg, "smaller --size") ||
		strings.Contains(msg, "wrong responses") || strings.Contains(msg, "fewer keys") {
		t.Fatalf("40MiB put on the job's %d node(s) of 16MiB: exit %d\nstdout:\n%s\nstderr:\n%s\n"+
			"want exit 1, the value larger than the %s the nodes hold, and a smaller --size", len(m.Nodes), code, stdout.String(), msg, hold)
	}
}

// TestFreshJobFullAdvisesKeysThatFit (a new user's trial): a fresh
// --controller job's bytes are the run's own keys, so the advice after a
// refusal for space counts them as room for the run. Before, the room was
// measured with the run's keys still in it: a fresh job that held 996
// keys of 256 KiB was advised "--keys 13".
func TestFreshJobFullAdvisesKeysThatFit(t *testing.T) {
	_, ctlAddr, _ := startCluster(t, 1) // one node of 16 MiB
	args := []string{"--controller", ctlAddr, "--op", "put", "--size", "512KiB", "--keys", "100", "--conns", "1",
		"--warmup", "0", "--duration", "1s"}
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	msg := stderr.String()
	m := regexp.MustCompile(`fewer keys \(--keys (\d+)`).FindStringSubmatch(msg)
	if code != 1 || m == nil {
		t.Fatalf("100 keys of 512KiB on a 16MiB node: exit %d\nstderr:\n%s\nwant exit 1 advising fewer keys", code, msg)
	}
	// Half the node's 16 MiB holds 16 keys of 512 KiB.
	if keys, _ := strconv.Atoi(m[1]); keys < 8 {
		t.Errorf("advised --keys %d for a fresh job on a 16MiB node; want the keys that fit half of it (16):\n%s", keys, msg)
	}
}
