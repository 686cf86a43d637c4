package pocket

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

var testSecret = []byte("0123456789abcdef-test-secret")

// testCluster is a controller and nodes in this process, nodes guarded by
// tokens and heartbeating through the real agent.
type testCluster struct {
	t     *testing.T
	ctl   *controller.Controller
	addr  string
	nodes []*clusterNode
	// linger is the nodes' RevokeLinger (0: the default), the
	// controller's when newClusterWith starts it.
	linger time.Duration
}

type clusterNode struct {
	node   *dataplane.Node
	tier   *dataplane.DRAM
	cancel context.CancelFunc
	done   chan struct{}
}

func (n *clusterNode) stop() {
	n.cancel()
	<-n.done
	n.node.Close()
}

func newTestCluster(t *testing.T, nodes int, capacity int64) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	c.startController("127.0.0.1:0")
	for i := 0; i < nodes; i++ {
		c.addNode(capacity)
	}
	c.awaitActive(nodes)
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.stop()
			n.tier.Close()
		}
		c.ctl.Close()
	})
	return c
}

func (c *testCluster) startController(listen string) {
	ctl, err := controller.New(controller.Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 500 * time.Millisecond, Logger: quietLog})
	if err != nil {
		c.t.Fatal(err)
	}
	addr, err := ctl.Listen(listen)
	if err != nil {
		c.t.Fatal(err)
	}
	c.ctl, c.addr = ctl, addr.String()
}

// restartController closes the cluster's controller and starts another
// with cfg on its address (its state restored from cfg.Store); the
// cluster's cleanup closes the new one.
func (c *testCluster) restartController(cfg controller.Config) {
	c.t.Helper()
	c.ctl.Close()
	ctl, err := controller.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := ctl.Listen(c.addr); err != nil {
		ctl.Close()
		c.t.Fatal(err)
	}
	c.ctl = ctl
}

func (c *testCluster) addNode(capacity int64) {
	nd, d := c.newNode(capacity)
	c.runAgent(nd, d, nd.Addr().String())
}

// newNode makes a node of the cluster (its secret) with a DRAM tier of
// capacity bytes, serving on loopback, without an agent (runAgent).
func (c *testCluster) newNode(capacity int64) (*dataplane.Node, *dataplane.DRAM) {
	return c.nodeOn("127.0.0.1:0", capacity)
}

// nodeOn is newNode listening on listen.
func (c *testCluster) nodeOn(listen string, capacity int64) (*dataplane.Node, *dataplane.DRAM) {
	d, err := dataplane.NewDRAM(capacity, dataplane.DRAMOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{AwaitSync: true, Listen: listen, DRAM: d,
		Guard: dataplane.NewTokenGuard(testSecret), Net: netio.Config{Loops: 1}, RevokeLinger: c.linger})
	if err != nil {
		d.Close()
		c.t.Fatal(err)
	}
	return nd, d
}

// resumeAgent starts cn's agent again after cn.cancel stopped it (a node
// cut off from its controller, back): the cluster's cleanup stops it.
func (c *testCluster) resumeAgent(cn *clusterNode) {
	cn.cancel, cn.done = c.startAgent(cn.node, cn.node.Addr().String())
}

// runAgent runs nd's agent (advertising addr) against the cluster's
// controller, as a node of the cluster stopped with it.
func (c *testCluster) runAgent(nd *dataplane.Node, tier *dataplane.DRAM, addr string) {
	cancel, done := c.startAgent(nd, addr)
	cn := &clusterNode{node: nd, tier: tier, cancel: cancel, done: done}
	c.nodes = append(c.nodes, cn)
}

// startAgent runs nd's agent (advertising addr) against the cluster's
// controller until cancel; done closes when it has returned.
func (c *testCluster) startAgent(nd *dataplane.Node, addr string) (cancel context.CancelFunc, done chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	mc := metaclient.New(c.addr, metaclient.Options{Secret: testSecret, Logger: quietLog})
	go func() {
		defer close(done)
		defer mc.Close()
		_ = agent.Run(ctx, agent.Config{Node: nd, Addr: addr, Controller: mc, Logger: quietLog})
	}()
	return cancel, done
}

func (c *testCluster) awaitActive(n int) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		active := 0
		for _, ns := range c.ctl.Status().Nodes {
			if ns.State == wire.NodeActive {
				active++
			}
		}
		if active == n {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d of %d nodes active", active, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *testCluster) store() *Store {
	s, err := Dial(context.Background(), c.addr, Config{ChunkSize: 1 << 20})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Close() })
	return s
}

func (c *testCluster) used() int64 {
	var u int64
	for _, n := range c.nodes {
		u += n.tier.Usage().Used
	}
	return u
}

