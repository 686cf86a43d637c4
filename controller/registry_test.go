package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

var testSecret = []byte("controller-test-secret-0123456789")

// quietLog discards what a test's controller or metaclient logs.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func newTest(t testing.TB, cfg Config) *Controller {
	t.Helper()
	cfg.Secret = testSecret
	if cfg.Logger == nil {
		cfg.Logger = quietLog
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dramNode(addr string, capacity int64, mbps float64) *wire.NodeRegister {
	return &wire.NodeRegister{Addr: addr, Cores: 2,
		Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: capacity, Mbps: mbps}}}
}

func mustRegister(t testing.TB, c *Controller, reg *wire.NodeRegister) {
	t.Helper()
	ack, err := c.RegisterNode(reg)
	if err != nil || !ack.Known || ack.State != wire.NodeActive {
		t.Fatalf("register %s: %+v %v", reg.Addr, ack, err)
	}
}

func TestNewNeedsSecret(t *testing.T) {
	if _, err := New(Config{Secret: []byte("short")}); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("short secret: %v", err)
	}
}

func TestNodeRegistration(t *testing.T) {
	c := newTest(t, Config{})
	reg := dramNode("127.0.0.1:7001", 1<<30, 8000)
	noPort := dramNode("localhost", 1, 1)
	if _, err := c.RegisterNode(noPort); !errors.Is(err, wire.ErrBadKey) {
		t.Fatalf("address without port: %v", err)
	}
	mustRegister(t, c, reg)
	hb := &wire.Heartbeat{Addr: reg.Addr, Proof: reg.Proof, RxMbps: 100, TxMbps: 300, CPUPercent: 12,
		Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 4096, Mbps: 8000}}}
	ack, err := c.Heartbeat(hb)
	if err != nil || !ack.Known {
		t.Fatalf("heartbeat: %+v %v", ack, err)
	}
	unknown := &wire.Heartbeat{Addr: "127.0.0.1:9"}
	if ack, err := c.Heartbeat(unknown); err != nil || ack.Known {
		t.Fatalf("unknown node heartbeat: %+v %v", ack, err)
	}
	st := c.Status()
	if len(st.Nodes) != 1 || st.Nodes[0].Tiers[0].UsedBytes != 4096 || st.Nodes[0].TxMbps != 300 ||
		st.Nodes[0].State != wire.NodeActive || st.Nodes[0].Cores != 2 {
		t.Fatalf("status: %+v", st.Nodes)
	}
}

func TestJobIDsAndTokens(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	m1, err := c.RegisterJob("sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := c.RegisterJob("sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if m1.Job != "sort-1" || m2.Job != "sort-2" {
		t.Fatalf("ids %s, %s; want sort-1, sort-2", m1.Job, m2.Job)
	}
	if !token.Verify(testSecret, []byte(m1.Job), m1.Token) || token.Verify(testSecret, []byte(m2.Job), m1.Token) {
		t.Fatal("job token does not bind the job id")
	}
	if m1.Epoch != 1 || m1.Tier != kindDRAM || len(m1.Nodes) != 1 {
		t.Fatalf("map %+v", m1)
	}
	if _, err := c.GetMap(m1.Job, m2.Token); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("other job's token: %v", err)
	}
	// A caller without a token of the id learns nothing of whether it is
	// registered: a job that never was and a live one answer alike (the
	// trial's attacker told them apart by the code).
	for _, id := range []string{"nope-1", m2.Job} {
		if _, err := c.GetMap(id, m1.Token); !errors.Is(err, wire.ErrBadToken) || strings.Contains(err.Error(), "registered") {
			t.Fatalf("job %s with another job's token: %v, want bad token", id, err)
		}
	}
	if _, err := c.GetMap("nope-1", token.SignJob(testSecret, []byte("nope-1"), token.Claims{})); !errors.Is(err, wire.ErrUnknownJob) {
		t.Fatalf("unknown job with a token of its id: %v", err)
	}
	if m, err := c.GetMap(m1.Job, m1.Token); err != nil || m.Job != m1.Job {
		t.Fatalf("get map: %+v %v", m, err)
	}
	for _, name := range []string{"", "a/b", "with space", string(make([]byte, maxNameLen+1))} {
		if _, err := c.RegisterJob(name, wire.JobHints{}); !errors.Is(err, wire.ErrBadKey) {
			t.Errorf("name %q: %v", name, err)
		}
	}
	if _, err := c.DeregisterJob(context.Background(), m1.Job, m2.Token); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("deregister with another job's token: %v", err)
	}
}

