package main

import (
	"testing"

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
