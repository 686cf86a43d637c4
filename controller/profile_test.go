package controller

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// beat sends node addr's heartbeat (rx Mb/s, used bytes of its DRAM tier)
// and has book observe it at now, as the controller's heartbeat does.
func beat(t *testing.T, c *Controller, book *profileBook, addr string, capacity int64, rx float64, used int64, now time.Time) {
	t.Helper()
	hb := &wire.Heartbeat{Addr: addr, RxMbps: rx, TxMbps: rx / 2,
		Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: capacity, Mbps: 8000, UsedBytes: used}}}
	if _, err := c.Heartbeat(hb); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	book.observeNode(c.nodes[addr], c.loads[addr], c.nodeMbps(c.nodes[addr]), now, nil)
	c.mu.Unlock()
}

func within(got, want, frac float64) bool { return math.Abs(got-want) <= frac*want }

// TestProfileSizesNextJob: a job registered without hints gets Pocket's
// default (2 nodes, 16 Gb/s); it uses 3 Gb/s and 5 GB at its peak; the
// next job of its name, again without hints, gets within 25 % of that
// (1 node, 3.3 Gb/s, 5.5 GB with the headroom) instead of the default.
func TestProfileSizesNextJob(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	const capacity = 60e9
	addrs := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004"}
	for _, a := range addrs {
		mustRegister(t, c, dramNode(a, capacity, 8000))
	}
	book := newProfileBook(0, 0, false)
	m, err := c.RegisterJob("sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	j := c.jobs[m.Job]
	first := j.allocMbps
	c.mu.Unlock()
	if len(m.Nodes) != 2 || first != 16000 {
		t.Fatalf("first run: %d nodes, %.0f Mb/s; want Pocket's default 2 and 16000", len(m.Nodes), first)
	}
	// 20 s of load rising to 1500 Mb/s and 2.5 GB on each of its nodes,
	// then falling.
	start := time.Now()
	for s := 0; s < 20; s++ {
		level := 1 - math.Abs(float64(s)-10)/10
		for _, mn := range m.Nodes {
			beat(t, c, book, mn.Addr, capacity, 1500*level, int64(2.5e9*level), start.Add(time.Duration(s)*time.Second))
		}
	}
	c.mu.Lock()
	book.end(j, start.Add(20*time.Second))
	c.mu.Unlock()
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	p, ok := book.profile("sort")
	if !ok || len(p.Runs) != 1 || p.Runs[0].PeakMbps != 3000 || p.Runs[0].PeakBytes != 5e9 {
		t.Fatalf("profile %+v; want one run of 3000 Mb/s and 5e9 bytes", p)
	}

	c.mu.Lock()
	pl, kind, source, err := c.sizeJobLocked(book, "sort", &wire.JobRegister{Name: "sort"})
	c.mu.Unlock()
	if err != nil || source != SizeProfile || kind != kindDRAM {
		t.Fatalf("second run: %v, %q, tier %d", err, source, kind)
	}
	if !within(pl.mbps, 3000, 0.25) || !within(float64(pl.bytes), 5e9, 0.25) || len(pl.nodes) != 1 {
		t.Fatalf("second run: %d nodes, %.0f Mb/s, %d bytes; want 1 node and within 25%% of 3000 Mb/s, 5e9 bytes (default: 2 nodes, 16000 Mb/s)",
			len(pl.nodes), pl.mbps, pl.bytes)
	}
	// Hints win over the profile; latency alone is not a size hint.
	c.mu.Lock()
	pl, _, source, _ = c.sizeJobLocked(book, "sort", &wire.JobRegister{Name: "sort", Hints: wire.JobHints{PeakMbps: 12000}})
	_, _, src2, _ := c.sizeJobLocked(book, "sort", &wire.JobRegister{Name: "sort", Hints: wire.JobHints{LatencySensitive: true}})
	_, _, src3, _ := c.sizeJobLocked(book, "other", &wire.JobRegister{Name: "other"})
	c.mu.Unlock()
	if source != SizeHints || pl.mbps != 12000 || src2 != SizeProfile || src3 != SizeDefault {
		t.Fatalf("hinted: %q %.0f Mb/s; latency only: %q; unknown name: %q", source, pl.mbps, src2, src3)
	}
}

// TestProfileAttribution: two jobs share a node that reports no per-job
// figures (an older node); its figures are split by their allotments
// there.
func TestProfileAttribution(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 100e9, 8000))
	book := newProfileBook(0, 0, false)
	a, err := c.RegisterJob("a", wire.JobHints{PeakMbps: 1000, CapacityBytes: 30e9})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.RegisterJob("b", wire.JobHints{PeakMbps: 3000, CapacityBytes: 10e9})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	beat(t, c, book, "127.0.0.1:7001", 100e9, 2000, 8e9, now)
	beat(t, c, book, "127.0.0.1:7001", 100e9, 2000, 8e9, now.Add(time.Second)) // ProfileMinSamples
	c.mu.Lock()
	ja, jb := c.jobs[a.Job], c.jobs[b.Job]
	book.end(ja, now.Add(2*time.Second))
	book.end(jb, now.Add(2*time.Second))
	c.mu.Unlock()
	pa, _ := book.profile("a")
	pb, _ := book.profile("b")
	if len(pa.Runs) != 1 || len(pb.Runs) != 1 {
		t.Fatalf("profiles %+v %+v", pa, pb)
	}
	ra, rb := pa.Runs[0], pb.Runs[0]
	if !within(ra.PeakMbps, 500, 1e-9) || !within(rb.PeakMbps, 1500, 1e-9) {
		t.Errorf("bandwidth split %.1f / %.1f; want 500 / 1500 (1:3 by allotment)", ra.PeakMbps, rb.PeakMbps)
	}
	if !within(float64(ra.PeakBytes), 6e9, 1e-6) || !within(float64(rb.PeakBytes), 2e9, 1e-6) {
		t.Errorf("bytes split %d / %d; want 6e9 / 2e9 (3:1 by allotment)", ra.PeakBytes, rb.PeakBytes)
	}
}

