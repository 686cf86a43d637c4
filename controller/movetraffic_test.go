package controller

import (
	"context"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// beatTraffic heartbeats addr with its node-level rx and tx (Mb/s) and
// the per-job figures loads, as an agent does (heartbeatLoads, with tx).
func (r *scaleRig) beatTraffic(addr string, rx, tx float64, loads []wire.JobLoad) {
	r.t.Helper()
	hb := &wire.Heartbeat{Addr: addr, Proof: dramNode(addr, 0, 0).Proof, RxMbps: rx, TxMbps: tx, Loads: loads,
		Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 1000}}}
	r.c.mu.Lock()
	n, ok := r.c.nodes[addr]
	hurried := ok && n.hurried
	r.c.mu.Unlock()
	for i := 0; i < 10; i++ {
		if ack := r.beatOnce(hb); !ack.More && !hurried {
			break
		}
		hurried = false
	}
}

// statusSettling is the Settling of job's entry in c's status (false
// when it lists none).
func statusSettling(c *Controller, job string) bool {
	for _, js := range c.Status().Jobs {
		if js.Job == job {
			return js.Settling
		}
	}
	return false
}

func usedMbps(c *Controller, job string) float64 {
	for _, js := range c.Status().Jobs {
		if js.Job == job {
			return js.UsedMbps
		}
	}
	return -1
}

// TestMoveTrafficIsNotTheJobs: a job no client uses grows by a node; the
// values moved to it are the job's puts, which its nodes count as the
// job's own traffic (900 Mb/s on the new node, the old one sending at 900
// Mb/s). Neither while the move runs nor for the heartbeats after it
// whose intervals it overlaps may that traffic show as the job's load
// (status), grow its map again once the cool-down has passed (heartbeats
// of 2 s and more keep it in a 3-heartbeat average beyond the 5 s
// cool-down), or become its profile's peak. The same holds while a node
// of its map drains from the cluster. The old controller showed ~900
// Mb/s, grew the job again, and recorded a peak of ~900 Mb/s.
func TestMoveTrafficIsNotTheJobs(t *testing.T) {
	r := newScaleRig(t, 3, AutoscaleConfig{Cooldown: time.Hour, Smooth: 3, JobCooldown: time.Second, MinNodes: 3})
	m0 := oneNodeJob(t, r, "quiet", 300, true)
	home := m0.Nodes[0].Addr
	idle := []wire.JobLoad{{Job: m0.Job, Bytes: 200 << 20}}
	beatAll := func(move float64, to string) {
		for _, n := range r.c.Status().Nodes {
			switch n.Addr {
			case home:
				r.beatTraffic(n.Addr, 0, move, idle)
			case to:
				r.beatTraffic(n.Addr, move, 0, []wire.JobLoad{{Job: m0.Job, RxMbps: move, Bytes: 100 << 20}})
			default:
				r.beatTraffic(n.Addr, 0, 0, nil)
			}
		}
	}
	for i := 0; i < 3; i++ {
		beatAll(0, "")
	}
	if err := r.c.GrowJob(m0.Job, ""); err != nil {
		t.Fatal(err)
	}
	r.c.mu.Lock()
	j := r.c.jobs[m0.Job]
	to := j.move.addr
	r.c.mu.Unlock()

	// The move: 900 Mb/s from home to the new node, the job's own puts.
	for i := 0; i < 3; i++ {
		beatAll(900, to)
		if got := usedMbps(r.c, m0.Job); got > 1 {
			t.Fatalf("status shows %.0f Mb/s of the job's own while its values move and no client uses it", got)
		}
		if u := jobUtilOf(r.a, m0.Job); !u.Settling {
			t.Fatalf("figures during the move not settling: %+v", u)
		}
	}
	r.c.mu.Lock()
	for _, mn := range j.nodes {
		j.move.done[mn.Addr] = j.epoch
	}
	r.c.finishMoveLocked(j, r.clock.now())
	r.c.mu.Unlock()
	// The heartbeat after the end covers the move's last second; the
	// next ones are quiet. Past the job cool-down, with the move still in
	// the nodes' 3-heartbeat averages, nothing grows.
	beatAll(900, to)
	r.clock.advance(2 * time.Second) // past the job cool-down, short of three (a shrink)
	for i := 0; i < 3; i++ {
		r.a.Step()
		if got := usedMbps(r.c, m0.Job); got > 1 {
			t.Fatalf("status shows %.0f Mb/s of the job's own %d heartbeat(s) after its move", got, i+1)
		}
		// The map has settled, its nodes' figures not yet: status says
		// so (pocket status marks USED SIZE "~"); before, nothing did.
		if !statusSettling(r.c, m0.Job) {
			t.Fatalf("status does not say the job's figures are settling %d heartbeat(s) after its move", i+1)
		}
		r.c.mu.Lock()
		grew := j.move != nil || len(j.nodes) != 2
		r.c.mu.Unlock()
		if grew {
			t.Fatalf("the job grew again on its own move's traffic %d heartbeat(s) after it: %+v", i+1, r.a.Decisions())
		}
		beatAll(0, "")
	}
	if u := jobUtilOf(r.a, m0.Job); u.Settling || u.Nodes != 2 || statusSettling(r.c, m0.Job) {
		t.Fatalf("figures %d quiet heartbeats after the move: %+v (status settling %v); want settled on 2 nodes", 3, u, statusSettling(r.c, m0.Job))
	}

	// Its own load after the move counts again, on both nodes.
	for i := 0; i < 3; i++ {
		for _, n := range r.c.Status().Nodes {
			if n.Addr == home || n.Addr == to {
				r.beatTraffic(n.Addr, 100, 0, []wire.JobLoad{{Job: m0.Job, RxMbps: 100, Bytes: 150 << 20}})
			}
		}
	}
	if got := usedMbps(r.c, m0.Job); got < 199 || got > 201 {
		t.Fatalf("status shows %.0f Mb/s of the job's own at 100 Mb/s on each of its 2 nodes; want 200", got)
	}

	// A drain of the new node from the cluster: its values move home.
	if _, err := r.c.Drain(to, time.Minute); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		for _, n := range r.c.Status().Nodes {
			switch n.Addr {
			case home:
				r.beatTraffic(n.Addr, 900, 0, []wire.JobLoad{{Job: m0.Job, RxMbps: 900, Bytes: 300 << 20}})
			case to:
				r.beatTraffic(n.Addr, 0, 900, []wire.JobLoad{{Job: m0.Job, Bytes: 50 << 20}})
			}
		}
		if got := usedMbps(r.c, m0.Job); got > 1 {
			t.Fatalf("status shows %.0f Mb/s of the job's own while a drain moves its values", got)
		}
	}

	if _, err := r.c.DeregisterJob(context.Background(), m0.Job, m0.Token); err != nil {
		t.Fatal(err)
	}
	_, l, ok := r.c.Profile("quiet")
	if !ok {
		t.Fatal("no profile recorded")
	}
	// Its peak is its own 200 Mb/s (x ProfileHeadroom), not the moves'.
	if l.Estimate.Mbps > ProfileHeadroom*200+1 {
		t.Fatalf("profile estimates %.0f Mb/s: the moves' traffic became its peak", l.Estimate.Mbps)
	}
}
