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
	if got := stopNote(&wire.ClusterStatus{}, true); got != "" {
		t.Errorf("an empty cluster: %q, want nothing more", got)
	}
	st := &wire.ClusterStatus{JobCount: 2, Nodes: []wire.NodeStatus{
		{Persisted: []wire.HeldJob{{Job: "sort-1", Bytes: 1 << 20}}},
		{Persisted: []wire.HeldJob{{Job: "sort-1", Bytes: 1 << 20}, {Job: "video-2", Bytes: 2 << 20}}},
	}}
	got := stopNote(st, true)
	for _, want := range []string{"the data of 2 live job(s)", "the 4MiB of values that 2 ended job(s) put with --persist", "go with its nodes"} {
		if !strings.Contains(got, want) {
			t.Errorf("stop note %q lacks %q", got, want)
		}
	}
	// With --ephemeral no restart keeps anything (an operator's trial:
	// the note promised the tokens would stay).
	if got := stopNote(st, false); strings.Contains(got, "keeps") || !strings.Contains(got, "memory only") {
		t.Errorf("stop note of an ephemeral cluster: %q; want it to say the jobs go too", got)
	}
}
