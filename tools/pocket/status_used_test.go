package main

import (
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestStatusMarksMovingBytes: while a node of a job's map drains or
// joins, status marks the job's USED SIZE "~" and says why (each node's
// latest report counts, so a value moved between two reports may count
// twice or not at all), and --json says moving; so is a job whose map
// has changed and whose nodes have not all reported since (Settling); a
// settled job's figure is plain. Before, a figure taken mid-move read as
// exact, and one taken right after the move too.
func TestStatusMarksMovingBytes(t *testing.T) {
	st := &wire.ClusterStatus{NodeCount: 2, JobCount: 2, Nodes: []wire.NodeStatus{
		{Addr: "127.0.0.1:7001", State: wire.NodeDraining}, {Addr: "127.0.0.1:7002", State: wire.NodeActive}},
		Jobs: []wire.JobStatus{
			{Job: "moving-1", Name: "moving", UsedBytes: 10 << 20, Nodes: []wire.MapNode{
				{Addr: "127.0.0.1:7001", Weight: 0.5, State: wire.NodeDraining}, {Addr: "127.0.0.1:7002", Weight: 0.5, State: wire.NodeActive}}},
			{Job: "settled-2", Name: "settled", UsedBytes: 3 << 20, Nodes: []wire.MapNode{
				{Addr: "127.0.0.1:7002", Weight: 1, State: wire.NodeActive}}},
			{Job: "moved-3", Name: "moved", UsedBytes: 13 << 20, Settling: true, Nodes: []wire.MapNode{
				{Addr: "127.0.0.1:7002", Weight: 1, State: wire.NodeActive}}}}}
	v := statusView(st)
	if !v.Jobs[0].Moving || v.Jobs[1].Moving || !v.Jobs[2].Moving {
		t.Errorf("--json moving: %v, %v and %v, want true for the job with a draining node, false for the settled one, true for the one settling",
			v.Jobs[0].Moving, v.Jobs[1].Moving, v.Jobs[2].Moving)
	}
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	row := func(job string) []string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == job {
				return f
			}
		}
		t.Fatalf("no row for %s:\n%s", job, out)
		return nil
	}
	if got := row("moving-1")[7]; got != "~10MiB" {
		t.Errorf("USED SIZE of the moving job: %q, want ~10MiB:\n%s", got, out)
	}
	if got := row("settled-2")[7]; got != "3MiB" {
		t.Errorf("USED SIZE of the settled job: %q, want 3MiB:\n%s", got, out)
	}
	if got := row("moved-3")[7]; got != "~13MiB" {
		t.Errorf("USED SIZE of the job settling: %q, want ~13MiB:\n%s", got, out)
	}
	if !strings.Contains(out, "USED SIZE ~: values are moving, or have just moved, between the job's nodes") {
		t.Errorf("no note on the ~ mark:\n%s", out)
	}
}

// TestStatusMarksADeadNodesJob (a new user's trial): a job with a dead
// node in its map has its USED SIZE marked "?", with a note that what the
// node holds is not counted, and not "~" (values moving) though its
// figures settle after the death's epoch change. Before, it read "~0B"
// and "values are moving" for 45 s with nothing moving.
func TestStatusMarksADeadNodesJob(t *testing.T) {
	st := &wire.ClusterStatus{NodeCount: 2, JobCount: 1, Nodes: []wire.NodeStatus{
		{Addr: "127.0.0.1:7001", State: wire.NodeDead}, {Addr: "127.0.0.1:7002", State: wire.NodeActive}},
		Jobs: []wire.JobStatus{{Job: "dead-1", Name: "dead", UsedBytes: 2 << 20, Settling: true, Nodes: []wire.MapNode{
			{Addr: "127.0.0.1:7001", Weight: 0.5, State: wire.NodeDead}, {Addr: "127.0.0.1:7002", Weight: 0.5, State: wire.NodeActive}}}}}
	v := statusView(st)
	if v.Jobs[0].Moving {
		t.Error("--json moving for a job whose node died: want false (nothing moves)")
	}
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	var cell string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 7 && f[0] == "dead-1" {
			cell = f[7]
		}
	}
	if cell != "?2MiB" || !strings.Contains(out, "USED SIZE ?: a node of the job's map is dead (MAP): what it holds is not counted") ||
		strings.Contains(out, "values are moving") {
		t.Errorf("USED SIZE of a job with a dead node: %q; want ?2MiB and the note on it, not the moving one:\n%s", cell, out)
	}
}

// TestStatusMarksBytesOverTheAllotment: a job holding more than its ALLOC
// SIZE (a capacity hint reserves, it does not limit) has its USED SIZE
// marked "!" with a note saying so; a job within it, or with no size
// allotted, is plain (a new user's trial: 4.77MiB used on a 1MiB hint
// showed no mark).
func TestStatusMarksBytesOverTheAllotment(t *testing.T) {
	node := []wire.MapNode{{Addr: "127.0.0.1:7002", Weight: 1, State: wire.NodeActive}}
	st := &wire.ClusterStatus{NodeCount: 1, JobCount: 3, Nodes: []wire.NodeStatus{{Addr: "127.0.0.1:7002", State: wire.NodeActive}},
		Jobs: []wire.JobStatus{
			{Job: "over-1", Name: "over", AllocBytes: 1 << 20, UsedBytes: 5 << 20, Nodes: node},
			{Job: "within-2", Name: "within", AllocBytes: 8 << 20, UsedBytes: 5 << 20, Nodes: node},
			{Job: "unsized-3", Name: "unsized", UsedBytes: 5 << 20, Nodes: node}}}
	out, _ := stdoutOf(t, func() int { printStatus(statusView(st)); return 0 })
	want := map[string]string{"over-1": "5MiB!", "within-2": "5MiB", "unsized-3": "5MiB"}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 7 && want[f[0]] != "" {
			if f[7] != want[f[0]] {
				t.Errorf("USED SIZE of %s: %q, want %q:\n%s", f[0], f[7], want[f[0]], out)
			}
			delete(want, f[0])
		}
	}
	if len(want) > 0 {
		t.Errorf("no rows for %v:\n%s", want, out)
	}
	if !strings.Contains(out, "USED SIZE !: the job holds more than its ALLOC SIZE: a size (a capacity hint's, or one learned from the job's name) reserves space, it does not limit the job") {
		t.Errorf("no note on the ! mark:\n%s", out)
	}
}
