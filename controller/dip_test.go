package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Scale-in reads a load that stayed low, not a dip. A new user's steady
// load of about 1,000 Mb/s saw the cluster add 5 nodes and drain 4 in
// 75 s: one heartbeat of less traffic (a pause of the clients, a map
// change's stall) drained a node, the job's remaining nodes went over the
// band, and a node was started for it again.

// TestAutoscaleScaleInWaitsOutADip: three nodes at 55 % whose heartbeats
// dipped to 5 % keep all three (two would run at 82 %), after one low
// heartbeat and after a pause of eight; once LowFor heartbeats in a row
// (9 by default) are low, scale-in drains at once. Before, scale-in read
// the latest heartbeat alone and drained two nodes on the first dip (and
// with a 3-heartbeat window, a hostile load of 2 s on and 4 s off went up
// and down).
func TestAutoscaleScaleInWaitsOutADip(t *testing.T) {
	r := newScaleRig(t, 3, AutoscaleConfig{Smooth: 3})
	r.clock.advance(time.Minute)
	r.beat(550, 0)
	r.beat(550, 0)
	r.beat(50, 0) // a dip: the mean is 38 %, the latest 5 %
	if d := r.a.Step(); d.Action != ActionNone || r.active() != 3 {
		t.Fatalf("after one low heartbeat: %+v, %d active", d, r.active())
	}
	if !r.logs.contains("2 node(s) would run at 82%") {
		t.Fatalf("hold not logged with the load it keeps: %s", r.logs.msgs())
	}
	for range 7 {
		r.beat(50, 0)
	}
	if d := r.a.Step(); d.Action != ActionNone || r.active() != 3 {
		t.Fatalf("after eight low heartbeats: %+v, %d active", d, r.active())
	}
	r.beat(50, 0)
	d := r.a.Step()
	if d.Action != ActionRemove || len(d.Drain) != 2 || !strings.Contains(d.Reason, "measured 5%") {
		t.Fatalf("after nine low heartbeats: %+v", d)
	}
}

// TestJobShrinkWaitsOutADip: a job grown over two nodes at 50 % each
// keeps both through one heartbeat at 2 % (one node would carry 100 %,
// and the job would grow again at once); LowFor (9) low heartbeats shed
// one.
// Before, the shrink read the smoothed mean (34 %) and the latest (2 %),
// projected 68 % on one node, and shed it on the dip.
func TestJobShrinkWaitsOutADip(t *testing.T) {
	r := newScaleRig(t, 2, AutoscaleConfig{Cooldown: time.Hour, Smooth: 3, JobCooldown: time.Second, MinNodes: 2})
	m := oneNodeJob(t, r, "long", 100, true)
	home := m.Nodes[0].Addr
	var other string
	for _, n := range r.c.Status().Nodes {
		if n.Addr != home {
			other = n.Addr
		}
	}
	j := r.grown(m.Job, other)
	r.clock.advance(time.Minute)
	r.beat(500, 0)
	r.beat(500, 0)
	r.beat(20, 0)
	r.a.Step()
	r.c.mu.Lock()
	shedding := j.move != nil
	r.c.mu.Unlock()
	if shedding {
		t.Fatalf("the job sheds a node on one low heartbeat: %s", r.logs.msgs())
	}
	for range 8 {
		r.beat(20, 0)
	}
	r.clock.advance(time.Minute)
	r.a.Step()
	r.c.mu.Lock()
	shedding = j.move != nil
	r.c.mu.Unlock()
	if !shedding {
		t.Fatalf("the job keeps both nodes after nine heartbeats at 2 %%: %+v", r.a.JobUtilization())
	}
}

// TestScaleInDoesNotWaitOutAnEndedJob: the traffic of a job that has
// ended (deregistered, none of it in the latest heartbeat) is left out of
// the peak scale-in reads, so its nodes drain once heartbeats cover the
// end, not LowFor heartbeats later; a live job's traffic in the window
// still counts. Before, the ended job's 55 % in the window kept scale-in
// to one node of three (the trace's node-seconds rose by about 50).
func TestScaleInDoesNotWaitOutAnEndedJob(t *testing.T) {
	r := newScaleRig(t, 4, AutoscaleConfig{Smooth: 1, LowFor: 9})
	m, err := r.c.RegisterJob("sort", wire.JobHints{PeakMbps: 2400})
	if err != nil || len(m.Nodes) != 3 {
		t.Fatalf("job: %v, %+v", err, m)
	}
	beat := func(rx float64, job string) {
		for _, n := range r.c.Status().Nodes {
			if n.State != wire.NodeActive {
				continue
			}
			hb := &wire.Heartbeat{Addr: n.Addr, Incarnation: 1, RxMbps: rx,
				Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 1000}}}
			if job != "" && rx > 0 {
				hb.Loads = []wire.JobLoad{{Job: job, RxMbps: rx}}
			}
			if _, err := r.c.Heartbeat(hb); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.clock.advance(time.Minute)
	for range 3 {
		beat(550, m.Job)
	}
	if _, err := r.c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	r.a.Step() // waits for heartbeats after the end
	beat(0, "")
	beat(0, "")
	d := r.a.Step()
	if d.Action != ActionRemove || len(d.Drain) != 3 {
		t.Fatalf("two heartbeats after the job ended: %+v; want 3 of 4 nodes drained", d)
	}
}

// TestEndedPutsDoNotHideLiveGets: an ended job's traffic is left out per
// direction, so its puts (rx) do not cancel a live job's gets (tx) on the
// same nodes: a live reader at 55 % that paused for two heartbeats keeps
// its nodes. Before, the ended job's max(rx, tx) came off the node's, the
// reader's 55 % read as 0, and two of three nodes drained (a hostile
// re-check; the reader then ran on one node and a node was added again).
func TestEndedPutsDoNotHideLiveGets(t *testing.T) {
	r := newScaleRig(t, 3, AutoscaleConfig{Smooth: 1, LowFor: 9, MinNodes: 1})
	ended, err := r.c.RegisterJob("writer", wire.JobHints{PeakMbps: 100})
	if err != nil {
		t.Fatal(err)
	}
	live, err := r.c.RegisterJob("reader", wire.JobHints{PeakMbps: 100})
	if err != nil {
		t.Fatal(err)
	}
	beat := func(loads []wire.JobLoad, rx, tx float64) {
		for _, n := range r.c.Status().Nodes {
			if n.State != wire.NodeActive {
				continue
			}
			if _, err := r.c.Heartbeat(&wire.Heartbeat{Addr: n.Addr, Incarnation: 1, RxMbps: rx, TxMbps: tx, Loads: loads,
				Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 1000}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.clock.advance(time.Minute)
	both := []wire.JobLoad{{Job: ended.Job, RxMbps: 550}, {Job: live.Job, TxMbps: 550}}
	for range 3 {
		beat(both, 550, 550)
	}
	if _, err := r.c.DeregisterJob(t.Context(), ended.Job, ended.Token); err != nil {
		t.Fatal(err)
	}
	beat(nil, 0, 0) // the reader pauses
	beat(nil, 0, 0)
	r.clock.advance(time.Minute)
	if d := r.a.Step(); d.Action == ActionRemove {
		t.Fatalf("a live reader's 55 %% in the window, hidden by an ended writer's puts: %+v", d)
	}
}
