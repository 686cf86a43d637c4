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

// TestStatusHidesStaleFigures: the plain status shows "-" for the rates,
// CPU and bytes used of a dead node and of a node awaiting its first
// heartbeat, whose figures are an earlier heartbeat's or none. Before, a
// dead node kept showing its last CPU and a restored one 0 % and 0 B (the
// final new user's trial), and then a dead node its last USED figure
// beside "-" rates (a later trial: "dead ... 2.31KiB"; its values are gone).
func TestStatusHidesStaleFigures(t *testing.T) {
	tiers := []wire.TierStat{{Kind: uint8(wire.TierDRAM), CapacityBytes: 1 << 30, UsedBytes: 5 << 20}}
	st := &wire.ClusterStatus{NodeCount: 3, Nodes: []wire.NodeStatus{
		{Addr: "127.0.0.1:7001", State: wire.NodeActive, Restored: true, Tiers: tiers},
		{Addr: "127.0.0.1:7002", State: wire.NodeDead, CPUPercent: 22, RxMbps: 40, Tiers: tiers},
		{Addr: "127.0.0.1:7003", State: wire.NodeActive, CPUPercent: 37, RxMbps: 40, TxMbps: 41, Tiers: tiers}}}
	out, _ := stdoutOf(t, func() int { printStatus(statusView(st)); return 0 })
	// Columns: NODE STATE TIER USED CAPACITY TIER-Mb/s RX/TX CPU JOBS.
	want := map[string][3]string{ // USED, RX/TX, CPU
		"127.0.0.1:7001": {"-", "-", "-"},
		"127.0.0.1:7002": {"-", "-", "-"},
		"127.0.0.1:7003": {"5MiB", "40/41", "37%"},
	}
	seen := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		w, ok := want[firstOr(f)]
		if !ok {
			continue
		}
		seen++
		if len(f) != 9 || f[3] != w[0] || f[6] != w[1] || f[7] != w[2] {
			t.Errorf("row %q: want USED %s, RX/TX %s, CPU %s", line, w[0], w[1], w[2])
		}
	}
	if seen != 3 {
		t.Fatalf("%d node rows in:\n%s", seen, out)
	}
}

func firstOr(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// TestStatusRestoredDeadNodeIsNotAwaiting: a node restored from the
// controller's state that the controller marked dead (never heard from
// within its grace) is dead, not awaiting a heartbeat: --json says
// unheard_since_restart, not awaiting_first_heartbeat, and the plain
// status says it is dead. Before, it read STATE dead beside "awaiting its
// first heartbeat" for minutes (a new user's trial).
func TestStatusRestoredDeadNodeIsNotAwaiting(t *testing.T) {
	st := &wire.ClusterStatus{NodeCount: 2, Nodes: []wire.NodeStatus{
		{Addr: "127.0.0.1:7001", State: wire.NodeDead, Restored: true},
		{Addr: "127.0.0.1:7002", State: wire.NodeActive, Restored: true}}}
	v := statusView(st)
	for i, want := range [][2]bool{{true, false}, {true, true}} { // unheard, awaiting
		if n := v.Nodes[i]; n.UnheardSinceRestart != want[0] || n.AwaitingFirstHeartbeat != want[1] {
			t.Errorf("%s (%s): unheard_since_restart %v, awaiting_first_heartbeat %v; want %v, %v",
				n.Addr, n.State, n.UnheardSinceRestart, n.AwaitingFirstHeartbeat, want[0], want[1])
		}
	}
	out, _ := stdoutOf(t, func() int { printStatus(v); return 0 })
	for _, want := range []string{
		"node 127.0.0.1:7001: dead: restored from the controller's state and never heard from since the controller started",
		"node 127.0.0.1:7002: restored from the controller's state, awaiting its first heartbeat",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plain status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "127.0.0.1:7001: restored from the controller's state, awaiting") {
		t.Errorf("a dead node is said to await its first heartbeat:\n%s", out)
	}
}
