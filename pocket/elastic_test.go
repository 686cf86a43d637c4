package pocket

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// Maps that grow and shrink under a running job (controller/elastic.go):
// values move to their new owners while clients keep reading and writing.

// jobNodes is the job's map as the controller's status has it: every node
// with its state in the map.
func jobNodes(ctl *controller.Controller, id string) []wire.MapNode {
	for _, js := range ctl.Status().Jobs {
		if js.Job == id {
			return js.Nodes
		}
	}
	return nil
}

// settled reports whether the job's map has n nodes, none joining or
// leaving.
func settled(ctl *controller.Controller, id string, n int) bool {
	ns := jobNodes(ctl, id)
	return len(ns) == n && !slices.ContainsFunc(ns, func(m wire.MapNode) bool { return m.State != wire.NodeActive })
}

// outside is a node address not in the job's map.
func outside(ctl *controller.Controller, id string) string {
	in := map[string]bool{}
	for _, n := range jobNodes(ctl, id) {
		in[n.Addr] = true
	}
	for _, n := range ctl.Status().Nodes {
		if !in[n.Addr] {
			return n.Addr
		}
	}
	return ""
}

// TestGrowShrinkMovesOwnedValues fills a job on three nodes, adds a fourth
// to its map while readers go on, and checks that about a quarter of the
// values (those the fourth now owns) moved to it, that every value reads
// back byte-exact during and after, then sheds a node and checks that it
// ends with nothing of the job and that every value still reads back.
func TestGrowShrinkMovesOwnedValues(t *testing.T) {
	ctl, addr, nodes := startDrainCluster(t, 4, 256<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Dial(ctx, addr, Config{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "grow", Hints{PeakMbps: 24000})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(j.Map().Nodes); n != 3 {
		t.Fatalf("job on %d nodes, want 3", n)
	}
	vals := drainData(24<<20, 7)
	for k, size := range vals {
		if err := j.Put(ctx, k, content(k, size)); err != nil {
			t.Fatal(err)
		}
	}
	var values int64
	count := func(n *drainNode) int64 { return n.node.JobValues(j.ID()) }
	for _, n := range nodes {
		values += count(n)
	}
	newcomer := outside(ctl, j.ID())
	var fresh *drainNode
	for _, n := range nodes {
		if n.node.Addr().String() == newcomer {
			fresh = n
		}
	}
	// Readers check every value while the map changes.
	var reads, bad atomic.Int64
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		readLoop(ctx, t, j, vals, stop, &reads, &bad)
	}()
	if err := ctl.GrowJob(j.ID(), newcomer); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the newcomer to join", func() bool { return settled(ctl, j.ID(), 4) })
	moved := count(fresh)
	if lo, hi := values/8, values/2; moved < lo || moved > hi {
		t.Errorf("%d of %d values moved to the new node, want about a quarter (%d-%d)", moved, values, lo, hi)
	}
	var total int64
	for _, n := range nodes {
		total += count(n)
	}
	if total != values {
		t.Errorf("%d values held after the move, want %d (copies left behind, or lost)", total, values)
	}
	if err := ctl.ShrinkJob(j.ID(), ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "a node to leave", func() bool { return settled(ctl, j.ID(), 3) })
	close(stop)
	<-readerDone
	total = 0
	in := map[string]bool{}
	for _, n := range jobNodes(ctl, j.ID()) {
		in[n.Addr] = true
	}
	for _, n := range nodes {
		c := count(n)
		total += c
		if !in[n.node.Addr().String()] && c != 0 {
			t.Errorf("node %s left the job's map with %d of its values", n.node.Addr(), c)
		}
	}
	if total != values {
		t.Errorf("%d values held after the shrink, want %d", total, values)
	}
	for k, size := range vals {
		got, err := j.Get(ctx, k)
		if err != nil || !bytes.Equal(got, content(k, size)) {
			t.Fatalf("get %s after the changes: %d bytes, %v", k, len(got), err)
		}
	}
	t.Logf("%d values, %d moved to the new node; %d reads during the changes, %d bad", values, moved, reads.Load(), bad.Load())
	if reads.Load() == 0 {
		t.Error("no read ran during the changes")
	}
}

// TestHistoryGrowShrink is TestHistoryDrain with the job's map growing by
// a node and then shrinking by one while the history runs, from clients on
// two stores (each with its own copy of the map).
func TestHistoryGrowShrink(t *testing.T) {
	p := histShortOrLong()
	ctl, addr, nodes := startDrainCluster(t, 4, 64<<20)
	for _, n := range nodes {
		n.node.SetChunkLease(histLease)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.duration+2*time.Minute)
	defer cancel()
	var js []*Job
	for i := 0; i < 2; i++ {
		s, err := Dial(ctx, addr, Config{ChunkSize: p.chunk, Parallel: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if i == 0 {
			j, err := s.RegisterJob(ctx, "history", Hints{PeakMbps: 24000})
			if err != nil {
				t.Fatal(err)
			}
			js = append(js, j)
			continue
		}
		j, err := s.OpenJob(ctx, js[0].ID(), js[0].Token())
		if err != nil {
			t.Fatal(err)
		}
		js = append(js, j)
	}
	id := js[0].ID()
	if n := len(js[0].Map().Nodes); n != 3 {
		t.Fatalf("job on %d nodes, want 3", n)
	}
	h := newHistLog()
	seed := histSeed(t)

	// The map grows a little into the run, then shrinks.
	var changes atomic.Int32
	changeErr := make(chan error, 1)
	go func() {
		time.Sleep(min(p.roundLen/2, p.duration/4))
		newcomer := outside(ctl, id)
		t.Logf("grow: node %s joins (%s)", newcomer, time.Since(h.start))
		if err := ctl.GrowJob(id, newcomer); err != nil {
			changeErr <- fmt.Errorf("grow: %w", err)
			return
		}
		if !waitUntil(40*time.Second, func() bool { return settled(ctl, id, 4) }) {
			changeErr <- fmt.Errorf("the map did not finish growing in 40 s: %+v", jobNodes(ctl, id))
			return
		}
		changes.Add(1)
		t.Logf("grown (%s); shrinking", time.Since(h.start))
		if err := ctl.ShrinkJob(id, ""); err != nil {
			changeErr <- fmt.Errorf("shrink: %w", err)
			return
		}
		if !waitUntil(40*time.Second, func() bool { return settled(ctl, id, 3) }) {
			changeErr <- fmt.Errorf("the map did not finish shrinking in 40 s: %+v", jobNodes(ctl, id))
			return
		}
		changes.Add(1)
		t.Logf("shrunk (%s): %+v", time.Since(h.start), jobNodes(ctl, id))
		changeErr <- nil
	}()

	var all []string
	doneAt := -1
	for r := 0; ; r++ {
		if changes.Load() == 2 && doneAt < 0 {
			doneAt = r
		}
		if time.Since(h.start) >= p.duration && doneAt >= 0 && r > doneAt &&
			(h.exercised() || time.Since(h.start) >= p.duration+histMoreFor) {
			break
		}
		select {
		case err := <-changeErr:
			if err != nil {
				t.Fatal(err)
			}
			changeErr <- nil
		default:
		}
		keys := histRoundOn(js, h, p, r, seed+uint64(r))
		histDeleteAll(t, js[0], keys)
		all = append(all, keys...)
	}
	t.Logf("the map grew and shrank by round %d", doneAt-1)
	h.summary(t)
	if !h.exercised() {
		t.Errorf("the run did not exercise its faults: %d chunked puts succeeded, %d puts of unknown outcome, %d chunks of killed writers",
			h.chunkedPutsOK.Load(), h.putsUnknown.Load(), h.killedChunks.Load())
	}
	var tiers []dataplane.Tier
	for i, n := range nodes {
		tiers = append(tiers, n.tier)
		t.Logf("tier %d: node %s", i, n.node.Addr())
	}
	histVerdict(t, h, p, js[0], all, tiers)
}

// waitUntil polls f every 20 ms for up to d and reports whether it held.
func waitUntil(d time.Duration, f func() bool) bool {
	for deadline := time.Now().Add(d); !f(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// TestDeleteAtOldOwnerDropsChunks: deleting an object found only at its
// old owner (a node joined the map, the value has not moved yet) drops its
// chunks too. It failed before drainDo returned the old owner's reply,
// which names the version: the chunks stayed until the job ended.
func TestDeleteAtOldOwnerDropsChunks(t *testing.T) {
	const cs = 16 << 10
	addrs, tiers := histCluster(t, 3, 4<<20, histLease)
	j := staticJob(t, Config{ChunkSize: cs}, addrs[:2])
	ctx := context.Background()
	whole := placement.NewSet(placementNodes([]Node{{Addr: addrs[0], Weight: 1}, {Addr: addrs[1], Weight: 1}, {Addr: addrs[2], Weight: 1}}))
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("obj-%d", i); whole.Node(whole.Pick([]byte(k), 0)).ID == addrs[2] {
			key = k
		}
	}
	if err := j.Put(ctx, key, randBytes(3*cs+100, 1)); err != nil {
		t.Fatal(err)
	}
	m := j.Map()
	m.Nodes = append(m.Nodes, Node{Addr: addrs[2], Weight: 1})
	for i := range m.Nodes {
		m.Nodes[i].Weight = 1
	}
	m.Joining = map[string]bool{addrs[2]: true}
	j.setMap(m)
	if err := j.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	for i, tier := range tiers {
		if u := tier.Usage(); u.Values != 0 {
			t.Errorf("node %d holds %d values (%d bytes) after the delete", i, u.Values, u.Used)
		}
	}
}

// TestStaleRefetchKeepsAsking: a caller told "stale epoch" keeps fetching
// the map (with growing pauses) until the controller hands out a newer
// one, here after a shrink 300 ms later (and its publication).
func TestStaleRefetchKeepsAsking(t *testing.T) {
	ctl, addr, _ := startDrainCluster(t, 2, 16<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Dial(ctx, addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "refetch", Hints{PeakMbps: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	used := j.Map().Epoch
	// The map changes 300 ms from now; until then the controller hands
	// out the same epoch.
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = ctl.ShrinkJob(j.ID(), "")
	}()
	if moved, _ := j.refreshNewer(ctx, used); !moved {
		t.Fatalf("no newer map than epoch %d within %v", used, staleWait)
	}
}

// readLoop gets the keys of vals from j in turn until stop is closed,
// failing t on an error or a value other than content(key, size); it
// counts the reads and the bad ones.
func readLoop(ctx context.Context, t *testing.T, j *Job, vals map[string]int, stop <-chan struct{}, reads, bad *atomic.Int64) {
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		k := keys[i%len(keys)]
		got, err := j.Get(ctx, k)
		reads.Add(1)
		if err != nil || !bytes.Equal(got, content(k, vals[k])) {
			bad.Add(1)
			t.Errorf("get %s during the change: %d bytes, %v", k, len(got), err)
		}
	}
}
