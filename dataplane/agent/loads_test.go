package agent

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// TestJobLoadsRates: per-job figures are each job's bytes since the last
// heartbeat over the interval in Mb/s, with its bytes held; a job counted
// from zero again counts from zero; past the bound the busiest are kept,
// the busiest first.
func TestJobLoadsRates(t *testing.T) {
	last := byJob([]dataplane.JobTraffic{
		{Job: "busy-1", BytesIn: 1e6, BytesOut: 5e6},
		{Job: "idle-2", BytesIn: 7e6, BytesOut: 7e6, Held: 1 << 30},
		{Job: "new-3", BytesIn: 9e9, BytesOut: 9e9}, // an earlier job under the id
	})
	now := []dataplane.JobTraffic{
		{Job: "idle-2", BytesIn: 7e6, BytesOut: 7e6, Held: 1 << 30},
		{Job: "busy-1", BytesIn: 1e6 + 250e6, BytesOut: 5e6 + 50e6, Held: 4096},
		{Job: "new-3", BytesIn: 2e6, BytesOut: 0},
		{Job: "first-4", BytesIn: 0, BytesOut: 1e6},
	}
	got := jobLoads(now, last, 2, wire.MaxJobLoads)
	want := []wire.JobLoad{
		{Job: "busy-1", RxMbps: 1000, TxMbps: 200, Bytes: 4096},
		{Job: "new-3", RxMbps: 8, TxMbps: 0},
		{Job: "first-4", RxMbps: 0, TxMbps: 4},
		{Job: "idle-2", Bytes: 1 << 30},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("loads %v\nwant %v", got, want)
	}
	if top := jobLoads(now, last, 2, 2); len(top) != 2 || top[0].Job != "busy-1" || top[1].Job != "new-3" {
		t.Fatalf("bounded to 2: %v; want the two busiest", top)
	}
	if l := jobLoads(now, last, 0, wire.MaxJobLoads); l != nil {
		t.Fatalf("no interval: %v; want none", l)
	}
}

// TestReportCarriesJobLoads: a heartbeat reports each job's own traffic,
// matching what the node served over the interval (two jobs on one node,
// one putting, one reading), and the jobs' rates add up to the node's.
func TestReportCarriesJobLoads(t *testing.T) {
	n, _ := guardedNode(t, 64<<20, 2)
	n.ApplyAck(&wire.NodeAck{Known: true, State: wire.NodeActive, Rev: 10, Full: true,
		Jobs: []wire.JobEpoch{{Job: "writer-1", Gen: 1}, {Job: "reader-2", Gen: 2}}})
	c := client.New(client.Options{ConnsPerNode: 2})
	defer c.Close()
	do := func(op wire.Op, job string, gen uint64, key string, val []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tok := token.SignJob(testSecret, []byte(job), token.Claims{Gen: gen})
		req := wire.Request{Job: []byte(job), Key: []byte(key), Token: tok}
		if _, err := c.Do(ctx, n.Addr().String(), op, 0, &req, val, nil); err != nil {
			t.Fatalf("%v %s/%s: %v", op, job, key, err)
		}
	}
	val := make([]byte, 256<<10)
	do(wire.OpPut, "reader-2", 2, "r", val) // before the interval

	a := &agent{cfg: Config{Node: n, Logger: quietLog}, last: time.Now(), lastStats: n.Stats(), lastJobs: byJob(n.JobTraffic())}
	for i := 0; i < 8; i++ {
		do(wire.OpPut, "writer-1", 1, fmt.Sprint("w", i), val)
		do(wire.OpGet, "reader-2", 2, "r", nil)
		do(wire.OpGet, "reader-2", 2, "r", nil)
	}
	start := a.last
	var hb wire.Heartbeat
	a.report(&hb)
	secs := a.last.Sub(start).Seconds()
	want := map[string][2]float64{
		"writer-1": {mbps(8*uint64(len(val)), secs), 0},
		"reader-2": {0, mbps(16*uint64(len(val)), secs)},
	}
	if len(hb.Loads) != 2 {
		t.Fatalf("loads %v; want writer-1 and reader-2", hb.Loads)
	}
	var rx, tx float64
	for _, l := range hb.Loads {
		w := want[l.Job]
		if !near(l.RxMbps, w[0]) || !near(l.TxMbps, w[1]) {
			t.Errorf("%s: rx %.3f tx %.3f Mb/s; want %.3f, %.3f", l.Job, l.RxMbps, l.TxMbps, w[0], w[1])
		}
		rx, tx = rx+l.RxMbps, tx+l.TxMbps
	}
	if hb.Loads[0].Job != "reader-2" {
		t.Errorf("the busiest first: %v", hb.Loads)
	}
	if !near(rx, hb.RxMbps) || !near(tx, hb.TxMbps) {
		t.Errorf("the jobs' rx %.3f tx %.3f; the node's %.3f, %.3f", rx, tx, hb.RxMbps, hb.TxMbps)
	}
	var writerHeld int64
	for _, l := range hb.Loads {
		if l.Job == "writer-1" {
			writerHeld = l.Bytes
		}
	}
	if writerHeld < 8*int64(len(val)) {
		t.Errorf("writer-1 holds %d bytes; want at least the %d it put", writerHeld, 8*len(val))
	}
	// The next interval saw nothing: both report 0 Mb/s, bytes unchanged.
	a.report(&hb)
	for _, l := range hb.Loads {
		if l.RxMbps != 0 || l.TxMbps != 0 {
			t.Errorf("an idle interval: %s at rx %.3f tx %.3f Mb/s", l.Job, l.RxMbps, l.TxMbps)
		}
	}
}

// near reports whether a is within 1e-9 (relative) of b: the same bytes
// over the same interval.
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