// TestProfileOwnFigures: an idle job sharing a node with a busy one
// records near-zero Mb/s and its own bytes when the node reports per-job
// figures; the busy one records its own. The old controller split the
// node's figures by allotment, so the idle job recorded 1/4 of the busy
// one's 4000 Mb/s (the trial's idle profiles at 7,681 and 2,363 Mb/s).
func TestProfileOwnFigures(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 100e9, 8000))
	book := newProfileBook(0, 0, false)
	idle, err := c.RegisterJob("idle", wire.JobHints{PeakMbps: 1000, CapacityBytes: 10e9})
	if err != nil {
		t.Fatal(err)
	}
	busy, err := c.RegisterJob("busy", wire.JobHints{PeakMbps: 3000, CapacityBytes: 30e9})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for s := 0; s < 3; s++ {
		hb := &wire.Heartbeat{Addr: "127.0.0.1:7001", RxMbps: 4000.5, TxMbps: 100,
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 100e9, Mbps: 8000, UsedBytes: 20e9 + 1e6}},
			Loads: []wire.JobLoad{{Job: busy.Job, RxMbps: 4000, TxMbps: 100, Bytes: 20e9},
				{Job: idle.Job, RxMbps: 0.5, Bytes: 1e6}}}
		observe(t, c, book, hb, now.Add(time.Duration(s)*time.Second))
	}
	c.mu.Lock()
	book.end(c.jobs[idle.Job], now.Add(3*time.Second))
	book.end(c.jobs[busy.Job], now.Add(3*time.Second))
	c.mu.Unlock()
	pi, _ := book.profile("idle")
	pb, _ := book.profile("busy")
	if len(pi.Runs) != 1 || len(pb.Runs) != 1 {
		t.Fatalf("profiles %+v %+v", pi, pb)
	}
	if r := pi.Runs[0]; r.PeakMbps != 0.5 || r.PeakBytes != 1e6 {
		t.Errorf("the idle job recorded %.1f Mb/s and %d bytes; want its own 0.5 and 1e6", r.PeakMbps, r.PeakBytes)
	}
	if r := pb.Runs[0]; r.PeakMbps != 4000 || r.PeakBytes != 20e9 {
		t.Errorf("the busy job recorded %.1f Mb/s and %d bytes; want its own 4000 and 2e10", r.PeakMbps, r.PeakBytes)
	}
}

