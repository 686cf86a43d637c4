package controller

import (
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestPersistedTotalsKeepStatusDecodable: a node's heartbeat totals of
// persisted values of ended jobs (PersistedJobs, PersistedBytes) are
// checked on decode only for being not negative, unlike every other figure
// a node reports (wire/figures.go), and the controller copies them into
// the node's status metrics (persisted_jobs, persisted_bytes), which the
// ClusterStatus decoder bounds at 2^53 in magnitude. One node's heartbeat
// the controller accepts thus makes every status reply one the client
// refuses: pocket status, and pocket node drain's wait, fail for the whole
// cluster for as long as the node reports it.
func TestPersistedTotalsKeepStatusDecodable(t *testing.T) {
	c := newTest(t, Config{})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	var hb wire.Heartbeat
	sent := &wire.Heartbeat{Addr: a, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 1 << 20, Mbps: 1000}},
		PersistedJobs: 1 << 60, PersistedBytes: 1 << 60}
	if err := roundTrip(sent, &hb); err != nil {
		t.Logf("the heartbeat decoder refuses the totals (%v): nothing reaches the status", err)
		return
	}
	if _, err := c.Heartbeat(&hb); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(c.Status(), &wire.ClusterStatus{}); err != nil {
		t.Fatalf("a heartbeat the controller took makes its status reply undecodable: %v", err)
	}
}
