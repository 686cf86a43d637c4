package controller

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// Defence in depth behind the decoders' bounds (wire/figures.go): figures
// that reach the controller without a decoder (an in-process caller, a
// store written before the bounds) must not overflow its sums or poison
// its state. The tests here bypass the decoder on purpose.

// roundTrip encodes m and decodes it as a peer would, returning the
// decoder's error.
func roundTrip(m, into wire.ControlMessage) error {
	return into.Decode(bytes.Clone(m.Encode(newBuilder())))
}

// hugeBeats sends, straight to c (no decoder), heartbeats from each node
// of m's map reporting the largest figures Go holds for m's job: the
// largest float64 Mb/s and math.MaxInt64 bytes, as a node counting per
// job (with an incarnation).
func hugeBeats(t *testing.T, c *Controller, m *wire.PlacementMap) {
	t.Helper()
	for range 5 {
		for _, mn := range m.Nodes {
			hb := &wire.Heartbeat{Addr: mn.Addr, RxMbps: math.MaxFloat64, TxMbps: math.MaxFloat64, Incarnation: 7,
				Loads: []wire.JobLoad{{Job: m.Job, RxMbps: math.MaxFloat64, TxMbps: math.MaxFloat64, Bytes: math.MaxInt64}},
				Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: math.MaxInt64, Mbps: 8000, UsedBytes: math.MaxInt64}}}
			if _, err := c.Heartbeat(hb); err != nil {
				t.Fatalf("heartbeat: %v", err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHugeFiguresInProcessKeepStateSaved: a job on two nodes whose
// heartbeats, not decoded, carry the largest figures Go holds. While it
// runs, the status reply must be one the client decodes (its used bytes,
// a sum over the nodes converted to int64, were negative); its ended run
// must be recorded within a job's bounds and saved, the state must keep
// saving (registrations, map fetches), and the job-profile reply must
// decode. On the old code the run's +Inf made every later save fail.
func TestHugeFiguresInProcessKeepStateSaved(t *testing.T) {
	st := state.NewMemory()
	c := newTest(t, Config{Store: st, FirstJobSeq: 1})
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002"} {
		mustRegister(t, c, dramNode(a, 1<<30, 8000))
	}
	m, err := c.RegisterJob("huge", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 2 {
		t.Fatalf("job on %d nodes, want 2 (Pocket's default)", len(m.Nodes))
	}
	hugeBeats(t, c, m)
	if err := roundTrip(c.Status(), &wire.ClusterStatus{}); err != nil {
		t.Fatalf("status reply while the job runs: %v", err)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatalf("deregistering the job: %v", err)
	}
	next, err := c.RegisterJob("next", wire.JobHints{})
	if err != nil {
		t.Fatalf("registering another job: %v", err)
	}
	if _, err := c.GetMap(next.Job, next.Token); err != nil {
		t.Fatalf("its map: %v", err)
	}
	p, _, ok := c.Profile("huge")
	if !ok || len(p.Runs) != 1 {
		t.Fatalf("profile of the job: %+v %v; want its run recorded", p, ok)
	}
	checkRunBounded(t, &p.Runs[0])
	reply, err := c.JobProfile("huge")
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(reply, &wire.JobProfile{}); err != nil {
		t.Fatalf("job-profile reply: %v", err)
	}
	snap, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Profiles) != 1 || len(snap.Profiles[0].Runs) != 1 {
		t.Fatalf("stored profiles %+v, want the run saved", snap.Profiles)
	}
	checkRunBounded(t, &snap.Profiles[0].Runs[0])
}

// checkRunBounded fails unless every figure of r is within a job's bounds.
func checkRunBounded(t *testing.T, r *state.Run) {
	t.Helper()
	phases := append([]state.Phase{{PeakMbps: r.PeakMbps, PeakBytes: r.PeakBytes}}, r.Phases...)
	for i, ph := range phases {
		if !(ph.PeakMbps >= 0 && ph.PeakMbps <= wire.MaxJobMbps) || ph.PeakBytes < 0 || ph.PeakBytes > wire.MaxJobBytes {
			t.Fatalf("run figure %d out of a job's bounds: %g Mb/s, %d bytes", i, ph.PeakMbps, ph.PeakBytes)
		}
	}
	if r.PeakMbps == 0 || r.PeakBytes == 0 {
		t.Fatalf("run peaks %g Mb/s, %d bytes: the huge figures should saturate, not vanish", r.PeakMbps, r.PeakBytes)
	}
}

// TestEstimateSaturates: the estimate of runs holding the largest figures
// Go holds (a store written before the bounds) is finite and its bytes not
// negative. int64(1.1 x math.MaxInt64) was math.MinInt64 on amd64 and 1.1 x
// the largest float64 +Inf.
func TestEstimateSaturates(t *testing.T) {
	runs := []state.Run{{PeakMbps: math.MaxFloat64, PeakBytes: math.MaxInt64}, {PeakMbps: math.MaxFloat64, PeakBytes: math.MaxInt64}}
	l := estimate(runs)
	if math.IsInf(l.Mbps, 0) || math.IsNaN(l.Mbps) || l.Mbps > ProfileHeadroom*wire.MaxJobMbps {
		t.Errorf("estimate Mb/s %g, want finite, at most the headroom over a job's bound", l.Mbps)
	}
	if l.Bytes < wire.MaxJobBytes || float64(l.Bytes) > ProfileHeadroom*wire.MaxJobBytes {
		t.Errorf("estimate bytes %d, want the headroom over a job's bound %d", l.Bytes, int64(wire.MaxJobBytes))
	}
	if l := estimate([]state.Run{{PeakMbps: math.NaN(), PeakBytes: -5}}); l.Mbps != 0 || l.Bytes != 0 {
		t.Errorf("estimate of a NaN, negative run: %+v, want 0", l)
	}
}

// TestJobSumSaturates: a job's figure, summed over its nodes, saturates at
// a job's bounds: two nodes of math.MaxInt64 bytes wrapped to a negative
// sum, two of the largest float64 Mb/s to +Inf.
func TestJobSumSaturates(t *testing.T) {
	j := &job{id: "j-1", nodes: []wire.MapNode{{Addr: "a:1"}, {Addr: "b:1"}}}
	tr := &jobTrace{perNode: map[string]nodeFig{
		"a:1": {mbps: math.MaxFloat64, bytes: math.MaxInt64},
		"b:1": {mbps: math.MaxFloat64, bytes: math.MaxInt64},
		"c:1": {mbps: 1, bytes: 1}, // not in the map: forgotten
	}}
	sum := tr.jobSum(j)
	if sum.PeakMbps != wire.MaxJobMbps || sum.PeakBytes != wire.MaxJobBytes {
		t.Fatalf("sum %g Mb/s, %d bytes; want a job's bounds %g, %d", sum.PeakMbps, sum.PeakBytes,
			float64(wire.MaxJobMbps), int64(wire.MaxJobBytes))
	}
	if _, ok := tr.perNode["c:1"]; ok {
		t.Fatal("a node out of the job's map was not forgotten")
	}
	if f := nodeFigure(math.Inf(1), 2*math.MaxInt64); f.mbps != wire.MaxNodeMbps || f.bytes != wire.MaxNodeBytes {
		t.Fatalf("a node's figure %+v, want one node's bounds", f)
	}
	if f := nodeFigure(math.NaN(), math.NaN()); f.mbps != 0 || f.bytes != 0 {
		t.Fatalf("a NaN figure %+v, want 0", f)
	}
}

// TestStoredHugeProfileClamped: a store written before the bounds holds
// a profile with the largest finite figures. The restarted controller
// clamps them (and stores the clamped profile again), its job-profile
// reply decodes (its estimate bytes were negative), a job of the name
// registered without hints is sized from the clamped figures, and the
// state keeps saving.
func TestStoredHugeProfileClamped(t *testing.T) {
	st := state.NewMemory()
	huge := state.Profile{Name: "old", Updated: time.Now().UTC(), Runs: []state.Run{{Job: "old-1", Ended: time.Now().UTC(),
		PeakMbps: math.MaxFloat64, PeakBytes: math.MaxInt64, Phases: []state.Phase{{PeakMbps: 1e300, PeakBytes: math.MaxInt64}}}}}
	// The store refuses it now (state.Profile.check); an older
	// controller wrote it, so it comes from the store's Load.
	if err := st.Apply(&state.Batch{PutProfiles: []state.Profile{huge}}); err == nil {
		t.Fatal("the store accepted a profile over a job's bounds")
	}
	c := newTest(t, Config{Store: &preloaded{Memory: st, profs: []state.Profile{huge}}, FirstJobSeq: 1})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	p, _, ok := c.Profile("old")
	if !ok {
		t.Fatal("the stored profile was not loaded")
	}
	checkRunBounded(t, &p.Runs[0])
	reply, err := c.JobProfile("old")
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(reply, &wire.JobProfile{}); err != nil {
		t.Fatalf("job-profile reply: %v", err)
	}
	// Sized from the profile, the name's next job needs 1.1 x 2^62 bytes
	// (it was 0 from an estimate wrapped negative). No tier holds that, so
	// the job registers reserving none (fitProfile), and leaves room for
	// the next.
	if reply.Next.Bytes != 5072854620270127104 {
		t.Fatalf("the clamped profile's next size: %d bytes; want 1.1 x 2^62", reply.Next.Bytes)
	}
	old, err := c.RegisterJob("old", wire.JobHints{})
	if err != nil {
		t.Fatalf("registering a job sized from the clamped profile: %v", err)
	}
	c.mu.Lock()
	bytes := c.jobs[old.Job].allocBytes
	c.mu.Unlock()
	if bytes != 0 {
		t.Fatalf("the job sized from the clamped profile reserves %d bytes; want none", bytes)
	}
	m, err := c.RegisterJob("other", wire.JobHints{CapacityBytes: 1 << 20})
	if err != nil {
		t.Fatalf("registering another job: %v", err)
	}
	if _, err := c.GetMap(m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Profiles) != 1 {
		t.Fatalf("stored profiles %+v, want the clamped one stored again", snap.Profiles)
	}
	checkRunBounded(t, &snap.Profiles[0].Runs[0])
}

// preloaded is a Memory store whose Load also returns profs, as a store
// an older controller wrote would.
type preloaded struct {
	*state.Memory
	profs []state.Profile
}

func (s *preloaded) Load() (*state.Snapshot, error) {
	snap, err := s.Memory.Load()
	if err != nil {
		return nil, err
	}
	snap.Profiles = append(snap.Profiles, s.profs...)
	return snap, nil
}

// TestInfiniteHintKeepsStateSaved: an in-process caller's hints bypass
// the decoder (wire.JobHints.Check): a job registered with a +Inf peak
// Mb/s hint was allotted +Inf, its record could not be encoded, and every
// later write of the state failed. Its record is saved with finite
// figures, and the cluster keeps registering.
func TestInfiniteHintKeepsStateSaved(t *testing.T) {
	st := state.NewMemory()
	c := newTest(t, Config{Store: st, FirstJobSeq: 1})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	// An in-process caller skips the decoder: the controller checks the
	// hints itself (wire.JobHints.Check).
	if _, err := c.RegisterJob("inf", wire.JobHints{PeakMbps: math.Inf(1)}); err == nil {
		t.Fatal("a +Inf peak hint was taken")
	}
	m, err := c.RegisterJob("next", wire.JobHints{})
	if err != nil {
		t.Fatalf("registering after a +Inf hint: %v", err)
	}
	if _, err := c.GetMap(m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Jobs) != 1 {
		t.Fatalf("stored %d jobs, want the one with finite hints", len(snap.Jobs))
	}
	for _, j := range snap.Jobs {
		if math.IsInf(j.AllocMbps, 0) || math.IsNaN(j.AllocMbps) || math.IsInf(j.PeakMbps, 0) {
			t.Fatalf("stored job %s with figures not finite: %+v", j.ID, j)
		}
	}
}

// TestInfiniteTierKeepsStateSaved: a node registered in process (no
// decoder) with a +Inf tier Mb/s made the node registry's record one the
// state cannot encode; it is saved finite.
func TestInfiniteTierKeepsStateSaved(t *testing.T) {
	st := state.NewMemory()
	c := newTest(t, Config{Store: st, FirstJobSeq: 1})
	if _, err := c.RegisterNode(dramNode("127.0.0.1:7001", 1<<30, math.Inf(1))); err != nil {
		t.Fatalf("registering a node with a +Inf tier: %v", err)
	}
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 8000))
	snap, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != 2 {
		t.Fatalf("stored %d nodes, want 2", len(snap.Nodes))
	}
}
