package workload

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// slowDeletes is a Backend whose deletes take 10 ms, or end with their
// context, counting the calls.
type slowDeletes struct {
	Backend
	calls atomic.Int64
}

func (b *slowDeletes) Delete(ctx context.Context, _ string) error {
	b.calls.Add(1)
	select {
	case <-time.After(10 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestCleanupStopsAtItsBound: a cleanup past cleanupWait asks for no more
// deletes. Before, it went on feeding every key after its time was up,
// each delete failing at once: with a sort of 4,096 workers' keys a new
// user's run outlived its timeout and signals for 11 minutes.
func TestCleanupStopsAtItsBound(t *testing.T) {
	old := cleanupWait
	cleanupWait = 50 * time.Millisecond
	defer func() { cleanupWait = old }()
	keys := make([]string, 200_000)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	be := &slowDeletes{}
	start := time.Now()
	cleanup(context.Background(), be, keys)
	if n := be.calls.Load(); n > 1000 || time.Since(start) > 5*time.Second {
		t.Fatalf("cleanup past its bound: %d deletes asked for in %v; want it to stop", n, time.Since(start))
	}
}
