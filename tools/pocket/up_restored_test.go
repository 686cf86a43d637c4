package main

import (
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestRestoredJobOnAHandAddedNodeIsKept: after a restart of up, a job of
// the earlier run on a node up did not start, which still runs, keeps its
// values; one whose nodes were all up's (dead now, or an address this run
// reuses) does not. Before, up told every restored job to deregister: a
// new user's trial had 20 values on a hand-added node, all readable.
func TestRestoredJobOnAHandAddedNodeIsKept(t *testing.T) {
	const hand, oldOwn, reused = "127.0.0.1:7200", "127.0.0.1:7101", "127.0.0.1:7102"
	nodes := []wire.NodeStatus{{Addr: hand, State: wire.NodeActive}, {Addr: oldOwn, State: wire.NodeDead},
		{Addr: reused, State: wire.NodeActive}}
	own := []string{reused}
	for _, tc := range []struct {
		on   []string
		kept bool
	}{
		{[]string{hand}, true},
		{[]string{oldOwn, hand}, true},
		{[]string{oldOwn}, false},
		{[]string{reused, oldOwn}, false},
		{[]string{"127.0.0.1:7300"}, false}, // forgotten: not in the status
	} {
		j := wire.JobStatus{Job: "j-1"}
		for _, a := range tc.on {
			j.Nodes = append(j.Nodes, wire.MapNode{Addr: a, Weight: 1})
		}
		if got := keptOnRunning(j, nodes, own); got != tc.kept {
			t.Errorf("job on %v: kept %v, want %v", tc.on, got, tc.kept)
		}
	}
}