// TestRandomJobSeq: without FirstJobSeq, ids are name-N with a random N
// (TestJobNumbersTellNothing), one for each job.
func TestRandomJobSeq(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	m1, err1 := c.RegisterJob("video.encode_2", wire.JobHints{})
	m2, err2 := c.RegisterJob("video.encode_2", wire.JobHints{})
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	re := regexp.MustCompile(`^video\.encode_2-([1-9][0-9]*)$`)
	a, b := re.FindStringSubmatch(m1.Job), re.FindStringSubmatch(m2.Job)
	if a == nil || b == nil {
		t.Fatalf("ids %q %q do not look like name-N", m1.Job, m2.Job)
	}
	na, _ := strconv.ParseUint(a[1], 10, 64)
	nb, _ := strconv.ParseUint(b[1], 10, 64)
	if na == nb || na == 0 || nb == 0 {
		t.Fatalf("numbers %d then %d", na, nb)
	}
}

func TestTierChoice(t *testing.T) {
	c := newTest(t, Config{})
	if _, err := c.RegisterJob("j", wire.JobHints{}); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("no nodes: %v", err)
	}
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil || m.Tier != kindDRAM {
		t.Fatalf("DRAM-only cluster: tier %d %v", m.Tier, err)
	}
	nv := dramNode("127.0.0.1:7002", 1<<30, 8000)
	nv.Tiers = append(nv.Tiers, wire.TierStat{Kind: kindNVMe, CapacityBytes: 100 << 30, Mbps: 4000})
	mustRegister(t, c, nv)
	m, err = c.RegisterJob("j", wire.JobHints{})
	if err != nil || m.Tier != kindNVMe || len(m.Nodes) != 1 || m.Nodes[0].Addr != nv.Addr {
		t.Fatalf("not latency-sensitive: %+v %v", m, err)
	}
	m, err = c.RegisterJob("j", wire.JobHints{LatencySensitive: true})
	if err != nil || m.Tier != kindDRAM || len(m.Nodes) != 2 {
		t.Fatalf("latency-sensitive: %+v %v", m, err)
	}
}

