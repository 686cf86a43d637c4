package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestStatusShowsRestoredNodesAwaitingHeartbeat: a node the controller
// restored from its state and has not heard from since it started is
// marked in --json (awaiting_first_heartbeat, last_seen_ms keeps its type)
// and named in the plain status; whether the controller autoscales shows
// too. Before, such a node read last_seen_ms 0, as if just heard from.
func TestStatusShowsRestoredNodesAwaitingHeartbeat(t *testing.T) {
	st := &wire.ClusterStatus{NodeCount: 2, AutoscaleMaxNodes: 6, Nodes: []wire.NodeStatus{
		{Addr: "127.0.0.1:7001", State: wire.NodeActive, Restored: true},
		{Addr: "127.0.0.1:7002", State: wire.NodeActive, LastSeen: 250e6}}}
	v := statusView(st)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Autoscale float64          `json:"autoscale_max_nodes"`
		Nodes     []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Autoscale != 6 {
		t.Errorf("autoscale_max_nodes %v, want 6", doc.Autoscale)
	}
	for i, want := range []struct {
		awaiting bool
		lastSeen float64
	}{{true, 0}, {false, 250}} {
		n := doc.Nodes[i]
		if n["awaiting_first_heartbeat"] != want.awaiting || n["last_seen_ms"] != want.lastSeen {
			t.Errorf("node %d: awaiting_first_heartbeat %v, last_seen_ms %v; want %v, %v", i, n["awaiting_first_heartbeat"], n["last_seen_ms"], want.awaiting, want.lastSeen)
		}
	}
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	for _, want := range []string{"node 127.0.0.1:7001: restored from the controller's state, awaiting its first heartbeat", "the controller autoscales, up to 6 node(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("plain status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "127.0.0.1:7002: restored") {
		t.Errorf("plain status names a node heard from as restored:\n%s", out)
	}
}