// TestProfileEstimate checks the weighting: newest first, weights 2^-i,
// times ProfileHeadroom.
func TestProfileEstimate(t *testing.T) {
	runs := []state.Run{{PeakMbps: 3000, PeakBytes: 4e9}, {PeakMbps: 1000, PeakBytes: 1e9}, {PeakMbps: 1000, PeakBytes: 1e9}}
	got := estimate(runs)
	wantMbps := ProfileHeadroom * (3000 + 0.5*1000 + 0.25*1000) / 1.75
	wantBytes := ProfileHeadroom * (4e9 + 0.5e9 + 0.25e9) / 1.75
	if !within(got.Mbps, wantMbps, 1e-9) || !within(float64(got.Bytes), wantBytes, 1e-6) || got.Runs != 3 {
		t.Fatalf("estimate = %+v; want %.1f Mb/s, %.0f bytes, 3 runs", got, wantMbps, wantBytes)
	}
	if got := estimate(nil); got != (Learned{}) {
		t.Fatalf("estimate of nothing = %+v", got)
	}
}

// TestProfileBookBounds: a profile keeps its newest runs, the book its
// most recently updated names, and every change reaches a batch once
// (again after a failed write).
func TestProfileBookBounds(t *testing.T) {
	b := newProfileBook(3, 2, true)
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	for i := 0; i < 5; i++ {
		b.record("x", state.Run{Job: fmt.Sprintf("x-%d", i), Ended: t0.Add(time.Duration(i) * time.Second), PeakMbps: float64(i)})
	}
	p, _ := b.profile("x")
	if len(p.Runs) != 3 || p.Runs[0].Job != "x-4" || p.Runs[2].Job != "x-2" {
		t.Fatalf("runs %+v; want x-4, x-3, x-2", p.Runs)
	}
	b.record("y", state.Run{Job: "y-1", Ended: t0.Add(10 * time.Second)})
	b.record("x", state.Run{Job: "x-5", Ended: t0.Add(11 * time.Second)}) // x is now newer than y
	b.record("z", state.Run{Job: "z-1", Ended: t0.Add(12 * time.Second)}) // evicts y
	if _, ok := b.profile("y"); ok {
		t.Fatal("y was updated longest ago and should be evicted")
	}
	var sb state.Batch
	names := b.batch(&sb)
	if len(names) != 3 || len(sb.PutProfiles) != 2 || len(sb.DeleteProfiles) != 1 || sb.DeleteProfiles[0] != "y" {
		t.Fatalf("batch: names %v, puts %d, deletes %v", names, len(sb.PutProfiles), sb.DeleteProfiles)
	}
	var again state.Batch
	if b.batch(&again) != nil || again.Len() != 0 {
		t.Fatal("a second batch without changes is not empty")
	}
	b.remark(names)
	if b.batch(&again); again.Len() != 3 {
		t.Fatalf("after a failed write: %d records; want 3", again.Len())
	}
	// Without a store nothing is marked.
	n := newProfileBook(1, 1, false)
	n.record("a", state.Run{Job: "a-1"})
	n.record("b", state.Run{Job: "b-1"})
	if names := n.batch(&state.Batch{}); names != nil || n.dirty != nil {
		t.Fatalf("unpersisted book marked %v", names)
	}
	// A restart loads the stored profiles, the newest within the bound.
	r := newProfileBook(2, 1, true)
	r.load(sb.PutProfiles)
	if _, ok := r.profile("z"); !ok || r.lru.Len() != 1 {
		t.Fatalf("load kept %d profiles; want z only", r.lru.Len())
	}
	if p, _ := r.profile("z"); len(p.Runs) != 1 {
		t.Fatalf("z: %+v", p)
	}
}

