package controller

import (
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestRefusedDrainOrderChangesNothing: an order to drain a node that is
// draining and keeps persisted values of ended jobs, without the discard,
// is refused (CodeConflict). A refusal must change nothing; yet the order's
// shorter deadline is applied before the refusal, so once the values are
// deleted the drain, its live values still moving, ends at the refused
// order's deadline and its unmoved values are declared lost, where the
// accepted order gave it an hour.
func TestRefusedDrainOrderChangesNothing(t *testing.T) {
	c := newTest(t, Config{})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	mustRegister(t, c, dramNode(b, 1<<30, 1000))
	if m, err := c.RegisterJob("sort", wire.JobHints{PeakMbps: 2000}); err != nil || len(m.Nodes) != 2 {
		t.Fatalf("register: %+v %v", m, err)
	}
	if _, err := c.Drain(a, time.Hour); err != nil {
		t.Fatal(err)
	}
	moving := []wire.Metric{{Name: MetricDrainDone, Value: 0}, {Name: MetricDrainLeft, Value: 50}}
	keepBeat(t, c, a, 8<<20, moving, []wire.HeldJob{{Job: "old-3", Bytes: 2 << 20}})
	if _, err := c.Drain(a, time.Millisecond); !errors.Is(err, wire.ErrConflict) {
		t.Fatalf("order without the discard on a node keeping persisted values: %v, want a conflict", err)
	}
	// The ended job's values are deleted; the live ones still move.
	keepBeat(t, c, a, 6<<20, moving, nil)
	c.drainTick(time.Now().Add(time.Second))
	if st, ok := nodeState(c, a); !ok || st != wire.NodeDraining {
		t.Fatalf("node %v (listed %v) a second into an hour's drain, its values still moving: the refused order's 1ms deadline was applied", st, ok)
	}
}
