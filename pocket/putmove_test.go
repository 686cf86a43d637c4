package pocket

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// putMoveChunk and putMoveSize shape the puts of TestPutsSpanMapChanges:
// 24 chunks each, so that most puts have chunks on every node of the map
// and a put spans a good part of a change's move.
const (
	putMoveChunk = 64 << 10
	putMoveSize  = 24*putMoveChunk - 100
)

// putMoveValue is the value of key's put number seq: its bytes depend on
// both, so a read that mixes two puts, or returns an older one, shows.
func putMoveValue(key string, seq int) []byte {
	return content(fmt.Sprintf("%s#%d", key, seq), putMoveSize)
}

// TestPutsSpanMapChanges writes multi-chunk values in a loop (Put and the
// streaming Writer) while the job's map grows by a node and shrinks by one,
// three times over, and then while one of its nodes drains from the
// cluster: a put's chunks may be due to move to new owners between its
// chunk puts and its confirm. Every put must succeed, every key must
// read back as its last put whole, and when the map has settled the nodes
// must hold exactly the live values' records (a manifest and its chunks
// per key): no chunk leaked, none lost.
func TestPutsSpanMapChanges(t *testing.T) {
	ctl, addr, nodes := startDrainCluster(t, 4, 256<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Dial(ctx, addr, Config{ChunkSize: putMoveChunk, Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "putmove", Hints{PeakMbps: 24000})
	if err != nil {
		t.Fatal(err)
	}
	id := j.ID()
	if n := len(j.Map().Nodes); n != 3 {
		t.Fatalf("job on %d nodes, want 3", n)
	}

	const writers, keysPer = 3, 4
	last := make([]map[string]int, writers) // per writer: key -> seq of its last successful put
	var puts, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopWriters := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopWriters() // also when a wait below fails the test
	for w := 0; w < writers; w++ {
		last[w] = map[string]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d/k%d", w, seq%keysPer)
				val := putMoveValue(key, seq)
				var err error
				if seq%2 == 0 {
					err = j.Put(ctx, key, val)
				} else {
					err = streamPut(ctx, j, key, val)
				}
				puts.Add(1)
				if err != nil {
					failed.Add(1)
					t.Errorf("put %s #%d while the map changes: %v", key, seq, err)
					continue
				}
				last[w][key] = seq
			}
		}()
	}

	for cycle := 0; cycle < 3; cycle++ {
		before := puts.Load()
		if err := ctl.GrowJob(id, outside(ctl, id)); err != nil {
			t.Fatalf("grow %d: %v", cycle, err)
		}
		waitSettled(t, ctl, nodes, id, 4, "grow")
		if err := ctl.ShrinkJob(id, ""); err != nil {
			t.Fatalf("shrink %d: %v", cycle, err)
		}
		waitSettled(t, ctl, nodes, id, 3, "shrink")
		// Let puts run on the settled map too before the next change.
		waitFor(t, time.Minute, "puts after the change", func() bool { return puts.Load() > before+3*writers })
	}
	// Then a node of the job's map drains from the cluster.
	before := puts.Load()
	victim := jobNodes(ctl, id)[0].Addr
	if _, err := ctl.Drain(victim, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the drained node to leave", func() bool {
		return !slices.ContainsFunc(ctl.Status().Nodes, func(n wire.NodeStatus) bool { return n.Addr == victim })
	})
	waitFor(t, time.Minute, "puts after the drain", func() bool { return puts.Load() > before+3*writers })
	stopWriters()
	if t.Failed() {
		t.Logf("%d of %d puts failed", failed.Load(), puts.Load())
	}

	var want int64
	for w := range last {
		for key, seq := range last[w] {
			got, err := j.Get(ctx, key)
			if err != nil || !bytes.Equal(got, putMoveValue(key, seq)) {
				t.Errorf("get %s: %d bytes, %v; want put #%d whole", key, len(got), err, seq)
			}
			want += 1 + (putMoveSize+putMoveChunk-1)/putMoveChunk
		}
	}
	// Chunks of replaced versions are dropped at once; the node's counts
	// must come down to the live values' records.
	var held int64
	ok := waitUntil(10*time.Second, func() bool {
		held = 0
		for _, n := range nodes {
			held += n.node.JobValues(id)
		}
		return held == want
	})
	if !ok {
		t.Errorf("the nodes hold %d records of the job, want %d (a manifest and its chunks per key)", held, want)
	}
	t.Logf("%d puts over 3 grows and shrinks and a drain, %d failed", puts.Load(), failed.Load())
}

