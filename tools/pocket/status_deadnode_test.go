package main

import (
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestStatusDeadNodesPersistedValuesAreItsLastReport: a dead node's
// persisted values are said to be its last report, unreachable while it
// is dead, and its block latencies are left out. On the old code the
// status told a new user to read them with the job's credential, and
// printed the dead node's stale block line.
func TestStatusDeadNodesPersistedValuesAreItsLastReport(t *testing.T) {
	n := statusNodeJSON{Addr: "10.0.0.7:7000", State: wire.NodeDead.String(), Metrics: map[string]float64{
		wire.MetricPersistedJobs: 1, wire.MetricPersistedBytes: 1280,
		"blk_p99_us:vda:read": 120, "blk_per_sec:vda:read": 30}}
	out, _ := stdoutOf(t, func() int { printNodeNotes(statusJSON{Nodes: []statusNodeJSON{n}}); return 0 })
	if !strings.Contains(out, "node 10.0.0.7:7000 (dead) kept persist-after-job values of 1 ended job(s)") ||
		!strings.Contains(out, "unreachable while it is dead") || strings.Contains(out, "read and delete them") ||
		strings.Contains(out, "block p99") {
		t.Fatalf("notes of a dead node that kept persisted values: %q", out)
	}
	n.State = wire.NodeActive.String()
	out, _ = stdoutOf(t, func() int { printNodeNotes(statusJSON{Nodes: []statusNodeJSON{n}}); return 0 })
	if !strings.Contains(out, "node 10.0.0.7:7000 keeps persist-after-job values") || !strings.Contains(out, "block p99: vda:read 120 us") {
		t.Fatalf("notes of an active node: %q", out)
	}
}
