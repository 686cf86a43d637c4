package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"
	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// fakeMaps stands in for the controller's GetMap: it hands out the map a
// test publishes, counting the calls.
type fakeMaps struct {
	mu    sync.Mutex
	m     *wire.PlacementMap
	calls atomic.Int64
}

func (f *fakeMaps) publish(m *wire.PlacementMap) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m = m
}

func (f *fakeMaps) GetMap(ctx context.Context, job string, tok []byte) (*wire.PlacementMap, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || f.m.Job != job {
		return nil, wire.ErrUnknownJob
	}
	if !bytes.Equal(tok, f.m.Token) {
		return nil, wire.ErrBadToken
	}
	m := *f.m
	m.Nodes = append([]wire.MapNode(nil), f.m.Nodes...)
	return &m, nil
}

// moveNode is a token-guarded storage node with an agent whose mover
// fetches maps from a fakeMaps.
type moveNode struct {
	n    *dataplane.Node
	addr string
	a    *agent
}

const moveJob, moveGen = "elastic", 1

// newMoveNodes starts k nodes over loopback, each with an agent and a
// running mover; everything stops at the test's end.
// guardedNode is a node with a DRAM tier of dram bytes, checking tokens
// of testSecret, on loops event loops; the test's cleanup closes it.
func guardedNode(t *testing.T, dram int64, loops int) (*dataplane.Node, *dataplane.DRAM) {
	t.Helper()
	d, err := dataplane.NewDRAM(dram, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return guardedTierNode(t, d, loops), d
}

// guardedTierNode is guardedNode over a given tier, which the caller
// closes (after the node: register its cleanup first).
func guardedTierNode(t *testing.T, tier dataplane.Tier, loops int) *dataplane.Node {
	t.Helper()
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: tier,
		Guard: dataplane.NewTokenGuard(testSecret), Net: netio.Config{Loops: loops}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func newMoveNodes(t *testing.T, k int, src mapSource) []*moveNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	data := client.New(client.Options{ConnsPerNode: 2})
	var ns []*moveNode
	t.Cleanup(func() {
		cancel()
		for _, mn := range ns {
			mn.a.move.stop()
		}
		_ = data.Close()
	})
	for i := 0; i < k; i++ {
		n, _ := guardedNode(t, 16<<20, 1)
		addr := n.Addr().String()
		m := newMover(n, src, data, addr, quietLog)
		m.start(ctx, nil)
		a := &agent{cfg: Config{Node: n, Addr: addr, Logger: quietLog}, ctx: ctx, move: m}
		ns = append(ns, &moveNode{n: n, addr: addr, a: a})
	}
	return ns
}

// ack hands the node a heartbeat ack listing the job at epoch (0: the
// node is not in its map); rev 1 is the first snapshot.
func (mn *moveNode) ack(rev, epoch uint64) {
	mn.a.ack(&wire.NodeAck{State: wire.NodeActive, Rev: rev, Full: rev == 1,
		Jobs: []wire.JobEpoch{{Job: moveJob, Epoch: epoch, Gen: moveGen}}})
}

// mapOf builds the job's map of the given epoch from (node, state) pairs.
func mapOf(tok []byte, epoch uint64, nodes ...any) *wire.PlacementMap {
	m := &wire.PlacementMap{Job: moveJob, Epoch: epoch, Token: tok}
	for i := 0; i < len(nodes); i += 2 {
		m.Nodes = append(m.Nodes, wire.MapNode{Addr: nodes[i].(*moveNode).addr, Weight: 1, State: nodes[i+1].(wire.NodeState)})
	}
	return m
}

// ownerOf is a key's owner among nodes, as clients and movers place it.
func ownerOf(key string, nodes ...*moveNode) *moveNode {
	ps := make([]placement.Node, len(nodes))
	for i, mn := range nodes {
		ps[i] = placement.Node{ID: mn.addr, Weight: 1}
	}
	return nodes[placement.Pick(ps, []byte(key), 0)]
}

// doBehind is do sent again, as the SDKs do, while the node refuses it
// naming an epoch older than the request's (it has not heard of the map
// yet: its ack is on its way), for at most 5 s.
func doBehind(t *testing.T, mn *moveNode, op wire.Op, tok []byte, epoch uint64, key string, val []byte) ([]byte, error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := do(t, mn, op, tok, epoch, key, val)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch >= epoch || time.Now().After(deadline) {
			return got, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func do(t *testing.T, mn *moveNode, op wire.Op, tok []byte, epoch uint64, key string, val []byte) ([]byte, error) {
	t.Helper()
	c := client.New(client.Options{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := wire.Request{Job: []byte(moveJob), Key: []byte(key), Token: tok, Epoch: epoch}
	r, err := c.Do(ctx, mn.addr, op, 0, &req, val, nil)
	return r.Payload, err
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reported is whether a node's heartbeat carries exactly want.
func reported(mn *moveNode, want ...wire.MoveReport) bool {
	var hb wire.Heartbeat
	mn.a.report(&hb)
	if len(hb.Moves) != len(want) {
		return false
	}
	for i := range want {
		if hb.Moves[i] != want[i] {
			return false
		}
	}
	return true
}

// checkPlaced fails unless every key is on its owner among owners, with
// its value, and nowhere else.
func checkPlaced(t *testing.T, all []*moveNode, tok []byte, epoch uint64, keys []string, owners ...*moveNode) {
	t.Helper()
	want := map[*moveNode]int64{}
	for _, k := range keys {
		o := ownerOf(k, owners...)
		want[o]++
		got, err := do(t, o, wire.OpGet, tok, epoch, k, nil)
		if err != nil || string(got) != "v:"+k {
			t.Fatalf("key %q at its owner %s: %q, %v", k, o.addr, got, err)
		}
	}
	for i, mn := range all {
		if got := mn.n.JobValues(moveJob); got != want[mn] {
			t.Fatalf("node %d holds %d values, want %d (those it owns)", i, got, want[mn])
		}
	}
}

// TestMoverGrowShrink: three nodes, a job whose values sit on A and B.
// (1) The table moves to epoch 2 while the controller still hands out
// epoch 1 (not published): the movers ask again and move nothing. (2) The
// epoch-2 map adds C joining: A and B move exactly the values C now owns,
// keep the rest, and report 0 left at epoch 2; C, joining, reports
// nothing. (3) Epoch 3 marks B draining in this job's map only: B moves
// every value to A or C; all three report 0 left at epoch 3. (4) Epoch 4
// settles without B: the reports end.
func TestMoverGrowShrink(t *testing.T) {
	src := &fakeMaps{}
	ns := newMoveNodes(t, 3, src)
	a, b, c := ns[0], ns[1], ns[2]
	a.ack(1, 1)
	b.ack(1, 1)
	c.ack(1, 0)
	tok, ok := a.n.JobToken(moveJob)
	if !ok {
		t.Fatal("no token for the job after the snapshot")
	}
	var keys []string
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("key-%03d", i)
		keys = append(keys, k)
		if _, err := do(t, ownerOf(k, a, b), wire.OpPut, tok, 1, k, []byte("v:"+k)); err != nil {
			t.Fatal(err)
		}
	}
	checkPlaced(t, ns, tok, 1, keys, a, b)

	// (1) A map older than the table's epoch, with a change in it that
	// would empty B: not moved by.
	src.publish(mapOf(tok, 1, a, wire.NodeActive, b, wire.NodeDraining))
	for _, mn := range ns {
		mn.ack(2, map[*moveNode]uint64{a: 2, b: 2, c: 2}[mn])
	}
	waitFor(t, "the movers to ask for the map again", func() bool { return src.calls.Load() >= 6 })
	checkPlaced(t, ns, tok, 2, keys, a, b)
	for _, mn := range ns {
		if !reported(mn) {
			t.Fatalf("a move report by an unpublished map")
		}
	}

	// (2) C joins.
	src.publish(mapOf(tok, 2, a, wire.NodeActive, b, wire.NodeActive, c, wire.NodeJoining))
	waitFor(t, "A and B to report the grow done", func() bool {
		return reported(a, wire.MoveReport{Job: moveJob, Epoch: 2}) && reported(b, wire.MoveReport{Job: moveJob, Epoch: 2})
	})
	if !reported(c) {
		t.Fatal("the joining node reported a move")
	}
	checkPlaced(t, ns, tok, 2, keys, a, b, c)
	if c.n.JobValues(moveJob) == 0 {
		t.Fatal("C owns no key: the test moves nothing")
	}

	// (3) B leaves this job's map.
	src.publish(mapOf(tok, 3, a, wire.NodeActive, b, wire.NodeDraining, c, wire.NodeActive))
	for _, mn := range ns {
		mn.ack(3, 3)
	}
	waitFor(t, "every node to report the shrink done", func() bool {
		return reported(a, wire.MoveReport{Job: moveJob, Epoch: 3}) && reported(b, wire.MoveReport{Job: moveJob, Epoch: 3}) &&
			reported(c, wire.MoveReport{Job: moveJob, Epoch: 3})
	})
	checkPlaced(t, ns, tok, 3, keys, a, c)

	// (4) Settled: B out of the map, the others active.
	src.publish(mapOf(tok, 4, a, wire.NodeActive, c, wire.NodeActive))
	a.ack(4, 4)
	b.ack(4, 0)
	c.ack(4, 4)
	waitFor(t, "the reports to end", func() bool { return reported(a) && reported(b) && reported(c) })
	checkPlaced(t, ns, tok, 4, keys, a, c)
}

// TestMoverReportsLeftAndRetries: an owner that refuses (here: not
// reachable) leaves values behind; the report says how many, and once
// the owner is back the retries move them and report 0.
func TestMoverReportsLeftAndRetries(t *testing.T) {
	src := &fakeMaps{}
	ns := newMoveNodes(t, 2, src)
	a, b := ns[0], ns[1]
	a.ack(1, 1)
	b.ack(1, 0)
	tok, _ := a.n.JobToken(moveJob)
	var keys []string
	for i := 0; i < 100; i++ {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		if _, err := do(t, a, wire.OpPut, tok, 1, k, []byte("v:"+k)); err != nil {
			t.Fatal(err)
		}
	}
	// B is joining under an address nobody listens on: every put fails.
	gone := &moveNode{addr: "127.0.0.1:1"}
	src.publish(mapOf(tok, 2, a, wire.NodeActive, gone, wire.NodeJoining))
	a.ack(2, 2)
	var left int64
	for _, k := range keys {
		if ownerOf(k, a, gone) == gone {
			left++
		}
	}
	waitFor(t, "a report of the values left", func() bool { return reported(a, wire.MoveReport{Job: moveJob, Epoch: 2, Left: left}) })
	calls := src.calls.Load()
	waitFor(t, "a retry", func() bool { return src.calls.Load() > calls })
	// The joining node is now B, which listens.
	src.publish(mapOf(tok, 3, a, wire.NodeActive, b, wire.NodeJoining))
	a.ack(3, 3)
	b.ack(3, 3)
	waitFor(t, "the move done", func() bool { return reported(a, wire.MoveReport{Job: moveJob, Epoch: 3}) })
	checkPlaced(t, ns, tok, 3, keys, a, b)
	// Revoked: the report ends.
	a.a.ack(&wire.NodeAck{State: wire.NodeActive, Rev: 4, Jobs: []wire.JobEpoch{{Job: moveJob, Gen: moveGen, Revoked: true}}})
	if !reported(a) {
		t.Fatal("a revoked job's report stayed")
	}
}

// TestMoverLeavesDrainToDrainer: while the node drains cluster-wide the
// mover fetches no map and moves nothing; when the drain is called off it
// checks its jobs again.
func TestMoverLeavesDrainToDrainer(t *testing.T) {
	src := &fakeMaps{}
	ns := newMoveNodes(t, 2, src)
	a, b := ns[0], ns[1]
	a.ack(1, 1)
	b.ack(1, 0)
	tok, _ := a.n.JobToken(moveJob)
	for i := 0; i < 50; i++ {
		if _, err := do(t, a, wire.OpPut, tok, 1, fmt.Sprint(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	src.publish(mapOf(tok, 2, a, wire.NodeActive, b, wire.NodeJoining))
	a.a.move.setDraining(true)
	calls := src.calls.Load()
	a.a.move.onAck(&wire.NodeAck{Rev: 2, Jobs: []wire.JobEpoch{{Job: moveJob, Epoch: 2, Gen: moveGen}}})
	time.Sleep(300 * time.Millisecond)
	if n := src.calls.Load() - calls; n != 0 || a.n.JobValues(moveJob) != 50 {
		t.Fatalf("while draining: %d map fetches, %d of 50 values left", n, a.n.JobValues(moveJob))
	}
	a.a.move.setDraining(false)
	waitFor(t, "the move after the drain was called off", func() bool { return reported(a, wire.MoveReport{Job: moveJob, Epoch: 2}) })
	if b.n.JobValues(moveJob) == 0 {
		t.Fatal("nothing moved to the joining node")
	}
}

// blockingSender holds every request until its context ends.
type blockingSender struct {
	inFlight atomic.Int64
	started  chan struct{}
}

func (s *blockingSender) Do(ctx context.Context, addr string, op wire.Op, flags uint16, req *wire.Request, payload, dst []byte) (client.Reply, error) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	select {
	case s.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return client.Reply{}, ctx.Err()
}

// TestMoverDrainStopsMove: a drain ordered while a move is under way
// cancels it and waits for it, so the drainer never runs beside it.
func TestMoverDrainStopsMove(t *testing.T) {
	src := &fakeMaps{}
	ns := newMoveNodes(t, 1, src)
	a := ns[0]
	a.ack(1, 1)
	tok, _ := a.n.JobToken(moveJob)
	for i := 0; i < 20; i++ {
		if _, err := do(t, a, wire.OpPut, tok, 1, fmt.Sprint(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	s := &blockingSender{started: make(chan struct{}, 1)}
	m := newMover(a.n, src, s, a.addr, quietLog)
	m.start(context.Background(), nil)
	defer m.stop()
	src.publish(mapOf(tok, 2, a, wire.NodeActive, &moveNode{addr: "127.0.0.1:1"}, wire.NodeJoining))
	m.onAck(&wire.NodeAck{Rev: 2, Jobs: []wire.JobEpoch{{Job: moveJob, Epoch: 2, Gen: moveGen}}})
	select {
	case <-s.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the move never started")
	}
	m.setDraining(true)
	if n := s.inFlight.Load(); n != 0 {
		t.Fatalf("%d moves still in flight after setDraining returned", n)
	}
}

// TestMoveReportsBound: a heartbeat carries at most wire.MaxMoveReports
// reports, the oldest first; an update keeps a report's place.
func TestMoveReportsBound(t *testing.T) {
	m := newMover(nil, &fakeMaps{}, nil, "self", quietLog)
	const jobs = wire.MaxMoveReports + 10
	for i := 0; i < jobs; i++ {
		job := fmt.Sprintf("job%05d", i)
		m.epochs[job] = 1
		m.record(wire.MoveReport{Job: job, Epoch: 1, Left: 5})
	}
	m.record(wire.MoveReport{Job: "job00000", Epoch: 2})
	m.record(wire.MoveReport{Job: "unknown", Epoch: 2, Left: 1}) // not a job the acks listed
	got := m.moveReports()
	if len(got) != wire.MaxMoveReports {
		t.Fatalf("%d reports, want %d", len(got), wire.MaxMoveReports)
	}
	if got[0] != (wire.MoveReport{Job: "job00000", Epoch: 2}) {
		t.Fatalf("first report %+v", got[0])
	}
	for i, r := range got[1:] {
		if want := fmt.Sprintf("job%05d", i+1); r.Job != want {
			t.Fatalf("report %d is %s, want %s (oldest first)", i+1, r.Job, want)
		}
	}
	hb := wire.Heartbeat{Addr: "n", Moves: got}
	var back wire.Heartbeat
	if err := back.Decode(hb.Encode(flatbuffers.NewBuilder(1 << 16))); err != nil || len(back.Moves) != len(got) {
		t.Fatalf("a full heartbeat does not travel: %v (%d reports)", err, len(back.Moves))
	}
}

// TestMoverFirstSight: a job the acks list for the first time is checked
// only when the node holds values of it: a node that starts fetches no
// map per job, and one holding values (written before the ack listed the
// job) still moves them by a changing map.
func TestMoverFirstSight(t *testing.T) {
	src := &fakeMaps{}
	ns := newMoveNodes(t, 2, src)
	a, b := ns[0], ns[1]
	b.ack(1, 0)
	tok, _ := b.n.JobToken(moveJob)
	src.publish(mapOf(tok, 1, a, wire.NodeActive, b, wire.NodeDraining))
	b.ack(2, 1) // first seen in its map, holding nothing
	time.Sleep(300 * time.Millisecond)
	if n := src.calls.Load(); n != 0 {
		t.Fatalf("%d map fetches for a job the node holds nothing of", n)
	}
	a.ack(1, 0)
	for i := 0; i < 30; i++ {
		if _, err := do(t, a, wire.OpPut, tok, 1, fmt.Sprint(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	src.publish(mapOf(tok, 2, a, wire.NodeDraining, b, wire.NodeActive))
	b.ack(3, 2) // the owner hears of the map first (it refuses epochs it has not heard of)
	a.ack(2, 2) // first seen in its map, holding values
	waitFor(t, "the values first seen here to move", func() bool { return reported(a, wire.MoveReport{Job: moveJob, Epoch: 2}) })
	if a.n.JobValues(moveJob) != 0 || b.n.JobValues(moveJob) != 30 {
		t.Fatalf("after the move: %d here, %d at the owner", a.n.JobValues(moveJob), b.n.JobValues(moveJob))
	}
}

// TestMoverKeepsNewerWrites: clients writing by the grown map while the
// movers run: every key they overwrote reads their value at its owner
// afterwards (a move never lands over a newer write), every other key its
// old one, and each node holds only what it owns.
func TestMoverKeepsNewerWrites(t *testing.T) {
	src := &fakeMaps{}
	ns := newMoveNodes(t, 3, src)
	a, b, c := ns[0], ns[1], ns[2]
	a.ack(1, 1)
	b.ack(1, 1)
	c.ack(1, 0)
	tok, _ := a.n.JobToken(moveJob)
	var keys []string
	for i := 0; i < 400; i++ {
		k := fmt.Sprintf("key-%03d", i)
		keys = append(keys, k)
		if _, err := do(t, ownerOf(k, a, b), wire.OpPut, tok, 1, k, []byte("v:"+k)); err != nil {
			t.Fatal(err)
		}
	}
	src.publish(mapOf(tok, 2, a, wire.NodeActive, b, wire.NodeActive, c, wire.NodeJoining))
	errc := make(chan error, 1)
	go func() { // a client with the new map overwrites every third key
		for i := 0; i < len(keys); i += 3 {
			if _, err := doBehind(t, ownerOf(keys[i], a, b, c), wire.OpPut, tok, 2, keys[i], []byte("new:"+keys[i])); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for _, mn := range ns {
		mn.ack(2, 2)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A and B to report the grow done", func() bool {
		return reported(a, wire.MoveReport{Job: moveJob, Epoch: 2}) && reported(b, wire.MoveReport{Job: moveJob, Epoch: 2})
	})
	for i, k := range keys {
		want := "v:" + k
		if i%3 == 0 {
			want = "new:" + k
		}
		o := ownerOf(k, a, b, c)
		if got, err := do(t, o, wire.OpGet, tok, 2, k, nil); err != nil || string(got) != want {
			t.Fatalf("key %q at its owner: %q, %v; want %q", k, got, err, want)
		}
	}
	want := map[*moveNode]int64{}
	for _, k := range keys {
		want[ownerOf(k, a, b, c)]++
	}
	for i, mn := range ns {
		if got := mn.n.JobValues(moveJob); got != want[mn] {
			t.Fatalf("node %d holds %d values, want %d", i, got, want[mn])
		}
	}
}

// TestMoverWaitsForConfirm: chunks of a version its writer has not
// confirmed yet stay where the writer put them while the job's map
// changes, and are reported left, so the change cannot end; the writer's
// confirm then counts every chunk it put at the node it put them, and
// after it the mover moves them to their new owner. Before, the mover
// moved leased chunks at once and the writer's confirm at A found fewer
// than it put there (the put failed). A confirm at B, the new owner,
// counts only the chunks the writer put at B, not those moved there after
// A's confirm.
func TestMoverWaitsForConfirm(t *testing.T) {
	src := &fakeMaps{}
	ns := newMoveNodes(t, 2, src)
	a, b := ns[0], ns[1]
	a.ack(1, 1)
	b.ack(1, 0)
	tok, _ := a.n.JobToken(moveJob)
	c := client.New(client.Options{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sendTo := func(mn *moveNode, op wire.Op, flags uint16, epoch uint64, key []byte, val []byte) (client.Reply, error) {
		req := wire.Request{Job: []byte(moveJob), Key: key, Token: tok, Epoch: epoch, Version: 0xbeef}
		return c.Do(ctx, mn.addr, op, flags, &req, val, nil)
	}
	send := func(op wire.Op, flags uint16, epoch uint64, key []byte, val []byte) (client.Reply, error) {
		return sendTo(a, op, flags, epoch, key, val)
	}
	// Put 20 chunks of one version on A, leased, as a writer on the
	// one-node map does.
	const n = 20
	var moving int64
	for i := 1; i <= n; i++ {
		key := wire.AppendChunkKey(nil, []byte("obj"), 0xbeef, i)
		if _, err := send(wire.OpPut, wire.FlagChunk|wire.FlagLease, 1, key, []byte(fmt.Sprint("chunk ", i))); err != nil {
			t.Fatal(err)
		}
		ps := []placement.Node{{ID: a.addr, Weight: 1}, {ID: b.addr, Weight: 1}}
		if ps[placement.Pick(ps, key, uint32(i))].ID == b.addr {
			moving++
		}
	}
	if moving == 0 {
		t.Fatal("no chunk is B's under the grown map: the test moves nothing")
	}
	// B joins: A reports the leased chunks left, again and again.
	src.publish(mapOf(tok, 2, a, wire.NodeActive, b, wire.NodeJoining))
	a.ack(2, 2)
	b.ack(2, 2)
	waitFor(t, "A to report the leased chunks left", func() bool {
		return reported(a, wire.MoveReport{Job: moveJob, Epoch: 2, Left: moving})
	})
	calls := src.calls.Load()
	waitFor(t, "A to check again", func() bool { return src.calls.Load() > calls+1 })
	if got := b.n.JobValues(moveJob); got != 0 {
		t.Fatalf("B holds %d chunks of the unconfirmed version", got)
	}
	// The writer, now on the grown map, puts 5 more chunks at B.
	const atB = 5
	for i := n + 1; i <= n+atB; i++ {
		key := wire.AppendChunkKey(nil, []byte("obj"), 0xbeef, i)
		if _, err := sendTo(b, wire.OpPut, wire.FlagChunk|wire.FlagLease, 2, key, []byte("late chunk")); err != nil {
			t.Fatal(err)
		}
	}
	// The writer confirms at A: every chunk it put is there.
	r, err := send(wire.OpConfirm, 0, 2, nil, nil)
	if err != nil || r.Meta.Count != n {
		t.Fatalf("confirm at A: %d chunks, %v; want %d", r.Meta.Count, err, n)
	}
	waitFor(t, "the move done", func() bool { return reported(a, wire.MoveReport{Job: moveJob, Epoch: 2}) })
	if got, want := b.n.JobValues(moveJob), moving+atB; got != want {
		t.Fatalf("B holds %d chunks after the confirm, want %d", got, want)
	}
	if got := a.n.JobValues(moveJob); got != n-moving {
		t.Fatalf("A holds %d chunks, want %d", got, n-moving)
	}
	// The confirm at B, after A's chunks arrived there, counts the 5 the
	// writer put at B, not those the move brought.
	r, err = sendTo(b, wire.OpConfirm, 0, 2, nil, nil)
	if err != nil || r.Meta.Count != atB {
		t.Fatalf("confirm at B: %d chunks, %v; want %d (the writer's)", r.Meta.Count, err, atB)
	}
}

// TestMoverFirstSightOfAChange: a node that first hears of a job at an
// epoch after its registration's, holding none of its values (a grow made
// right after the job registered), checks the map and reports 0 left: the
// controller ends the change only once every node of the map has
// reported. Before, such a node never checked and the grow never ended.
func TestMoverFirstSightOfAChange(t *testing.T) {
	src := &fakeMaps{}
	ns := newMoveNodes(t, 3, src)
	a, b, c := ns[0], ns[1], ns[2]
	b.ack(1, 0)
	tok, _ := b.n.JobToken(moveJob)
	src.publish(mapOf(tok, 2, a, wire.NodeActive, b, wire.NodeActive, c, wire.NodeJoining))
	b.ack(2, 2) // first seen at the grow's epoch, holding nothing
	waitFor(t, "B to report the grow done", func() bool { return reported(b, wire.MoveReport{Job: moveJob, Epoch: 2}) })
}
