package main

import (
	"os"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestStatusNamesHeldDrainAndPersistedValues: a draining node that moved
// its data but keeps persisted values of ended jobs is held, not leaving,
// and the plain status says so with the jobs, bytes and what to do; a
// node that keeps such values gets a line with their count and bytes.
// Before, the held drain read "all data moved; leaving" and the persisted
// values showed nowhere in the plain status (a new user's trial).
func TestStatusNamesHeldDrainAndPersistedValues(t *testing.T) {
	persisted := []wire.Metric{{Name: wire.MetricPersistedJobs, Value: 2}, {Name: wire.MetricPersistedBytes, Value: 5 << 20}}
	st := &wire.ClusterStatus{NodeCount: 4, Nodes: []wire.NodeStatus{
		{Addr: "127.0.0.1:7001", State: wire.NodeDraining, Metrics: append([]wire.Metric{{Name: wire.MetricDrainDone, Value: 1}}, persisted...)},
		{Addr: "127.0.0.1:7002", State: wire.NodeActive, Metrics: persisted},
		{Addr: "127.0.0.1:7003", State: wire.NodeDraining, Metrics: []wire.Metric{{Name: wire.MetricDrainDone, Value: 1}}},
		{Addr: "127.0.0.1:7004", State: wire.NodeActive}}}
	out, _ := stdoutOf(t, func() int { printStatus(statusView(st)); return 0 })
	for _, want := range []string{
		"node 127.0.0.1:7001 draining: held: all other data moved, but it keeps persist-after-job values of 2 ended job(s), 5MiB",
		"pocket node drain 127.0.0.1:7001 --discard-persisted",
		"node 127.0.0.1:7002 keeps persist-after-job values of 2 ended job(s), 5MiB",
		"node 127.0.0.1:7003 draining: all data moved; leaving",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plain status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "127.0.0.1:7001 draining: all data moved; leaving") {
		t.Errorf("a held drain reads as leaving:\n%s", out)
	}
	if strings.Contains(out, "127.0.0.1:7004 keeps") || strings.Contains(out, "127.0.0.1:7003 keeps") {
		t.Errorf("a node keeping no persisted values is said to keep some:\n%s", out)
	}
}

// TestStatusNamesPersistedJobs: the plain status names the ended jobs
// whose persisted values a node keeps (the first 3 and how many more),
// whether the node drains or not, and --json lists every job the
// controller named under nodes[].persisted. Before, status gave counts
// only ("keeps persist-after-job values of 2 ended job(s), 12MiB"), so the
// user could not tell whose credential reads or deletes them.
func TestStatusNamesPersistedJobs(t *testing.T) {
	held := []wire.HeldJob{{Job: "old-3", Bytes: 3 << 20}, {Job: "old-7", Bytes: 1 << 20}, {Job: "old-9", Bytes: 512 << 10}, {Job: "old-2", Bytes: 1 << 10}}
	persisted := []wire.Metric{{Name: wire.MetricPersistedJobs, Value: 5}, {Name: wire.MetricPersistedBytes, Value: 5 << 20}}
	st := &wire.ClusterStatus{NodeCount: 2, Nodes: []wire.NodeStatus{
		{Addr: "127.0.0.1:7001", State: wire.NodeActive, Metrics: persisted, Persisted: held},
		{Addr: "127.0.0.1:7002", State: wire.NodeDraining, Persisted: held[:1],
			Metrics: []wire.Metric{{Name: wire.MetricDrainDone, Value: 1}, {Name: wire.MetricPersistedJobs, Value: 1}, {Name: wire.MetricPersistedBytes, Value: 3 << 20}}}}}
	v := statusView(st)
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	for _, want := range []string{
		"node 127.0.0.1:7001 keeps persist-after-job values of 5 ended job(s), 5MiB: old-3 3MiB, old-7 1MiB, old-9 512KiB and 2 more",
		"node 127.0.0.1:7002 draining: held: all other data moved, but it keeps persist-after-job values of 1 ended job(s), 3MiB: old-3 3MiB,",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plain status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "old-2") {
		t.Errorf("plain status names more than 3 jobs of a node:\n%s", out)
	}
	obj := jsonObject(t, "status --json", marshal(t, v))
	p := obj["nodes"].([]any)[0].(map[string]any)["persisted"].([]any)
	if len(p) != 4 || p[3].(map[string]any)["job_id"] != "old-2" || p[0].(map[string]any)["bytes"] != float64(3<<20) {
		t.Errorf("--json persisted %v, want the 4 named jobs with their bytes", p)
	}
}

// TestStatusFoldsBlockLinesAndUnsizedJobs: a node's block latencies are
// one line (before: a line per device and op, three a node, more lines
// than the table); a job allotted no size shows ALLOC SIZE "-" with a
// note (before: "0B"); the help explains the MAP column.
func TestStatusFoldsBlockLinesAndUnsizedJobs(t *testing.T) {
	m := []wire.Metric{{Name: "blk_p99_us:vda:read", Value: 120}, {Name: "blk_per_sec:vda:read", Value: 30},
		{Name: "blk_p99_us:vda:write", Value: 900}, {Name: "blk_per_sec:vda:write", Value: 4},
		{Name: "blk_p99_us:vda:flush", Value: 50}, {Name: "blk_per_sec:vda:flush", Value: 1}}
	st := &wire.ClusterStatus{NodeCount: 1, JobCount: 1, Nodes: []wire.NodeStatus{{Addr: "127.0.0.1:7001", State: wire.NodeActive, Metrics: m}},
		Jobs: []wire.JobStatus{{Job: "j-1", Name: "j", Tier: uint8(wire.TierDRAM), AllocMbps: 16000,
			Nodes: []wire.MapNode{{Addr: "127.0.0.1:7001", Weight: 1, State: wire.NodeActive}}}}}
	out, _ := stdoutOf(t, func() int { printStatus(statusView(st)); return 0 })
	if n := strings.Count(out, "127.0.0.1:7001 block"); n != 1 ||
		!strings.Contains(out, "node 127.0.0.1:7001 block p99: vda:flush 50 us 1 IO/s, vda:read 120 us 30 IO/s, vda:write 900 us 4 IO/s") {
		t.Errorf("block latency in %d line(s), want one:\n%s", n, out)
	}
	var row []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "j-1" {
			row = f
		}
	}
	// JOB TIER EPOCH NODES ALLOC-Mb/s USED-Mb/s ALLOC-SIZE USED-SIZE COST MAP
	if len(row) != 10 || row[6] != "-" || !strings.Contains(out, "ALLOC SIZE -: no size allotted") {
		t.Errorf("job row %q: want ALLOC SIZE - and a note:\n%s", row, out)
	}
	var buf strings.Builder
	helpOut = &buf
	defer func() { helpOut = os.Stdout }()
	if code := runStatus([]string{"--help"}); code != 0 {
		t.Fatalf("status --help: exit %d", code)
	}
	if help := buf.String(); !strings.Contains(help, "MAP the nodes of its map that are not plain active members") {
		t.Errorf("status --help does not explain MAP:\n%s", help)
	}
}
