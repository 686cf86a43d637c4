package dataplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestPrefixDeletesInALoopDoNotStarveAMove: the mover's tryMark skips a key
// while any prefix delete covering it runs, counting it nowhere (neither
// Failed nor Leased), and a later pass tries again. A job that keeps the
// scan lane busy with prefix deletes of a prefix covering a key those
// deletes never remove (a live job's chunk key: deletePrefix skips chunk
// keys) keeps that key from ever moving: its map change, or the node's
// drain, cannot end. Here: 50,000 other keys make each delete's listing
// long, two connections keep one delete queued behind the running one,
// and the mover passes again and again.
func TestPrefixDeletesInALoopDoNotStarveAMove(t *testing.T) {
	// On an NVMe tier a listing visits every key of the job (scanKeys).
	d := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 16 << 20}, NVMeOptions{})
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", NVMe: d, Net: netio.Config{Loops: 1}})
	// The node keeps its own keys (Self): only the chunk key moves.
	owners := []placement.Node{{ID: "self", Weight: 1}, {ID: "owner", Weight: 1}}
	set := placement.NewSet(owners)
	kept := 0
	for i := 0; kept < 50000; i++ {
		k := fmt.Sprintf("k/%07d", i)
		if misplaced(set, "self", []byte(k)) {
			continue
		}
		storeMeta(t, d, "j", k, nil, Meta{})
		kept++
	}
	var chunk string
	for v := uint64(5); chunk == ""; v++ {
		if k := wire.AppendChunkKey(nil, []byte("p/x"), v, 0); misplaced(set, "self", k) {
			chunk = string(k)
			storeMeta(t, d, "j", chunk, []byte("chunk"), Meta{Version: v})
		}
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	var deletes atomic.Int64
	for range 2 {
		c := dial(t, n, "j")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				id, err := c.Send(wire.OpDelete, wire.FlagPrefix|KindNVMe.Flags(), &wire.Request{Job: []byte("j"), Key: []byte("p/")}, nil)
				if err != nil {
					return
				}
				c.Flush()
				r, err := c.Recv()
				if err != nil || r.ID != id {
					return
				}
				if r.Err() != nil && !errors.Is(r.Err(), wire.ErrBusy) {
					t.Errorf("prefix delete: %v", r.Err())
					return
				}
				deletes.Add(1)
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	time.Sleep(100 * time.Millisecond)

	f := &fakeOwners{vals: map[string]map[string][]byte{}, flags: map[string]uint16{}}
	start := time.Now()
	passes := 0
	for ; time.Since(start) < 5*time.Second; passes++ {
		st, err := n.Migrate(context.Background(), MigrateJob{Job: "j", Nodes: owners, Self: "self"}, f, 4)
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		_, ok := f.vals["owner"][chunk]
		f.mu.Unlock()
		if ok {
			t.Logf("chunk moved on pass %d (%v), %d prefix deletes so far", passes+1, time.Since(start), deletes.Load())
			if passes+1 > 3 {
				t.Fatalf("the chunk key was skipped (tryMark refused, counted nowhere) on %d passes; the agent's mover passes every 500 ms (moveRetry): %v of a map change's or drain's time",
					passes, time.Duration(passes)*500*time.Millisecond)
			}
			return
		}
		_ = st
		time.Sleep(5 * time.Millisecond)
	}
	left := n.Misplaced("j", owners, "self")
	t.Fatalf("after %d mover passes in %v (%d prefix deletes meanwhile), the chunk key never moved; Misplaced %d",
		passes, time.Since(start), deletes.Load(), left)
}
