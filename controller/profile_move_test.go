package controller

import (
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// beatLoad is elasticRig.beat with the job's own figures on addr (its
// bytes there, 50 Mb/s; none when bytes < 0).
func (r *elasticRig) beatLoad(addr, job string, bytes int64, moves []wire.MoveReport) {
	r.t.Helper()
	hb := &wire.Heartbeat{Addr: addr, Since: r.since[addr], Moves: moves,
		Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 1000, UsedBytes: max(bytes, 0)}}}
	if bytes >= 0 {
		hb.Loads = []wire.JobLoad{{Job: job, RxMbps: 50, Bytes: bytes}}
	}
	for i := 0; i < 10; i++ { // again at once while the ack says More, as the agent does
		hb.Since = r.since[addr]
		ack, err := r.c.Heartbeat(hb)
		if err != nil {
			r.t.Fatal(err)
		}
		r.since[addr] = ack.Rev
		if !ack.More {
			break
		}
	}
}

// TestProfileCountsMovedBytesOnce: a job holding 12 MB on one node grows
// onto a second, which takes half of its values. Its profile records a
// peak of 12 MB, not the 18 MB of the first node's figure from before the
// move summed with the second's from after it, which the old controller
// recorded when the second node's figures came to count before the first
// node heartbeated again (a new-user trial: 21.7 MB for a job of 14.7).
func TestProfileCountsMovedBytesOnce(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	a, x := "127.0.0.1:7001", "127.0.0.1:7003"
	r := newElasticRig(t, c, a, x)
	m0, err := c.RegisterJob("grows", wire.JobHints{PeakMbps: 100, CapacityBytes: 1 << 20})
	if err != nil || len(m0.Nodes) != 1 || m0.Nodes[0].Addr != a {
		t.Fatalf("register: %+v %v; want the job on %s alone", m0, err, a)
	}
	for range 5 {
		r.beatLoad(a, m0.Job, 12e6, nil)
		r.beatLoad(x, m0.Job, -1, nil)
	}
	if err := c.GrowJob(m0.Job, x); err != nil {
		t.Fatal(err)
	}
	r.beatLoad(a, m0.Job, 12e6, nil)
	r.beatLoad(x, m0.Job, 0, nil)
	m1 := r.mapOf(m0)
	if stateIn(m1, x) != wire.NodeJoining {
		t.Fatalf("map while %s joins: %+v", x, m1)
	}
	r.beatLoad(a, m0.Job, 6e6, []wire.MoveReport{{Job: m0.Job, Epoch: m1.Epoch}})
	r.beatLoad(x, m0.Job, 6e6, nil)
	if m2 := r.mapOf(m0); m2.Epoch <= m1.Epoch || stateIn(m2, x) != wire.NodeActive {
		t.Fatalf("map after %s joined: %+v", x, m2)
	}
	// The joining node's figures come to count first.
	for range 5 {
		r.beatLoad(x, m0.Job, 6e6, nil)
	}
	for range 5 {
		r.beatLoad(a, m0.Job, 6e6, nil)
		r.beatLoad(x, m0.Job, 6e6, nil)
	}
	if _, err := c.DeregisterJob(t.Context(), m0.Job, m0.Token); err != nil {
		t.Fatal(err)
	}
	p, _, ok := c.Profile("grows")
	if !ok || len(p.Runs) != 1 {
		t.Fatalf("profile %+v (%v), want one run", p, ok)
	}
	if got := p.Runs[0].PeakBytes; got != 12e6 {
		t.Errorf("recorded peak bytes %d, want the job's 12e6", got)
	}
}