func TestClusterRoundTrips(t *testing.T) {
	c := newTestCluster(t, 3, 256<<20)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "sort", Hints{Lambdas: 40})
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Map().Nodes) != 3 {
		t.Fatalf("40 lambdas x 600 Mb/s over 8 Gb/s nodes should take all 3 nodes, got %d", len(j.Map().Nodes))
	}
	for i, size := range []int{0, 1, 1 << 10, 1<<20 + 1, 64 << 20} {
		val := randBytes(size, uint64(i+10))
		key := fmt.Sprintf("in/%d", size)
		if err := j.Put(ctx, key, val); err != nil {
			t.Fatal(err)
		}
		got, err := j.Get(ctx, key)
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("%d bytes: %v", size, err)
		}
	}
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	// A get's reply holds its value's chunk until the node's writer is
	// done with it, which may be after the client has read the last byte:
	// the bytes come back once those references are released.
	if !waitUntil(5*time.Second, func() bool { return c.used() == 0 }) {
		t.Fatalf("%d bytes still used 5 s after deregistering every job", c.used())
	}
}

func TestClusterIsolationAndTokens(t *testing.T) {
	c := newTestCluster(t, 3, 64<<20)
	ctx := context.Background()
	s := c.store()
	a, err := s.RegisterJob(ctx, "a", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.RegisterJob(ctx, "b", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "secret", []byte("a's data")); err != nil {
		t.Fatal(err)
	}
	// Job b's token used on job a's id: every node refuses it.
	forged := a.Map()
	forged.Token = b.Token()
	fj, _ := s.newJob(forged)
	for name, op := range map[string]func() error{
		"get":    func() error { _, err := fj.Get(ctx, "secret"); return err },
		"list":   func() error { _, err := fj.List(ctx, ""); return err },
		"delete": func() error { return fj.Delete(ctx, "secret") },
		"put":    func() error { return fj.Put(ctx, "secret", []byte("x")) },
	} {
		if err := op(); !errors.Is(err, wire.ErrBadToken) {
			t.Errorf("%s with another job's token: %v", name, err)
		}
	}
	// No token at all.
	bare := a.Map()
	bare.Token = nil
	nj, _ := s.newJob(bare)
	if _, err := nj.Get(ctx, "secret"); !errors.Is(err, wire.ErrBadToken) {
		t.Errorf("get without token: %v", err)
	}
	// Job b sees nothing of a's.
	if ents, err := b.List(ctx, ""); err != nil || len(ents) != 0 {
		t.Errorf("b lists %v, %v", ents, err)
	}
	if _, err := b.Get(ctx, "secret"); !errors.Is(err, ErrNotFound) {
		t.Errorf("b reads a's key: %v", err)
	}
	if got, err := a.Get(ctx, "secret"); err != nil || string(got) != "a's data" {
		t.Errorf("a's data after the attempts: %q %v", got, err)
	}
}

func TestClusterPersistAfterJob(t *testing.T) {
	c := newTestCluster(t, 3, 64<<20)
	ctx := context.Background()
	s := c.store()
	j, err := s.RegisterJob(ctx, "keep", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "kept", []byte("stays"), Persist()); err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "gone", []byte("goes")); err != nil {
		t.Fatal(err)
	}
	cred := j.Credential()
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	// The job is gone from the controller, but the nodes still hold the
	// persistent value: read-only, for the job itself and for whoever
	// opens its credential (here another store, as another process would).
	other := c.store()
	defer other.Close()
	left, err := other.OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	for name, jb := range map[string]*Job{"job": j, "credential": left} {
		if got, err := jb.Get(ctx, "kept"); err != nil || string(got) != "stays" {
			t.Fatalf("%s: persistent value: %q %v", name, got, err)
		}
		if _, err := jb.Get(ctx, "gone"); !errors.Is(err, ErrNotFound) && !errors.Is(err, wire.ErrRevoked) {
			t.Fatalf("%s: non-persistent value after deregister: %v", name, err)
		}
		if err := jb.Put(ctx, "new", []byte("x"), Persist()); !errors.Is(err, wire.ErrRevoked) {
			t.Fatalf("%s: put after deregister: %v", name, err)
		}
	}
	if err := left.Delete(ctx, "kept"); err != nil {
		t.Fatalf("delete of a persisted value: %v", err)
	}
	if _, err := j.Get(ctx, "kept"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("persisted value after its delete: %v", err)
	}
}

