package main

import (
	"testing"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestMapNotes: plain status names the nodes of a job's map that are not
// plain active members: a node joining or leaving the map of a running
// job shows without --json.
func TestMapNotes(t *testing.T) {
	ns := mapNodesJSON([]wire.MapNode{{Addr: "a:1", State: wire.NodeActive}, {Addr: "b:2", State: wire.NodeJoining},
		{Addr: "c:3", State: wire.NodeDraining}})
	if got, want := mapNotes(ns), "b:2 joining, c:3 draining"; got != want {
		t.Fatalf("mapNotes = %q, want %q", got, want)
	}
	if got := mapNotes(ns[:1]); got != "-" {
		t.Fatalf("mapNotes of a settled map = %q, want -", got)
	}
}

// TestProfileNamesInError: a missing profile's error names the profiles
// there are (the new-user trial found no way to list them), at most most.
func TestProfileNamesInError(t *testing.T) {
	ps := []state.Profile{{Name: "sort"}, {Name: "video"}, {Name: "grep"}}
	if got, want := profileNames(ps, 2), ": sort, video, ..."; got != want {
		t.Fatalf("profileNames = %q, want %q", got, want)
	}
	if got := profileNames(nil, 2); got != "" {
		t.Fatalf("profileNames(nil) = %q", got)
	}
}
