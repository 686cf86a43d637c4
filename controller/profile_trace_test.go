package controller

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/leader"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/etcdtest"
	"github.com/pocketstore/pocket/wire"
)

// TestRunSpanningAFailoverKeepsItsPeak: the restart test's run, across an
// etcd failover instead: controller A (elected) sees the job "etl" at
// 6000 Mb/s and 20e9 bytes for five heartbeats and resigns; controller B,
// elected next on the same etcd state, sees it idle at 100 Mb/s and 1e9
// bytes for five more and records its run at deregistration. The run's
// peak is what A saw: the trace is stored with the job's record. (Before
// traces were stored: peak 100 Mb/s, 1e9 bytes.)
func TestRunSpanningAFailoverKeepsItsPeak(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	cli := srv.Client(t)
	elect := func(addr string) (*leader.Candidate, *leader.Term) {
		cand, err := leader.New(leader.Config{Client: cli, Addr: addr, Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		term, err := cand.Campaign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return cand, term
	}
	open := func(term *leader.Term) state.Store {
		s, err := state.OpenEtcd(cli, state.EtcdOptions{Fence: term})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const addr = "127.0.0.1:7001"
	candA, termA := elect("127.0.0.1:7100")
	stA := open(termA)
	a := newTest(t, Config{FirstJobSeq: 1, Store: stA})
	mustRegister(t, a, dramNode(addr, 60e9, 8000))
	m, err := a.RegisterJob("etl", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		loadBeat(t, a, addr, 6000, 20e9, []wire.JobLoad{{Job: m.Job, RxMbps: 6000, Bytes: 20e9}})
		time.Sleep(10 * time.Millisecond)
	}
	a.Close()
	stA.Close()
	candA.Close() // resigns: B wins the next election

	candB, termB := elect("127.0.0.1:7200")
	defer candB.Close()
	b := newTest(t, Config{Store: open(termB)})
	mustRegister(t, b, dramNode(addr, 60e9, 8000))
	for range 5 {
		loadBeat(t, b, addr, 100, 1e9, []wire.JobLoad{{Job: m.Job, RxMbps: 100, Bytes: 1e9}})
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := b.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	p, _, ok := b.Profile("etl")
	if !ok || len(p.Runs) != 1 {
		t.Fatalf("profile of etl after the failover: %+v, %v; want one run", p, ok)
	}
	if run := p.Runs[0]; run.PeakMbps != 6000 || run.PeakBytes != 20e9 {
		t.Errorf("the run recorded peak %.0f Mb/s, %d bytes; want 6000 Mb/s, 20e9 bytes (what the controller before the failover saw)",
			run.PeakMbps, run.PeakBytes)
	}
}

// TestRunSpanningARestartWithoutHeartbeatsAfter: a job seen for five
// heartbeats at 6000 Mb/s and 20e9 bytes, then deregistered on the
// restarted controller before any node heartbeats there, is recorded with
// that peak: the stored trace says the run had its samples. (Before
// traces were stored the run was not recorded at all, and its name had
// no profile.)
func TestRunSpanningARestartWithoutHeartbeatsAfter(t *testing.T) {
	st := state.NewMemory()
	c := newTest(t, Config{FirstJobSeq: 1, Store: st})
	const addr = "127.0.0.1:7001"
	mustRegister(t, c, dramNode(addr, 60e9, 8000))
	m, err := c.RegisterJob("etl", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		loadBeat(t, c, addr, 6000, 20e9, []wire.JobLoad{{Job: m.Job, RxMbps: 6000, Bytes: 20e9}})
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()
	r := newTest(t, Config{Store: st})
	if _, err := r.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	p, _, ok := r.Profile("etl")
	if !ok || len(p.Runs) != 1 {
		t.Fatalf("profile of etl: %+v, %v; want one run (5 heartbeats counted before the restart)", p, ok)
	}
	if run := p.Runs[0]; run.PeakMbps != 6000 || run.PeakBytes != 20e9 {
		t.Errorf("the run recorded peak %.0f Mb/s, %d bytes; want 6000 Mb/s, 20e9 bytes", run.PeakMbps, run.PeakBytes)
	}
}

// countingStore counts the job records each Apply puts, by job id.
type countingStore struct {
	state.Store
	mu   sync.Mutex
	puts map[string]int
}

func (s *countingStore) Apply(b *state.Batch) error {
	s.mu.Lock()
	for _, j := range b.PutJobs {
		s.puts[j.ID]++
	}
	s.mu.Unlock()
	return s.Store.Apply(b)
}

func (s *countingStore) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts[id]
}

// TestTraceSavesAreFewerThanHeartbeats: a running job's trace is stored
// when it changes meaningfully, not at every heartbeat. Forty heartbeats
// of a job at a steady 6000 Mb/s within about half a second write its
// record at most a few times (its first figures, and the run becoming
// recordable a second later at most), and the record written holds its
// peak.
func TestTraceSavesAreFewerThanHeartbeats(t *testing.T) {
	st := &countingStore{Store: state.NewMemory(), puts: map[string]int{}}
	c := newTest(t, Config{FirstJobSeq: 1, Store: st})
	const addr = "127.0.0.1:7001"
	mustRegister(t, c, dramNode(addr, 60e9, 8000))
	m, err := c.RegisterJob("etl", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	before := st.count(m.Job)
	const beats = 40
	for range beats {
		loadBeat(t, c, addr, 6000, 20e9, []wire.JobLoad{{Job: m.Job, RxMbps: 6000, Bytes: 20e9}})
		time.Sleep(10 * time.Millisecond)
	}
	writes := st.count(m.Job) - before
	t.Logf("%d heartbeats wrote the job's record %d times", beats, writes)
	if writes > 3 {
		t.Errorf("%d heartbeats of a steady job wrote its record %d times; want at most 3", beats, writes)
	}
	snap, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range snap.Jobs {
		if j.ID == m.Job && (j.Trace == nil || j.Trace.Peak.PeakMbps != 6000 || j.Trace.Peak.PeakBytes != 20e9) {
			t.Errorf("the stored trace of %s is %+v; want its peak of 6000 Mb/s, 20e9 bytes", m.Job, j.Trace)
		}
	}
}

// TestTraceSaveSchedule: saveDue over simulated heartbeats, one a second
// for ten minutes. A steady job is saved once per traceSaveEvery (about
// 60 times, not 600); one whose peak doubles each heartbeat at most once
// per traceSaveGap; an idle one (figures 0) once, when its run becomes
// recordable; and a rise of a peak by
// more than traceSaveRise after a quiet stretch is saved at once.
func TestTraceSaveSchedule(t *testing.T) {
	j := &job{id: "etl-1", nodes: []wire.MapNode{{Addr: "n", Weight: 1}}}
	t0 := time.Now()
	run := func(fig func(i int) nodeFig, every time.Duration, n int) (saves int, tr *jobTrace) {
		tr = &jobTrace{start: t0, perNode: map[string]nodeFig{}, width: time.Second}
		for i := range n {
			now := t0.Add(time.Duration(i) * every)
			tr.add(j, "n", fig(i), now)
			if tr.saveDue(now) {
				saves++
			}
		}
		return saves, tr
	}
	steady, _ := run(func(int) nodeFig { return nodeFig{mbps: 6000, bytes: 20e9} }, time.Second, 600)
	if steady < 55 || steady > 62 {
		t.Errorf("a steady job over 600 heartbeats was saved %d times; want about 60 (once per %v)", steady, traceSaveEvery)
	}
	ramp, _ := run(func(i int) nodeFig { return nodeFig{mbps: float64(int64(1) << min(i, 40))} }, 100*time.Millisecond, 100)
	if ramp > 11 {
		t.Errorf("a job whose peak doubles every 100 ms was saved %d times in 10 s; want at most 11 (once per %v)", ramp, traceSaveGap)
	}
	idle, _ := run(func(int) nodeFig { return nodeFig{} }, time.Second, 600)
	if idle != 1 {
		t.Errorf("an idle job was saved %d times; want once (when its run became recordable)", idle)
	}
	// Steady for 5 s (saved at its first figure and when recordable),
	// then a jump: saved at once. And a run becoming recordable within
	// traceSaveGap of the last save is saved at once too.
	tr := &jobTrace{start: t0, perNode: map[string]nodeFig{}, width: time.Second}
	var at []int
	for i := range 8 {
		f := nodeFig{mbps: 1000}
		if i >= 5 {
			f.mbps = 2000
		}
		now := t0.Add(time.Duration(i) * time.Second)
		tr.add(j, "n", f, now)
		if tr.saveDue(now) {
			at = append(at, i)
		}
	}
	if fmt.Sprint(at) != "[0 1 5]" {
		t.Errorf("a job at 1000 Mb/s rising to 2000 at its 6th heartbeat was saved at heartbeats %v; want [0 1 5]", at)
	}
	fast := &jobTrace{start: t0, perNode: map[string]nodeFig{}, width: time.Second}
	fast.add(j, "n", nodeFig{mbps: 1000}, t0)
	first := fast.saveDue(t0)
	fast.add(j, "n", nodeFig{mbps: 1000}, t0.Add(time.Millisecond))
	if !first || !fast.saveDue(t0.Add(time.Millisecond)) || fast.savedSamples != ProfileMinSamples {
		t.Errorf("a run recordable 1 ms after its first save was not saved at once (first saved: %v; saved samples %d)", first, fast.savedSamples)
	}
}

// TestRestoreTrace: a stored trace enters the restored job's run (peak,
// buckets, samples), clamped into bounds; a record without one (written
// before traces were stored) starts the trace afresh.
func TestRestoreTrace(t *testing.T) {
	st := state.NewMemory()
	c := newTest(t, Config{FirstJobSeq: 1, Store: st})
	const addr = "127.0.0.1:7001"
	mustRegister(t, c, dramNode(addr, 60e9, 8000))
	m1, err := c.RegisterJob("old", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := c.RegisterJob("traced", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	snap, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	b := &state.Batch{}
	for _, j := range snap.Jobs {
		if j.ID == m2.Job {
			j.Trace = &state.Trace{Start: j.Created, Width: -time.Second, Samples: 3,
				Peak: state.Phase{PeakMbps: 2 * wire.MaxJobMbps, PeakBytes: 5e9}, Buckets: make([]state.Phase, 100)}
			j.Trace.Buckets[10] = state.Phase{PeakMbps: 700}
		}
		if j.Trace != nil && j.ID == m1.Job {
			t.Fatalf("a job never heard of has a trace: %+v", j.Trace)
		}
		b.PutJobs = append(b.PutJobs, j)
	}
	if err := st.Apply(b); err != nil {
		t.Fatal(err)
	}
	r := newTest(t, Config{Store: st})
	r.mu.Lock()
	defer r.mu.Unlock()
	if tr := r.prof.traces[m1.Job]; tr != nil {
		t.Errorf("the job stored without a trace has one after the restart: %+v", tr)
	}
	tr := r.prof.traces[m2.Job]
	switch {
	case tr == nil:
		t.Fatal("the stored trace was not restored")
	case tr.peak.PeakMbps != wire.MaxJobMbps || tr.peak.PeakBytes != 5e9:
		t.Errorf("restored peak %+v; want %v Mb/s (clamped), 5e9 bytes", tr.peak, float64(wire.MaxJobMbps))
	case tr.samples != 3 || tr.width != time.Second || len(tr.buckets) > profileBuckets || tr.buckets[10].PeakMbps != 700:
		t.Errorf("restored samples %d, width %v, %d buckets (bucket 10: %+v); want 3, 1s, at most %d, 700 Mb/s",
			tr.samples, tr.width, len(tr.buckets), tr.buckets[min(10, len(tr.buckets)-1)], profileBuckets)
	}
}
