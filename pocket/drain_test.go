package pocket

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

var drainSecret = []byte("drain-test-secret-0123456789")

// drainNode is an in-process storage node with its heartbeat agent.
type drainNode struct {
	node   *dataplane.Node
	tier   *dataplane.DRAM
	cancel context.CancelFunc
	done   chan struct{}
}

// startDrainCluster starts a controller and n nodes of capacity bytes.
func startDrainCluster(t *testing.T, n int, capacity int64) (*controller.Controller, string, []*drainNode) {
	t.Helper()
	ctl, addr := startTestController(t, 2*time.Second)
	var nodes []*drainNode
	for i := 0; i < n; i++ {
		nodes = append(nodes, addDrainNode(t, addr, capacity))
	}
	waitFor(t, 10*time.Second, "nodes active", func() bool { return countState(ctl, wire.NodeActive) == n })
	return ctl, addr, nodes
}

// addDrainNode starts a node of capacity bytes with its agent, reporting
// to the controller at addr; it stops when the test ends, before the
// controller (registered earlier) closes.
func addDrainNode(t *testing.T, addr string, capacity int64) *drainNode {
	t.Helper()
	d, nd := newDRAMNode(t, capacity)
	ctx, cancel := context.WithCancel(context.Background())
	dn := &drainNode{node: nd, tier: d, cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() {
		dn.cancel()
		<-dn.done
		dn.node.Close()
		dn.tier.Close()
	})
	mc := metaclient.New(addr, metaclient.Options{Secret: drainSecret, Logger: quietLog})
	go func() {
		defer close(dn.done)
		defer mc.Close()
		_ = agent.Run(ctx, agent.Config{Node: nd, Addr: nd.Addr().String(), Controller: mc})
	}()
	return dn
}

