package agent

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// allocated runs f and returns the bytes it allocated on the Go heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestAttackMoveMemoryFollowsMovedValues: a node holding many values of a
// job whose map grows by one node moves about 1/n of them; what it
// allocates to find and count those should follow the values it moves,
// not every value it holds (a job of tens of millions of small values
// would need gigabytes of heap on every node of its map, at every change,
// and again for every count of what is left, each moveRetry).
//
// Failed before the mover scanned its tiers (dataplane.scanKeys): Migrate
// listed every key of the job (copying them all, after DRAM.List had
// gathered them all into a heap of entries), and Misplaced listed them all
// again, sorted, to count: 358 B per value held to count, 862 B to move.
// The drain's count of what is left (JobValues) is held to the same bound.
func TestAttackMoveMemoryFollowsMovedValues(t *testing.T) {
	const values = 100_000
	n, d := guardedNode(t, 64<<20, 1)
	fillJob(t, d, moveJob, values, 16)
	self := n.Addr().String()
	// A joining node with a tiny weight: it owns a handful of the keys.
	mp := &wire.PlacementMap{Job: moveJob, Epoch: 5, Token: []byte("unused"), Nodes: []wire.MapNode{
		{Addr: self, Weight: 1, State: wire.NodeActive}, {Addr: "127.0.0.1:1", Weight: 1e-4, State: wire.NodeJoining}}}
	misplaced := n.Misplaced(moveJob, owners(mp), self)
	if misplaced == 0 || misplaced > values/100 {
		t.Fatalf("%d of %d values misplaced, want a handful", misplaced, values)
	}
	perValue := func(b uint64) float64 { return float64(b) / values }
	countBytes := allocated(func() { _ = n.Misplaced(moveJob, owners(mp), self) })
	data := client.New(client.Options{})
	defer data.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the owner is unreachable anyway: measure the listing only
	moveBytes := allocated(func() {
		_, _, _ = moveByMap(ctx, n, mp, data, self, time.Time{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	drainCountBytes := allocated(func() {
		if got := n.JobValues(moveJob); got != values {
			t.Errorf("JobValues = %d, want %d", got, values)
		}
	})
	t.Logf("%d values, %d misplaced: count allocates %.0f B per value held, move %.0f B, drain's count %.0f B",
		values, misplaced, perValue(countBytes), perValue(moveBytes), perValue(drainCountBytes))
	// 8 bytes per value held is far above what finding a handful needs
	// (an iteration allocates nothing per key it skips).
	if perValue(countBytes) > 8 {
		t.Errorf("counting what is left allocates %.0f B per value held (%d held, %d misplaced)", perValue(countBytes), values, misplaced)
	}
	if perValue(moveBytes) > 8 {
		t.Errorf("moving allocates %.0f B per value held (%d held, %d misplaced)", perValue(moveBytes), values, misplaced)
	}
	if perValue(drainCountBytes) > 8 {
		t.Errorf("the drain's count allocates %.0f B per value held", perValue(drainCountBytes))
	}
}