// waitSettled waits (a minute at most) for the job's map to have n nodes,
// all active, and otherwise fails the test naming, per node, the job's
// records it holds and those not on their owner.
func waitSettled(t *testing.T, ctl *controller.Controller, nodes []*drainNode, id string, n int, change string) {
	t.Helper()
	if waitUntil(time.Minute, func() bool { return settled(ctl, id, n) }) {
		return
	}
	var live []placement.Node
	for _, mn := range jobNodes(ctl, id) {
		if mn.State != wire.NodeDraining {
			live = append(live, placement.Node{ID: mn.Addr, Weight: mn.Weight})
		}
	}
	for _, dn := range nodes {
		a := dn.node.Addr().String()
		t.Logf("node %s: %d records, %d not on their owner", a, dn.node.JobValues(id), dn.node.Misplaced(id, live, a))
	}
	t.Fatalf("the %s did not end in a minute: %+v", change, jobNodes(ctl, id))
}

// streamPut writes val under key with the streaming Writer, in pieces that
// do not line up with chunks.
func streamPut(ctx context.Context, j *Job, key string, val []byte) error {
	w, err := j.NewWriter(ctx, key)
	if err != nil {
		return err
	}
	for r := bytes.NewReader(val); r.Len() > 0; {
		if _, err := io.CopyN(w, r, 40<<10); err != nil && err != io.EOF {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// rawPutAt puts payload under key straight at addr at the job's current
// epoch, as a client holding the job's token but not using the SDK's
// routing could.
func rawPutAt(ctx context.Context, ctl *controller.Controller, j *Job, addr string, flags uint16, key []byte, ver uint64, payload []byte) error {
	var epoch uint64
	for _, js := range ctl.Status().Jobs {
		if js.Job == j.ID() {
			epoch = js.Epoch
		}
	}
	t := j.targetOf(addr)
	req := wire.Request{Job: t.job, Key: key, Token: t.token, Epoch: epoch, Version: ver}
	_, err := j.s.data.Do(ctx, addr, wire.OpPut, flags|t.flags, &req, payload, nil)
	return err
}

// TestLeaseRenewalCannotHoldAChangeOpen: a client of the job keeps one
// never-confirmed version alive on every node of its map, a new chunk of
// it on each node every half lease (each renews the lease), so that some
// of its chunks are always misplaced under the grown map. The nodes wait
// for leased chunks one lease after the change began and then drop the
// version: the grow ends while the renewals go on. Before, it never
// ended (hostile review: still joining after 20 leases).
func TestLeaseRenewalCannotHoldAChangeOpen(t *testing.T) {
	ctl, addr, nodes := startDrainCluster(t, 4, 64<<20)
	const lease = 400 * time.Millisecond
	for _, n := range nodes {
		n.node.SetChunkLease(lease)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Dial(ctx, addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "renewer", Hints{PeakMbps: 24000})
	if err != nil {
		t.Fatal(err)
	}
	ver, next := newVersion(), 1
	put := func(perNode int) {
		for _, mn := range j.Map().Nodes {
			for k := 0; k < perNode; k++ {
				key := wire.AppendChunkKey(nil, []byte("x"), ver, next)
				next++
				if err := rawPutAt(ctx, ctl, j, mn.Addr, wire.FlagChunk|wire.FlagLease, key, ver, []byte("c")); err != nil {
					t.Logf("renewal at %s: %v", mn.Addr, err)
				}
			}
		}
	}
	put(16)
	if err := ctl.GrowJob(j.ID(), outside(ctl, j.ID())); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for !settled(ctl, j.ID(), 4) {
		if time.Since(start) > 30*lease {
			t.Fatalf("the grow has not ended after %v of renewals: %+v", time.Since(start), jobNodes(ctl, j.ID()))
		}
		put(1)
		time.Sleep(lease / 2)
	}
	t.Logf("the grow ended after %v, renewals going on", time.Since(start).Round(time.Millisecond))
}
