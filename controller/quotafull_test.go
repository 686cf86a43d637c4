package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// entryIn is job's entry in ack, and whether ack lists it.
func entryIn(ack *wire.NodeAck, job string) (wire.JobEpoch, bool) {
	for _, e := range ack.Jobs {
		if e.Job == job {
			return e, true
		}
	}
	return wire.JobEpoch{}, false
}

// TestQuotaMarksJobsStoringPastIt: a client whose live jobs' bytes on
// their nodes, with its ended jobs' persisted values, pass its byte quota
// has every live job marked over quota in the nodes' tables (the nodes
// then refuse their puts), another client's jobs untouched; the mark is
// lifted once the client stores within its quota again (not sooner than
// quotaFlipEvery after it was set), and at once, at the bump that starts
// it, for a job whose map changes (its moves travel as puts). Before, nothing bounded what a live
// job stored: a hostile trial put 4 GiB on a 64 MiB quota.
func TestQuotaMarksJobsStoringPastIt(t *testing.T) {
	c := newTest(t, Config{MaxBytesPerClient: 600 << 20})
	node := dramNode("127.0.0.1:7001", 4<<30, 8000)
	mustRegister(t, c, node)
	reg := func(client string) *wire.PlacementMap {
		t.Helper()
		m, err := c.RegisterJobFrom(client, &wire.JobRegister{Name: "j", Hints: wire.JobHints{CapacityBytes: 100 << 20}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a1, a2, b := reg("10.0.0.1"), reg("10.0.0.1"), reg("10.0.0.2")
	var since uint64
	// beat sends a heartbeat with a1's bytes and returns its ack; one the
	// ack asks for at once (More: a heartbeat whose figures are not
	// kept) follows, so the next beat's figures are kept.
	beat := func(a1Bytes int64) *wire.NodeAck {
		t.Helper()
		hb := &wire.Heartbeat{Addr: node.Addr, Incarnation: 1,
			Loads: []wire.JobLoad{{Job: a1.Job, Bytes: a1Bytes}, {Job: a2.Job, Bytes: 50 << 20}, {Job: b.Job, Bytes: 590 << 20}}}
		hb.Since = since
		ack := c.heartbeat(hb)
		since = ack.Rev
		for more := ack.More; more; {
			hb.Since = since
			next := c.heartbeat(hb)
			since, more = next.Rev, next.More
		}
		return ack
	}
	marked := func(ack *wire.NodeAck, want map[string]bool) {
		t.Helper()
		for job, over := range want {
			e, ok := entryIn(ack, job)
			if !ok && over {
				t.Errorf("the ack does not list %s; want it marked over quota", job)
			}
			if ok && e.OverQuota != over {
				t.Errorf("%s's entry says over quota %v; want %v", job, e.OverQuota, over)
			}
		}
	}
	beat(0)
	now := time.Now()
	beat(540 << 20) // 590 MiB: within 600
	c.quotaTick(now)
	marked(beat(540<<20), map[string]bool{a1.Job: false, a2.Job: false, b.Job: false})

	beat(560 << 20) // 610 MiB
	c.quotaTick(now)
	ack := beat(560 << 20)
	marked(ack, map[string]bool{a1.Job: true, a2.Job: true, b.Job: false})
	if _, ok := entryIn(ack, b.Job); ok {
		t.Errorf("the other client's job was logged as changed: %+v", ack.Jobs)
	}
	for _, h := range c.Status().Clients { // the operator sees it
		if over := h.Client == "client 10.0.0.1"; h.OverQuota != over || over && h.StoredBytes != 610<<20 {
			t.Errorf("status of %s: stored %d, over quota %v; want 610 MiB over for 10.0.0.1 only", h.Client, h.StoredBytes, h.OverQuota)
		}
	}

	// Back within the quota: lifted, but not within quotaFlipEvery.
	beat(100 << 20)
	c.quotaTick(now.Add(quotaFlipEvery / 2))
	if ack := beat(100 << 20); len(ack.Jobs) != 0 {
		t.Errorf("the mark changed within quotaFlipEvery: %+v", ack.Jobs)
	}
	c.quotaTick(now.Add(quotaFlipEvery))
	marked(beat(100<<20), map[string]bool{a1.Job: false, a2.Job: false})

	// Past it again, then a change of a1's map: a1's mark is lifted at
	// once, a2's stays.
	beat(700 << 20)
	c.quotaTick(now.Add(2 * quotaFlipEvery))
	marked(beat(700<<20), map[string]bool{a1.Job: true, a2.Job: true})
	c.mu.Lock()
	j1 := c.jobs[a1.Job]
	c.bumpLocked(j1) // as growJobLocked: the bump, then the change recorded
	c.startMoveLocked(j1, &move{epoch: j1.epoch, addr: node.Addr, role: wire.NodeJoining, start: now, done: map[string]uint64{}})
	c.mu.Unlock()
	ack = beat(700 << 20)
	marked(ack, map[string]bool{a1.Job: false})
	if _, ok := entryIn(ack, a2.Job); ok {
		t.Errorf("a2's mark changed with a1's map: %+v", ack.Jobs)
	}
	c.quotaTick(now.Add(3 * quotaFlipEvery)) // still changing: stays lifted
	if ack := beat(700 << 20); len(ack.Jobs) != 0 {
		t.Errorf("a mark changed while a1's map changes: %+v", ack.Jobs)
	}
}

// BenchmarkQuotaTick: one sweep tick's quota sums over 20,000 live jobs of
// 20 clients on four nodes, each node's heartbeat listing its busiest
// jobs' bytes. The tick holds the controller's lock for its whole run.
func BenchmarkQuotaTick(b *testing.B) {
	c := newTest(b, Config{MaxJobs: 40000, MaxBytesPerClient: 1 << 40, RegisterRate: 1e9, RegisterBurst: 1 << 30})
	for i := range 4 {
		mustRegister(b, c, dramNode(fmt.Sprintf("127.0.0.1:%d", 7001+i), 1<<40, 1e6))
	}
	var loads []wire.JobLoad
	for i := range 20000 {
		m, err := c.RegisterJobFrom(fmt.Sprintf("10.0.0.%d", i%20), &wire.JobRegister{Name: "j", Hints: wire.JobHints{CapacityBytes: 1 << 20}})
		if err != nil {
			b.Fatal(err)
		}
		if len(loads) < wire.MaxJobLoads {
			loads = append(loads, wire.JobLoad{Job: m.Job, Bytes: 1 << 20})
		}
	}
	for i := range 4 {
		c.heartbeat(&wire.Heartbeat{Addr: fmt.Sprintf("127.0.0.1:%d", 7001+i), Incarnation: 1, Loads: loads})
	}
	b.ResetTimer()
	for range b.N {
		c.quotaTick(time.Now())
	}
}

// TestQuotaCountsWhatIsStored (hostile re-check, 2026-12-07): a client
// storing past its allotments has what it stores count at registration:
// a hinted job beyond what is left, and any job once nothing is left, is
// refused, saying what it stores. Its jobs' entries bound what each
// stores on one node by the quota; the in-process (operator's) jobs'
// do not. Before, a client storing 2 GiB on a 64 MiB quota registered
// job after job, each storing at full speed until it was marked.
func TestQuotaCountsWhatIsStored(t *testing.T) {
	c, node, reg := quotaNode(t)
	m, err := reg("10.0.0.1", 100<<20)
	if err != nil {
		t.Fatal(err)
	}
	op, err := c.RegisterJob("op", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	ack := c.heartbeat(&wire.Heartbeat{Addr: node.Addr, Incarnation: 1, Loads: []wire.JobLoad{{Job: m.Job, Bytes: 550 << 20}, {Job: op.Job, Bytes: 900 << 20}}})
	if e, ok := entryIn(ack, m.Job); !ok || e.MaxBytes != 600<<20 {
		t.Errorf("the client's job's entry %+v (listed %v); want MaxBytes 600 MiB", e, ok)
	}
	if e, ok := entryIn(ack, op.Job); !ok || e.MaxBytes != 0 {
		t.Errorf("the in-process job's entry %+v (listed %v); want no bound", e, ok)
	}
	c.quotaTick(time.Now())
	_, err = reg("10.0.0.1", 100<<20)
	wantLimit(t, err, "it stores 550MiB", "100MiB is more than the 50MiB left")
	c.heartbeat(&wire.Heartbeat{Addr: node.Addr, Incarnation: 1, Loads: []wire.JobLoad{{Job: m.Job, Bytes: 600 << 20}}})
	c.quotaTick(time.Now())
	for _, h := range []wire.JobHints{{}, {CapacityBytes: 1 << 20}} {
		_, err := c.RegisterJobFrom("10.0.0.1", &wire.JobRegister{Name: "j", Hints: h})
		wantLimit(t, err, "nothing of it is left", "delete values")
	}
	if _, err := reg("10.0.0.2", 100<<20); err != nil {
		t.Fatalf("another client: %v", err)
	}
}
