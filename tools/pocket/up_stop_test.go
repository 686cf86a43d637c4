package main

import (
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestStopNoteNamesWhatGoes: stopping pocket up says what goes with its
// nodes: live jobs' data and the values ended jobs put with --persist,
// each ended job counted once over its nodes (a new user's trial: the stop
// printed "stopping the cluster" alone while a persisted value went).
func TestStopNoteNamesWhatGoes(t *testing.T) {
	own := map[string]bool{"n1": true, "n2": true}
	if got := stopNote(&wire.ClusterStatus{}, true, own); got != "" {
		t.Errorf("an empty cluster: %q, want nothing more", got)
	}
	st := &wire.ClusterStatus{JobCount: 2, Nodes: []wire.NodeStatus{
		{Addr: "n1", Persisted: []wire.HeldJob{{Job: "sort-1", Bytes: 1 << 20}}},
		{Addr: "n2", Persisted: []wire.HeldJob{{Job: "sort-1", Bytes: 1 << 20}, {Job: "video-2", Bytes: 2 << 20}}},
	}}
	got := stopNote(st, true, own)
	for _, want := range []string{"the data of 2 live job(s)", "the 4MiB of values that 2 ended job(s) put with --persist", "go with its nodes"} {
		if !strings.Contains(got, want) {
			t.Errorf("stop note %q lacks %q", got, want)
		}
	}
	// With --ephemeral no restart keeps anything (an operator's trial:
	// the note promised the tokens would stay).
	if got := stopNote(st, false, own); strings.Contains(got, "keeps") || !strings.Contains(got, "memory only") {
		t.Errorf("stop note of an ephemeral cluster: %q; want it to say the jobs go too", got)
	}
}

// TestStopNoteLeavesHandAddedNodes: what nodes up did not start hold is
// not counted as going, and the note says they keep it. Before, a new
// user's hand-added nodes' jobs were counted, and their data read back
// intact after the restart.
func TestStopNoteLeavesHandAddedNodes(t *testing.T) {
	st := &wire.ClusterStatus{JobCount: 2,
		Jobs: []wire.JobStatus{{Nodes: []wire.MapNode{{Addr: "n1"}}}, {Nodes: []wire.MapNode{{Addr: "x9"}}}},
		Nodes: []wire.NodeStatus{{Addr: "n1"},
			{Addr: "x9", Persisted: []wire.HeldJob{{Job: "sort-1", Bytes: 1 << 20}}}}}
	got := stopNote(st, true, map[string]bool{"n1": true})
	if !strings.Contains(got, "the data of 1 live job(s) on its nodes") || strings.Contains(got, "persist") ||
		!strings.Contains(got, "the 1 node(s) it did not start keep what they hold") {
		t.Errorf("stop note with a hand-added node: %q", got)
	}
	// A hand-added node that is dead keeps nothing: it is not said to.
	st.Nodes[1].State = wire.NodeDead
	if got := stopNote(st, true, map[string]bool{"n1": true}); strings.Contains(got, "did not start") ||
		!strings.Contains(got, "the data of 1 live job(s) on its nodes") {
		t.Errorf("stop note with a dead hand-added node: %q; want it not said to keep what it held", got)
	}
}