// TestProfilePhases: a run's quarters keep the peaks of their part of its
// life, however many buckets were folded on the way.
func TestProfilePhases(t *testing.T) {
	j := &job{id: "p-1", name: "p", tier: kindDRAM, nodes: []wire.MapNode{{Addr: "n", Weight: 1}}}
	b := newProfileBook(0, 0, false)
	start := time.UnixMilli(1_700_000_000_000)
	j.created = start
	life := 400 * time.Second // past 64 one-second buckets: folded twice
	for s := time.Duration(0); s < life; s += time.Second {
		q := int(s * 4 / life)
		b.trace(j, start.Add(s)).add(j, "n", nodeFig{mbps: float64(100 * (q + 1)), bytes: int64(q + 1)}, start.Add(s))
	}
	tr := b.traces[j.id]
	if len(tr.buckets) > profileBuckets || tr.width != 8*time.Second {
		t.Fatalf("%d buckets of %v; want at most %d of 8s", len(tr.buckets), tr.width, profileBuckets)
	}
	b.end(j, start.Add(life))
	p, _ := b.profile("p")
	ph := p.Runs[0].Phases
	if len(ph) != ProfilePhases {
		t.Fatalf("phases %+v", ph)
	}
	for q, want := range []float64{100, 200, 300, 400} {
		if ph[q].PeakMbps != want || ph[q].PeakBytes != int64(q+1) {
			t.Errorf("quarter %d: %+v; want %v Mb/s, %d bytes", q, ph[q], want, q+1)
		}
	}
	if p.Runs[0].Duration != life || p.Runs[0].PeakMbps != 400 {
		t.Errorf("run %+v", p.Runs[0])
	}
	// A job with no heartbeat seen leaves no run.
	b.end(&job{id: "q-1", name: "q"}, start)
	if _, ok := b.profile("q"); ok {
		t.Error("a job never observed got a profile")
	}
}

// TestProfileShortRunNotRecorded: a job seen in one heartbeat (shorter
// than the interval: ~0 Mb/s, a few bytes) leaves no run, so the next job
// of its name gets Pocket's default, not ~0 Mb/s; and a profile of idle
// runs (stored before this rule) sizes at no less than one lambda's
// bandwidth. Both failed before: the run was recorded and the next job
// sized at ~0 Mb/s.
func TestProfileShortRunNotRecorded(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 100e9, 8000))
	book := newProfileBook(0, 0, false)
	m, err := c.RegisterJob("tiny", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	beat(t, c, book, "127.0.0.1:7001", 100e9, 0.001, 20, now)
	c.mu.Lock()
	book.end(c.jobs[m.Job], now.Add(100*time.Millisecond))
	pl, _, source, err := c.sizeJobLocked(book, "tiny", &wire.JobRegister{Name: "tiny"})
	c.mu.Unlock()
	if p, ok := book.profile("tiny"); ok {
		t.Fatalf("a run of one heartbeat was recorded: %+v", p)
	}
	pol := c.cfg.Policy
	if err != nil || source != SizeDefault || pl.mbps != pol.DefaultMbps {
		t.Fatalf("next job: %v, %q, %.0f Mb/s; want Pocket's default %.0f Mb/s", err, source, pl.mbps, pol.DefaultMbps)
	}

	book.load([]state.Profile{{Name: "idle", Updated: now, Runs: []state.Run{{PeakMbps: 0.001, PeakBytes: 20}, {PeakMbps: 0, PeakBytes: 22}}}})
	c.mu.Lock()
	pl, _, source, err = c.sizeJobLocked(book, "idle", &wire.JobRegister{Name: "idle"})
	c.mu.Unlock()
	if err != nil || source != SizeProfile || pl.mbps < pol.PerLambdaMbps {
		t.Fatalf("a profile of idle runs: %v, %q, %.3f Mb/s; want at least one lambda's %.0f Mb/s", err, source, pl.mbps, pol.PerLambdaMbps)
	}
}

