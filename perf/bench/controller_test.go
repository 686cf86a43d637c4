package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/internal/token"
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
