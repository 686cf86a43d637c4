package agent

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/telemetry"
	"github.com/pocketstore/pocket/wire"
)

func TestOwnersLeaveOutDrainingNodes(t *testing.T) {
	m := &wire.PlacementMap{Nodes: []wire.MapNode{
		{Addr: "a", Weight: 0.5, State: wire.NodeActive},
		{Addr: "b", Weight: 0.3, State: wire.NodeDraining},
		{Addr: "c", Weight: 0.2, State: wire.NodeDead},
	}}
	got := owners(m)
	// A dead node keeps its place, as in the clients' placement.
	if len(got) != 2 || got[0].ID != "a" || got[0].Weight != 0.5 || got[1].ID != "c" {
		t.Fatalf("owners: %+v", got)
	}
}

func TestBlockMetrics(t *testing.T) {
	bl := []telemetry.BlockLatency{
		{Device: "nvme0n1", Op: "read", PerSec: 400, P99: 120 * time.Microsecond},
		{Device: "sda", Op: "write"}, // idle in the interval: left out
	}
	for i := 0; i < 40; i++ {
		bl = append(bl, telemetry.BlockLatency{Device: "loop", Op: "read", PerSec: 1})
	}
	ms := appendBlock(nil, bl)
	if len(ms) != maxBlockMetrics {
		t.Fatalf("%d block metrics, want the bound %d", len(ms), maxBlockMetrics)
	}
	if ms[0] != (wire.Metric{Name: "blk_p99_us:nvme0n1:read", Value: 120}) || ms[1] != (wire.Metric{Name: "blk_per_sec:nvme0n1:read", Value: 400}) {
		t.Fatalf("metrics: %+v", ms[:2])
	}
}