// TestAllotmentsCount: a job's allotment counts against later jobs' spare,
// so a second job lands on the nodes the first left idle, and the
// allotment is released on deregistration.
func TestAllotmentsCount(t *testing.T) {
	// TEST-NET addresses: nothing answers there, so the drops fail fast
	// and no stray process on this machine receives them.
	c := newTest(t, Config{DropTimeout: 200 * time.Millisecond})
	for i := 1; i <= 4; i++ {
		mustRegister(t, c, dramNode(fmt.Sprintf("192.0.2.%d:7000", i), 60e9, 8000))
	}
	a, err := c.RegisterJob("a", wire.JobHints{Lambdas: 20}) // 12000 Mb/s: 2 nodes
	if err != nil || len(a.Nodes) != 2 {
		t.Fatalf("job a: %+v %v", a, err)
	}
	b, err := c.RegisterJob("b", wire.JobHints{Lambdas: 20})
	if err != nil || len(b.Nodes) != 2 {
		t.Fatalf("job b: %+v %v", b, err)
	}
	for _, na := range a.Nodes {
		for _, nb := range b.Nodes {
			if na.Addr == nb.Addr {
				t.Fatalf("job b placed on %s, already allotted to job a, while two nodes were idle", na.Addr)
			}
		}
	}
	st := c.Status()
	if len(st.Jobs) != 2 || st.Jobs[0].AllocMbps != 12000 {
		t.Fatalf("status jobs: %+v", st.Jobs)
	}
	// Deregistering (no live data plane here: the drops fail) frees a's
	// allotment.
	res, err := c.DeregisterJob(context.Background(), a.Job, a.Token)
	if err != nil || res.Failed != 2 || res.Message == "" {
		t.Fatalf("deregister: %+v %v", res, err)
	}
	if _, err := c.GetMap(a.Job, a.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Fatalf("deregistered job still known: %v", err)
	}
	cc, err := c.RegisterJob("c", wire.JobHints{Lambdas: 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range cc.Nodes {
		for _, nb := range b.Nodes {
			if n.Addr == nb.Addr {
				t.Fatalf("job c placed on b's node %s though a's were freed", n.Addr)
			}
		}
	}
}

// TestDeadNodeDetection: a node that stops heartbeating is marked dead
// after DeadAfter, stays in its jobs' maps marked dead with a bumped epoch,
// and comes back with its next heartbeat (another bump).
func TestDeadNodeDetection(t *testing.T) {
	c := newTest(t, Config{HeartbeatInterval: 20 * time.Millisecond, DeadAfter: 100 * time.Millisecond})
	live, silent := dramNode("127.0.0.1:7001", 1<<30, 8000), dramNode("127.0.0.1:7002", 1<<30, 8000)
	mustRegister(t, c, live)
	mustRegister(t, c, silent)
	m, err := c.RegisterJob("j", wire.JobHints{}) // 2 nodes
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // keep the live node alive
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				c.Heartbeat(&wire.Heartbeat{Addr: live.Addr, Proof: live.Proof})
			}
		}
	}()
	defer func() { close(stop); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m2, err := c.GetMap(m.Job, m.Token)
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]wire.NodeState{}
		for _, n := range m2.Nodes {
			states[n.Addr] = n.State
		}
		if states[silent.Addr] == wire.NodeDead {
			if states[live.Addr] != wire.NodeActive || m2.Epoch != 2 {
				t.Fatalf("after death: states %v epoch %d", states, m2.Epoch)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("silent node never marked dead: %v", states)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A dead node takes no new jobs.
	if m3, err := c.RegisterJob("k", wire.JobHints{}); err != nil || len(m3.Nodes) != 1 || m3.Nodes[0].Addr != live.Addr {
		t.Fatalf("new job with a dead node: %+v %v", m3, err)
	}
	ack, err := c.Heartbeat(&wire.Heartbeat{Addr: silent.Addr, Proof: silent.Proof})
	if err != nil || !ack.Known || ack.State != wire.NodeActive {
		t.Fatalf("returning node: %+v %v", ack, err)
	}
	// Its table (a snapshot: it asked from no revision) has both jobs with
	// their epochs, the one whose map does not hold it marked out.
	if len(ack.Jobs) != 2 || !ack.Full || ack.Jobs[0].Job != m.Job || ack.Jobs[0].Epoch != 3 || ack.Jobs[0].Out ||
		ack.Jobs[1].Epoch != 1 || !ack.Jobs[1].Out {
		t.Fatalf("ack jobs %+v, want %s at epoch 3 and another job at epoch 1 marked out", ack.Jobs, m.Job)
	}
}

// TestForgetDeadNodes: a dead node in no job leaves the listing.
func TestForgetDeadNodes(t *testing.T) {
	c := newTest(t, Config{HeartbeatInterval: 10 * time.Millisecond, DeadAfter: 30 * time.Millisecond, ForgetAfter: 30 * time.Millisecond})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	deadline := time.Now().Add(5 * time.Second)
	for len(c.Status().Nodes) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("dead node never forgotten: %+v", c.Status().Nodes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSetNodeState(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 8000))
	m, _ := c.RegisterJob("j", wire.JobHints{})
	if err := c.SetNodeState("127.0.0.1:7001", wire.NodeDraining); err != nil {
		t.Fatal(err)
	}
	if err := c.SetNodeState("127.0.0.1:9", wire.NodeDraining); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	heardAll(t, c)
	m2, _ := c.GetMap(m.Job, m.Token)
	if m2.Epoch != 2 {
		t.Fatalf("epoch %d after a drain, want 2", m2.Epoch)
	}
	m3, err := c.RegisterJob("k", wire.JobHints{})
	if err != nil || len(m3.Nodes) != 1 || m3.Nodes[0].Addr != "127.0.0.1:7002" {
		t.Fatalf("draining node got a new job: %+v %v", m3, err)
	}
}