func TestClusterKilledNode(t *testing.T) {
	c := newTestCluster(t, 3, 64<<20)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "k", Hints{Lambdas: 40})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 90; i++ {
		if err := j.Put(ctx, fmt.Sprint(i), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	victim := c.nodes[0]
	victim.stop()
	ok, lost := 0, 0
	for i := 0; i < 90; i++ {
		got, err := j.Get(ctx, fmt.Sprint(i))
		switch {
		case err == nil && len(got) == 1 && got[0] == byte(i):
			ok++
		case errors.Is(err, ErrUnavailable):
			if !bytes.Contains([]byte(err.Error()), []byte(victim.node.Addr().String())) {
				t.Errorf("error does not name the dead node: %v", err)
			}
			lost++
		default:
			t.Fatalf("key %d: %v", i, err)
		}
	}
	if ok == 0 || lost == 0 {
		t.Fatalf("ok %d, unavailable %d", ok, lost)
	}
	// Once the controller marks the node dead, the refreshed map says so.
	deadline := time.Now().Add(5 * time.Second)
	for j.refresh(ctx) == nil && !j.Map().Dead[victim.node.Addr().String()] {
		if time.Now().After(deadline) {
			t.Fatal("controller never marked the node dead")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := j.Put(ctx, "new", []byte("v")); err != nil && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("put after the death: %v", err)
	}
}

func TestClusterControllerRestart(t *testing.T) {
	c := newTestCluster(t, 3, 64<<20)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "r", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	addr := c.addr
	c.ctl.Close()
	time.Sleep(300 * time.Millisecond) // nodes' heartbeats fail meanwhile
	// Data keeps flowing without a controller.
	if got, err := j.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("get with the controller down: %q %v", got, err)
	}
	c.startController(addr)
	c.awaitActive(3) // every node re-registered by itself
	for _, n := range c.nodes {
		select {
		case <-n.done:
			t.Fatal("a node's agent exited")
		default:
		}
	}
}

// countingNode wraps a node address with a TCP proxy that counts the
// bytes each way, so a test can see how many frames a call sends.
func TestOneRoundTripSmallGet(t *testing.T) {
	c := newTestCluster(t, 3, 64<<20)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "rt", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	val := randBytes(1<<10, 3)
	if err := j.Put(ctx, "one", val); err != nil {
		t.Fatal(err)
	}
	before := requests(c)
	if got, err := j.Get(ctx, "one"); err != nil || !bytes.Equal(got, val) {
		t.Fatal(err)
	}
	if d := requests(c) - before; d != 1 {
		t.Fatalf("a 1 KiB get took %d requests across the nodes, want exactly 1", d)
	}
}

func requests(c *testCluster) uint64 {
	var n uint64
	for _, cn := range c.nodes {
		n += cn.node.Stats().Requests
	}
	return n
}

var _ = net.Dial

// TestOpenJobTakesPrintedToken: OpenJob takes the token as pocket job
// register prints it ($POCKET_TOKEN, hex) as well as its bytes. Before,
// the printed form answered "bad token: token does not grant job" (a new
// user's trial: Python's open_job takes hex, the Go SDK did not).
func TestOpenJobTakesPrintedToken(t *testing.T) {
	c := newTestCluster(t, 1, 64<<20)
	ctx := context.Background()
	s := c.store()
	j, err := s.RegisterJob(ctx, "printed", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, tok := range [][]byte{j.Token(), []byte(hex.EncodeToString(j.Token())), []byte(hex.EncodeToString(j.Token()) + "\n")} {
		o, err := s.OpenJob(ctx, j.ID(), tok)
		if err != nil {
			t.Fatalf("open with a %d-byte token: %v", len(tok), err)
		}
		if v, err := o.Get(ctx, "k"); err != nil || string(v) != "v" {
			t.Fatalf("get through the job opened with a %d-byte token: %q, %v", len(tok), v, err)
		}
	}
	bad := []byte(hex.EncodeToString(j.Token()))
	if last := len(bad) - 1; bad[last] == '0' { // still hex: another token's MAC
		bad[last] = '1'
	} else {
		bad[last] = '0'
	}
	if _, err := s.OpenJob(ctx, j.ID(), bad); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("open with another token's text: %v; want bad token", err)
	}
}

// TestRegisterJobGivesAllotment: the SDK hands out what the controller
// allotted at registration (bandwidth, bytes, where the size came from),
// as pocket job register prints it; before, only the CLI showed it (a new
// user's trial: a Go registration of 250 lambdas on a small cluster
// returned silently). A job opened by id and token has its map's
// bandwidth and bytes (before, none: a lambda that opened the job read
// zeros, a new user's trial).
func TestRegisterJobGivesAllotment(t *testing.T) {
	c := newTestCluster(t, 2, 64<<20)
	ctx := context.Background()
	s := c.store()
	j, err := s.RegisterJob(ctx, "allot", Hints{PeakMbps: 1200, CapacityBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	a := j.Allotment()
	if a.Mbps != 1200 || a.Bytes != 8<<20 || a.SizedFrom != "hints" {
		t.Fatalf("allotment of a hinted job: %+v; want 1200 Mb/s, 8 MiB, sized from hints", a)
	}
	if err := j.Put(ctx, "k", []byte("v")); err != nil { // a map fetch or two later it is still there
		t.Fatal(err)
	}
	if j.Allotment() != a {
		t.Fatalf("allotment changed: %+v, was %+v", j.Allotment(), a)
	}
	d, err := s.RegisterJob(ctx, "allot-default", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if a := d.Allotment(); a.Mbps <= 0 || a.SizedFrom != "default" {
		t.Fatalf("allotment of a job without hints or profile: %+v; want Pocket's default", a)
	}
	o, err := s.OpenJob(ctx, j.ID(), j.Token())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := o.Allotment(), (Allotment{Mbps: 1200, Bytes: 8 << 20}); got != want {
		t.Fatalf("allotment of an opened job: %+v; want its map's %+v", got, want)
	}
}