// startTestController starts a controller with drainSecret, 100 ms
// heartbeats and nodes declared dead after deadAfter, listening on
// loopback, and returns it with its address. It closes when the test ends,
// after the cleanups registered later (the nodes') have run.
func startTestController(t *testing.T, deadAfter time.Duration) (*controller.Controller, string) {
	t.Helper()
	ctl, err := controller.New(controller.Config{Secret: drainSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: deadAfter, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	a, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ctl, a.String()
}

// newDRAMNode makes a DRAM tier of capacity bytes and a node serving it on
// loopback (one event loop, drainSecret's token guard, AwaitSync). The
// caller closes both.
func newDRAMNode(t *testing.T, capacity int64) (*dataplane.DRAM, *dataplane.Node) {
	t.Helper()
	d, err := dataplane.NewDRAM(capacity, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{AwaitSync: true, Listen: "127.0.0.1:0", DRAM: d,
		Guard: dataplane.NewTokenGuard(drainSecret), Net: netio.Config{Loops: 1}, Logger: quietLog})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	return d, nd
}

func countState(ctl *controller.Controller, s wire.NodeState) int {
	k := 0
	for _, n := range ctl.Status().Nodes {
		if n.State == s {
			k++
		}
	}
	return k
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// drainData names a set of values and their sizes, many small ones and
// multi-chunk objects, totalling at least total bytes. Contents come from
// content, so a large set costs no memory in the test.
func drainData(total int64, seed int64) map[string]int {
	rng := rand.New(rand.NewSource(seed))
	vals := map[string]int{}
	var sum int64
	for i := 0; sum < total; i++ {
		size := 1 << 10
		if i%8 == 0 {
			size = (1 << 20) + rng.Intn(1<<20) // two chunks of 1 MiB
		}
		vals[fmt.Sprintf("d/%06d", i)] = size
		sum += int64(size)
	}
	return vals
}

// content is the value of key: a pseudo-random stream seeded by the key.
func content(key string, size int) []byte {
	var seed int64
	for _, c := range key {
		seed = seed*131 + int64(c)
	}
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// drainTestBytes is the data a drain test spreads over its three nodes:
// 64 MiB, or $POCKET_DRAIN_TEST_BYTES (e.g. 3GiB, so that the drained
// node holds about 1 GiB) for a run by hand.
func drainTestBytes(t *testing.T) int64 {
	v := os.Getenv("POCKET_DRAIN_TEST_BYTES")
	if v == "" {
		return 64 << 20
	}
	n, err := units.ParseSize(v)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDrainLosesNoKey fills a job spread over three nodes with 64 MiB,
// drains the fullest node while readers and a writer keep going, and
// checks that the node leaves, ends empty, and every key reads back
// byte-exact, during the drain and after.
func TestDrainLosesNoKey(t *testing.T) {
	total := drainTestBytes(t)
	ctl, addr, nodes := startDrainCluster(t, 3, max(256<<20, total))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second+time.Duration(total>>20)*100*time.Millisecond)
	defer cancel()
	s, err := Dial(ctx, addr, Config{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	job, err := s.RegisterJob(ctx, "drain", Hints{PeakMbps: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(job.Map().Nodes); n != 3 {
		t.Fatalf("job on %d nodes, want 3", n)
	}
	vals := drainData(total, 1)
	putAll(ctx, t, job, vals)

	victim := fullest(nodes)
	before, usedBefore := victim.tier.Usage().Values, victim.tier.Usage().Used
	if before == 0 {
		t.Fatal("the fullest node holds nothing")
	}
	addrV := victim.node.Addr().String()

	ch := startChurn(ctx, job, vals)

	if _, err := ctl.Drain(addrV, 30*time.Second+time.Duration(total>>20)*50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	waitFor(t, 40*time.Second+time.Duration(total>>20)*50*time.Millisecond, "the drained node to leave", func() bool {
		for _, n := range ctl.Status().Nodes {
			if n.Addr == addrV {
				return false
			}
		}
		return true
	})
	took := time.Since(t0)
	time.Sleep(300 * time.Millisecond) // reads keep going across the second epoch bump
	written := ch.stop(t)
	t.Logf("drained %d values, %d MiB, off %s in %v; %d reads and %d writes during the drain",
		before, usedBefore>>20, addrV, took, ch.reads.Load(), ch.writes.Load())
	if u := victim.tier.Usage(); u.Values != 0 {
		t.Fatalf("drained node still holds %d values", u.Values)
	}
	for _, n := range job.Map().Nodes {
		if n.Addr == addrV {
			t.Fatal("the job's map still names the drained node")
		}
	}
	checkAll(ctx, t, job, vals)
	checkAll(ctx, t, job, written)
}

// churn is two readers checking the values of vals and a writer putting
// new 3,000-byte values (w/NNNNN), until stopped.
type churn struct {
	mu            sync.Mutex
	written       map[string]int
	halt          chan struct{}
	wg            sync.WaitGroup
	reads, writes atomic.Int64
	errs          chan error
}

// startChurn starts a churn on job.
func startChurn(ctx context.Context, job *Job, vals map[string]int) *churn {
	ch := &churn{written: map[string]int{}, halt: make(chan struct{}), errs: make(chan error, 16)}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	for r := 0; r < 2; r++ {
		ch.wg.Add(1)
		go ch.read(ctx, job, keys, vals, int64(r))
	}
	ch.wg.Add(1)
	go ch.write(ctx, job)
	return ch
}

func (ch *churn) halted() bool {
	select {
	case <-ch.halt:
		return true
	default:
		return false
	}
}

func (ch *churn) read(ctx context.Context, job *Job, keys []string, vals map[string]int, seed int64) {
	defer ch.wg.Done()
	rng := rand.New(rand.NewSource(seed))
	for !ch.halted() {
		k := keys[rng.Intn(len(keys))]
		got, err := job.Get(ctx, k)
		if err != nil || !bytes.Equal(got, content(k, vals[k])) {
			ch.errs <- fmt.Errorf("read %s during the drain: %v (got %d bytes, want %d)", k, err, len(got), vals[k])
			return
		}
		ch.reads.Add(1)
	}
}

func (ch *churn) write(ctx context.Context, job *Job) {
	defer ch.wg.Done()
	for i := 0; !ch.halted(); i++ {
		k := fmt.Sprintf("w/%05d", i)
		if err := job.Put(ctx, k, content(k, 3000)); err != nil {
			ch.errs <- fmt.Errorf("put %s during the drain: %v", k, err)
			return
		}
		ch.mu.Lock()
		ch.written[k] = 3000
		ch.mu.Unlock()
		ch.writes.Add(1)
	}
}

// stop stops the churn, fails t on the first error it met, and returns
// the values it wrote.
func (ch *churn) stop(t *testing.T) map[string]int {
	t.Helper()
	close(ch.halt)
	ch.wg.Wait()
	select {
	case err := <-ch.errs:
		t.Fatal(err)
	default:
	}
	return ch.written
}

func putAll(ctx context.Context, t *testing.T, job *Job, vals map[string]int) {
	t.Helper()
	for k, size := range vals {
		if err := job.Put(ctx, k, content(k, size)); err != nil {
			t.Fatal(err)
		}
	}
}

func checkAll(ctx context.Context, t *testing.T, job *Job, vals map[string]int) {
	t.Helper()
	for k, size := range vals {
		got, err := job.Get(ctx, k)
		if err != nil {
			t.Fatalf("get %s after the drain: %v", k, err)
		}
		if !bytes.Equal(got, content(k, size)) {
			t.Fatalf("get %s after the drain: %d bytes differ from the %d put", k, len(got), size)
		}
	}
}

func fullest(nodes []*drainNode) *drainNode {
	best := nodes[0]
	for _, n := range nodes[1:] {
		if n.tier.Usage().Used > best.tier.Usage().Used {
			best = n
		}
	}
	return best
}