// TestProfileUnusedRunNotRecorded: a job registered and ended without
// moving or holding a byte (a launch that failed) leaves no run, so the
// next job of its name is sized from the earlier runs as before. Before,
// it was recorded at 0 and the estimate fell by about half (a new user's
// trial: 1,894 to 812 Mb/s).
func TestProfileUnusedRunNotRecorded(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	const addr, capacity = "127.0.0.1:7001", 100e9
	mustRegister(t, c, dramNode(addr, capacity, 8000))
	book := newProfileBook(0, 0, false)
	run := func(rx float64, used int64) {
		t.Helper()
		m, err := c.RegisterJob("etl", wire.JobHints{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for s := 0; s < 6; s++ {
			beat(t, c, book, addr, capacity, rx, used, start.Add(time.Duration(s)*time.Second))
		}
		c.mu.Lock()
		book.end(c.jobs[m.Job], start.Add(6*time.Second))
		c.mu.Unlock()
		if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
			t.Fatal(err)
		}
	}
	size := func() plan {
		t.Helper()
		c.mu.Lock()
		defer c.mu.Unlock()
		pl, _, source, err := c.sizeJobLocked(book, "etl", &wire.JobRegister{Name: "etl"})
		if err != nil || source != SizeProfile {
			t.Fatalf("sizing: %v, %q; want from its profile", err, source)
		}
		return pl
	}
	run(1500, 2e9)
	before := size()
	run(0, 0)
	if p, _ := book.profile("etl"); len(p.Runs) != 1 {
		t.Fatalf("profile after an unused run: %d runs %+v; want the one used run", len(p.Runs), p.Runs)
	}
	if after := size(); after.mbps != before.mbps || after.bytes != before.bytes {
		t.Fatalf("an unused run moved the estimate from %.0f Mb/s, %d bytes to %.0f Mb/s, %d bytes",
			before.mbps, before.bytes, after.mbps, after.bytes)
	}
	run(200, 1e8) // a small run that did something is recorded
	if p, _ := book.profile("etl"); len(p.Runs) != 2 {
		t.Fatalf("profile after a small used run: %d runs; want 2", len(p.Runs))
	}
}

// TestProfileIgnoresABurst: a job's profile peak is its own traffic
// averaged over profileSmooth heartbeats: one heartbeat's burst of 3,100
// Mb/s between beats of 100 records 1,100 (the mean of the three beats
// around it), not 3,100. Before, the peak was one heartbeat's figure.
func TestProfileIgnoresABurst(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 100e9, 8000))
	book := newProfileBook(0, 0, false)
	m, err := c.RegisterJob("bursty", wire.JobHints{PeakMbps: 1000})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for s, rx := range []float64{100, 100, 100, 3100, 100, 100, 100} {
		hb := &wire.Heartbeat{Addr: "127.0.0.1:7001", RxMbps: rx,
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 100e9, Mbps: 8000}},
			Loads: []wire.JobLoad{{Job: m.Job, RxMbps: rx}}}
		observe(t, c, book, hb, now.Add(time.Duration(s)*time.Second))
	}
	c.mu.Lock()
	book.end(c.jobs[m.Job], now.Add(7*time.Second))
	c.mu.Unlock()
	p, _ := book.profile("bursty")
	if len(p.Runs) != 1 || p.Runs[0].PeakMbps != 1100 {
		t.Fatalf("profile %+v; want a peak of 1100 Mb/s (the burst averaged over 3 heartbeats)", p)
	}
}

// observe sends hb to c and has book attribute it at the given time.
func observe(t *testing.T, c *Controller, book *profileBook, hb *wire.Heartbeat, at time.Time) {
	t.Helper()
	if _, err := c.Heartbeat(hb); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	book.observeNode(c.nodes[hb.Addr], c.loads[hb.Addr], c.nodeMbps(c.nodes[hb.Addr]), at, nil)
}

// TestProfileHoldsAJobsFigureToItsNodesRating: a node that carries more
// than the bandwidth it is rated for (loopback) does not size the next
// run of the job's name for nodes the cluster does not have: each node's
// figure counts up to its rating. On the old code a new user's 6 s load
// test on nodes rated 1,000 Mb/s recorded 12,718 Mb/s, and the next job
// of its name was sized at 13,990 Mb/s.
func TestProfileHoldsAJobsFigureToItsNodesRating(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"} {
		mustRegister(t, c, dramNode(a, 1<<30, 1000))
	}
	book := newProfileBook(0, 0, false)
	m, err := c.RegisterJob("nightly", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for s := range 6 {
		for _, mn := range m.Nodes {
			observe(t, c, book, &wire.Heartbeat{Addr: mn.Addr, RxMbps: 6359, TxMbps: 6359,
				Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 1000, UsedBytes: 1 << 20}}},
				start.Add(time.Duration(s)*time.Second))
		}
	}
	c.mu.Lock()
	book.end(c.jobs[m.Job], start.Add(6*time.Second))
	c.mu.Unlock()
	p, ok := book.profile("nightly")
	if rated := 1000 * float64(len(m.Nodes)); !ok || len(p.Runs) != 1 || p.Runs[0].PeakMbps != rated {
		t.Fatalf("profile %+v; want one run at its %d nodes' rating, %.0f Mb/s, not the %.0f they carried",
			p, len(m.Nodes), rated, 6359*float64(len(m.Nodes)))
	}
}
