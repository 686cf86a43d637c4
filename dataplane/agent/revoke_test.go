package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

var testSecret = []byte("agent-test-secret-0123456789abc")

// quietLog discards what a test's controller and clients log.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// cluster is a controller and token-guarded nodes heartbeating through
// the real agent, in this process, over loopback.
type cluster struct {
	t     *testing.T
	ctl   *controller.Controller
	addr  string
	nodes []*dataplane.Node
	dram  []*dataplane.DRAM
}

func newCluster(t *testing.T, nodes int) *cluster { return newClusterTLS(t, nodes, "") }

// newClusterTLS is newCluster over mutual TLS with the certificates in
// tlsDir (pki.Init) when it is not empty.
func newClusterTLS(t *testing.T, nodes int, tlsDir string) *cluster {
	t.Helper()
	cfg := controller.Config{Secret: testSecret, HeartbeatInterval: 50 * time.Millisecond,
		DeadAfter: 2 * time.Second, Logger: quietLog}
	var nodeTLS *tls.Config
	if tlsDir != "" {
		var err error
		if cfg.TLS, err = pki.ServerConfig(tlsDir, pki.Members[pki.RoleController]); err != nil {
			t.Fatal(err)
		}
		if nodeTLS, err = pki.ClientConfig(tlsDir, pki.Members[pki.RoleNode]); err != nil {
			t.Fatal(err)
		}
	}
	ctl, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, ctl: ctl, addr: a.String()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, nodes)
	t.Cleanup(func() {
		cancel()
		for range c.nodes {
			<-done
		}
		for i, n := range c.nodes {
			n.Close()
			c.dram[i].Close()
		}
		ctl.Close()
	})
	for i := 0; i < nodes; i++ {
		d, err := dataplane.NewDRAM(64<<20, dataplane.DRAMOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d,
			Guard: dataplane.NewTokenGuard(testSecret), Net: netio.Config{Loops: 1}})
		if err != nil {
			d.Close()
			t.Fatal(err)
		}
		c.nodes, c.dram = append(c.nodes, n), append(c.dram, d)
		mc := metaclient.New(c.addr, metaclient.Options{Secret: testSecret, TLS: nodeTLS, Logger: quietLog})
		go func() {
			defer func() { done <- struct{}{} }()
			defer mc.Close()
			_ = Run(ctx, Config{Node: n, Addr: n.Addr().String(), Controller: mc})
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ctl.Status().Nodes) < nodes {
		if time.Now().After(deadline) {
			t.Fatal("nodes never registered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// op sends one request to a node and returns its error.
// putWhenKnown puts key as op does, sending it again while the node
// answers that it has not heard of the job from its controller yet (it
// refuses a new job's puts until then, as by a node behind: a stale epoch
// naming 0), for up to 2 s, as the SDKs do.
func putWhenKnown(t *testing.T, n *dataplane.Node, job string, tok []byte, epoch uint64, key string) error {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		err := op(t, n, wire.OpPut, job, tok, epoch, key)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 0 || time.Now().After(deadline) {
			return err
		}
	}
}

func op(t *testing.T, n *dataplane.Node, o wire.Op, job string, tok []byte, epoch uint64, key string) error {
	t.Helper()
	c, err := client.DialConn(context.Background(), n.Addr().String(), client.ConnOptions{Job: []byte(job)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var payload []byte
	if o == wire.OpPut {
		payload = []byte("value")
	}
	if _, err := c.Send(o, 0, &wire.Request{Job: []byte(job), Key: []byte(key), Token: tok, Epoch: epoch}, payload); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return r.Err()
}

// TestDeregisterRevokesOnEveryNode (issue 11, A): after `job deregister`
// the job's token is refused on every node, the ones outside its map
// included (they hear of it from their next heartbeat), and what the
// token wrote anywhere is dropped. The old code kept accepting the token
// for puts, gets and lists, and data written to a node outside the job's
// map (or after the drop) stayed, counted against no job, never freed.
func TestDeregisterRevokesOnEveryNode(t *testing.T) {
	c := newCluster(t, 2)
	ctx := context.Background()
	mc := metaclient.New(c.addr, metaclient.Options{Logger: quietLog})
	defer mc.Close()
	// A capacity hint and no bandwidth hint: one node.
	var m *wire.PlacementMap
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m, err = mc.RegisterJob(ctx, "victim", wire.JobHints{CapacityBytes: 1 << 20}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(m.Nodes) != 1 {
		t.Fatalf("map %+v, want one node", m.Nodes)
	}
	in, out := c.nodes[0], c.nodes[1]
	if in.Addr().String() != m.Nodes[0].Addr {
		in, out = out, in
	}
	// A put to the node outside the map before it has heard of the job
	// (pending: a job newer than its table takes any epoch) lands there;
	// it is the one way a client writes outside its map (jobtable.go).
	// Its heartbeats may have brought the job already: then the put is
	// refused, and the node holds none of the job's data.
	outPut := op(t, out, wire.OpPut, m.Job, m.Token, m.Epoch, "before")
	if outPut != nil && !errors.Is(outPut, wire.ErrStaleEpoch) {
		t.Fatalf("put on the node outside the map: %v, want taken (pending) or stale", outPut)
	}
	// Wait until both nodes' heartbeats have brought the job.
	time.Sleep(200 * time.Millisecond)
	// The node outside the map refuses the map's epoch, and a newer one.
	for _, e := range []uint64{m.Epoch, m.Epoch + 1} {
		if err := op(t, out, wire.OpPut, m.Job, m.Token, e, "before"); !errors.Is(err, wire.ErrStaleEpoch) {
			t.Fatalf("put at epoch %d (the map's is %d) on the node outside it: %v, want stale epoch", e, m.Epoch, err)
		}
	}
	epochs := map[*dataplane.Node]uint64{in: m.Epoch, out: m.Epoch}
	if err := op(t, in, wire.OpPut, m.Job, m.Token, m.Epoch, "before"); err != nil {
		t.Fatalf("put on %s before deregistration: %v", in.Addr(), err)
	}
	if _, err := mc.DeregisterJob(ctx, m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	// Within a few heartbeats (50 ms each) every node refuses the token.
	for _, n := range []*dataplane.Node{in, out} {
		deadline := time.Now().Add(2 * time.Second)
		for {
			err := op(t, n, wire.OpPut, m.Job, m.Token, epochs[n], "after")
			if errors.Is(err, wire.ErrRevoked) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s (in map: %v) still takes the deregistered job's puts: %v", n.Addr(), n == in, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Puts are refused from the revocation on; the rest answer busy
		// while the node drops the job's data (off the heartbeat), then
		// revoked.
		for err := op(t, n, wire.OpGet, m.Job, m.Token, epochs[n], "before"); errors.Is(err, wire.ErrBusy) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			err = op(t, n, wire.OpGet, m.Job, m.Token, epochs[n], "before")
		}
		for _, o := range []wire.Op{wire.OpGet, wire.OpList, wire.OpStat, wire.OpDelete} {
			if err := op(t, n, o, m.Job, m.Token, epochs[n], "before"); !errors.Is(err, wire.ErrRevoked) {
				t.Errorf("node %s: %s with the revoked token: %v", n.Addr(), o, err)
			}
		}
	}
	// Nothing the token wrote survives, on either node.
	deadline = time.Now().Add(2 * time.Second)
	for {
		left := int64(0)
		for _, n := range c.nodes {
			for _, tier := range n.Tiers() {
				left += tier.JobUsage([]byte(m.Job))
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of the deregistered job remain", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNodeEpochFromControllerOnly (issue 11, B): a client's epoch cannot
// move a node's: a request with epoch 2^64-1 is refused naming the node's
// epoch, after it the job's current map still works, and epoch 0 is
// refused as stale where the node knows the epoch from the controller.
func TestNodeEpochFromControllerOnly(t *testing.T) {
	c := newCluster(t, 1)
	ctx := context.Background()
	mc := metaclient.New(c.addr, metaclient.Options{Logger: quietLog})
	defer mc.Close()
	m, err := mc.RegisterJob(ctx, "epochs", wire.JobHints{CapacityBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	n := c.nodes[0]
	time.Sleep(200 * time.Millisecond) // the node learns the job and its epoch
	var we *wire.Error
	if err := op(t, n, wire.OpPut, m.Job, m.Token, ^uint64(0), "k"); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != m.Epoch {
		t.Fatalf("a newer epoch than the node's: %v, want stale naming %d", err, m.Epoch)
	}
	if err := op(t, n, wire.OpPut, m.Job, m.Token, m.Epoch, "k"); err != nil {
		t.Fatalf("the job's current map after a client sent epoch 2^64-1: %v (locked out)", err)
	}
	if err := op(t, n, wire.OpGet, m.Job, m.Token, 0, "k"); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != m.Epoch {
		t.Fatalf("epoch 0 on a guarded node: %v, want stale (current %d)", err, m.Epoch)
	}
}

// TestNodeSyncsLargeTable: a node joining a controller that holds more jobs
// than one ack carries gets its table page by page, heartbeat after
// heartbeat without waiting the interval.
func TestNodeSyncsLargeTable(t *testing.T) {
	const jobs = 9000
	c := newCluster(t, 1)
	n := c.nodes[0]
	for i := 0; i < jobs; i++ {
		if _, err := c.ctl.RegisterJob("bulk", wire.JobHints{CapacityBytes: 1}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(n.PlacedJobs()) != jobs {
		if time.Now().After(deadline) {
			t.Fatalf("node holds %d of %d jobs", len(n.PlacedJobs()), jobs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterOverTLS: nodes register and heartbeat over mutual TLS with
// node certificates, a job client with a client certificate registers,
// writes and deregisters, and the revocation reaches the node.
func TestClusterOverTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := pki.Init(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	c := newClusterTLS(t, 1, dir)
	cli, err := pki.ClientConfig(dir, pki.Members[pki.RoleClient])
	if err != nil {
		t.Fatal(err)
	}
	mc := metaclient.New(c.addr, metaclient.Options{TLS: cli, Logger: quietLog})
	defer mc.Close()
	ctx := context.Background()
	m, err := mc.RegisterJob(ctx, "tls", wire.JobHints{CapacityBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	n := c.nodes[0]
	if err := putWhenKnown(t, n, m.Job, m.Token, m.Epoch, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.DeregisterJob(ctx, m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	if err := op(t, n, wire.OpGet, m.Job, m.Token, m.Epoch, "k"); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("after deregistration over TLS: %v", err)
	}
	if _, err := mc.Status(ctx); !errors.Is(err, wire.ErrForbidden) {
		t.Fatalf("a client certificate read the status: %v", err)
	}
}
