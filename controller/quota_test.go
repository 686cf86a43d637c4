package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestClientQuota (hostile trial, 2026-12-02): what one client's live
// jobs are allotted together is bounded (MaxBytesPerClient,
// MaxMbpsPerClient). Before, one client's capacity hints held the node's
// whole capacity and another client's 400 MiB registration was refused
// "no space". A hinted registration past the quota is refused, naming the
// limit; a hintless one is allotted what is left; a deregistration gives
// its allotment back.
func TestClientQuota(t *testing.T) {
	c := newTest(t, Config{MaxBytesPerClient: 600 << 20, MaxMbpsPerClient: 2000})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	reg := func(client string, h wire.JobHints) (*wire.PlacementMap, error) {
		return c.RegisterJobFrom(client, &wire.JobRegister{Name: "j", Hints: h})
	}
	first, err := reg("10.0.0.1", wire.JobHints{CapacityBytes: 500 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if want := (wire.QuotaLeft{Bytes: 600 << 20, LeftBytes: 100 << 20, Mbps: 2000, LeftMbps: 1400}); first.Quota != want {
		t.Errorf("the registration's reply says the quota %+v; want %+v", first.Quota, want)
	}
	_, err = reg("10.0.0.1", wire.JobHints{CapacityBytes: 400 << 20})
	wantLimit(t, err, "client 10.0.0.1 holds 1 job allotted 500MiB", "MaxBytesPerClient 600MiB", "400MiB is more than the 100MiB left")
	if r := refusalReason(err); r != "MaxBytesPerClient" {
		t.Errorf("refusal counted as %q; want MaxBytesPerClient", r)
	}
	if _, err := reg("10.0.0.2", wire.JobHints{CapacityBytes: 400 << 20}); err != nil {
		t.Fatalf("another client's 400 MiB beside the first's 500 MiB on a 1 GiB node: %v", err)
	}

	if _, err := reg("10.0.0.3", wire.JobHints{PeakMbps: 800}); err != nil {
		t.Fatal(err)
	}
	_, err = reg("10.0.0.3", wire.JobHints{PeakMbps: 1300})
	wantLimit(t, err, "MaxMbpsPerClient 2000", "its hints' need of 1300 Mb/s is more than the 1200 Mb/s left")
	// A job Pocket's default sizes is allotted one lambda's 600 Mb/s
	// under a quota, not the default's 16 Gb/s: taking what was left, a
	// first hintless job took the whole quota (a new user's trial).
	for range 2 {
		m, err := reg("10.0.0.3", wire.JobHints{})
		if err != nil {
			t.Fatalf("a hintless job with 600 Mb/s or more of the quota left: %v", err)
		}
		if m.AllocMbps != 600 {
			t.Errorf("a hintless job allotted %g Mb/s under a quota; want one lambda's 600", m.AllocMbps)
		}
	}
	_, err = reg("10.0.0.3", wire.JobHints{})
	wantLimit(t, err, "client 10.0.0.3 holds 3 jobs allotted 0B and 2000 Mb/s",
		"a job counts at least one lambda's 600 Mb/s under the quota, hinted or not, and 0 Mb/s is left; deregister some of its jobs")
	// A capacity hint alone counts one lambda's too: allotted no
	// bandwidth, it let a client past its Mb/s quota (two trials).
	_, err = reg("10.0.0.3", wire.JobHints{CapacityBytes: 1})
	wantLimit(t, err, "a job counts at least one lambda's 600 Mb/s under the quota, hinted or not, and 0 Mb/s is left")
	// So does a bandwidth hint below one lambda's: 30 jobs hinting
	// 0.000001 Mb/s took 0.00003 Mb/s of a quota (a hostile trial).
	if m, err := reg("10.0.0.7", wire.JobHints{PeakMbps: 0.000001}); err != nil || m.AllocMbps != 600 {
		t.Fatalf("a job hinting 0.000001 Mb/s under a quota: %+v, %v; want allotted one lambda's 600", m, err)
	}
	for range 2 {
		if _, err := reg("10.0.0.7", wire.JobHints{PeakMbps: 100}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = reg("10.0.0.7", wire.JobHints{PeakMbps: 1e-300})
	wantLimit(t, err, "client 10.0.0.7 holds 3 jobs allotted 0B and 1800 Mb/s",
		"its hint of 1e-300 Mb/s counts one lambda's 600 Mb/s under the quota, and 200 Mb/s is left")
	_, err = reg("10.0.0.5", wire.JobHints{CapacityBytes: 700 << 20})
	wantLimit(t, err, "client 10.0.0.5 holds 0 jobs allotted 0B and 0 Mb/s (MaxBytesPerClient 600MiB): its capacity hint of 700MiB is more than the 600MiB left; hint less")
	if strings.Contains(err.Error(), "deregister") {
		t.Errorf("a client holding no job told to deregister some: %v", err)
	}
	_, err = reg("10.0.0.4", wire.JobHints{PeakMbps: 2000.4})
	wantLimit(t, err, "2000.4 Mb/s is more than the 2000 Mb/s left")
	if _, err := reg("10.0.0.6", wire.JobHints{PeakMbps: 1400.0000001}); err != nil {
		t.Fatal(err)
	}
	_, err = reg("10.0.0.6", wire.JobHints{PeakMbps: 600})
	wantLimit(t, err, "need of 600 Mb/s is more than the 599.9999999 Mb/s left") // 6 digits read "600 ... 600"
	_, err = reg("10.0.0.6", wire.JobHints{})
	wantLimit(t, err, "a job counts at least one lambda's 600 Mb/s under the quota, hinted or not, and 599.9999999 Mb/s is left; deregister some of its jobs")
	if _, err := reg("10.0.0.6", wire.JobHints{PeakMbps: 599.9999999}); err == nil {
		t.Fatal("a hint of what is left, below a lambda's, was taken") // what the refusal used to advise
	}

	if _, err := c.DeregisterJob(context.Background(), first.Job, first.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := reg("10.0.0.1", wire.JobHints{CapacityBytes: 600 << 20}); err != nil {
		t.Errorf("after its 500 MiB job ended, the client's 600 MiB: %v", err)
	}
	if _, err := c.RegisterJob("inproc", wire.JobHints{PeakMbps: 5000}); err != nil {
		t.Errorf("in-process registrations have no quota: %v", err)
	}
	st := c.Status()
	if st.QuotaBytes != 600<<20 || st.QuotaMbps != 2000 || len(st.Clients) != 5 ||
		st.Clients[0] != (wire.ClientHold{Client: "client 10.0.0.1", Jobs: 1, AllocBytes: 600 << 20, AllocMbps: 600}) ||
		st.Clients[1] != (wire.ClientHold{Client: "client 10.0.0.2", Jobs: 1, AllocBytes: 400 << 20, AllocMbps: 600}) ||
		st.Clients[2] != (wire.ClientHold{Client: "client 10.0.0.3", Jobs: 3, AllocMbps: 2000}) {
		t.Errorf("status quota %d, %g, clients %+v; want each client's allotments, the most first", st.QuotaBytes, st.QuotaMbps, st.Clients)
	}
}

func wantLimit(t *testing.T, err error, names ...string) {
	t.Helper()
	if wire.CodeOf(err) != wire.CodeLimit {
		t.Fatalf("%v; want CodeLimit", err)
	}
	for _, s := range names {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// TestQuotaRefusalStartsNoNode: on an autoscaling cluster a bandwidth
// hint past the client's quota is refused before any node starts; before
// the quota, one client's hint took the cluster to MaxNodes.
func TestQuotaRefusalStartsNoNode(t *testing.T) {
	r := newScaleRigWith(t, 1, AutoscaleConfig{}, func(c *Controller) { c.cfg.MaxMbpsPerClient = 1500 })
	_, err := r.c.RegisterJobFrom("10.0.0.9", &wire.JobRegister{Name: "big", Hints: wire.JobHints{PeakMbps: 6000}})
	wantLimit(t, err, "MaxMbpsPerClient 1500", "6000 Mb/s")
	if n := r.active(); n != 1 || len(r.orch.Nodes()) != 1 || len(r.a.Decisions()) != 0 {
		t.Errorf("a registration past the quota: %d active nodes, %d started, decisions %+v; want 1, 1, none",
			n, len(r.orch.Nodes()), r.a.Decisions())
	}
	if _, err := r.c.RegisterJobFrom("10.0.0.9", &wire.JobRegister{Name: "ok", Hints: wire.JobHints{PeakMbps: 1500}}); err != nil {
		t.Fatalf("a hint at the quota: %v", err)
	}
	if r.active() != 2 {
		t.Errorf("%d active nodes for 1500 Mb/s on 1000 Mb/s nodes; want 2", r.active())
	}
}

// TestQuotaIsTheTenants: over TLS a client is its tenant, not its
// address. alice and mallory connect from one address: mallory holding
// her whole quota leaves alice's; the tenant's holdings survive a
// controller restart (its jobs' records).
func TestQuotaIsTheTenants(t *testing.T) {
	r := newTenantRig(t)
	r.tune = func(cfg *Config) { cfg.MaxBytesPerClient = 300 << 20 }
	r.c.Close()
	r.start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fill, err := r.client("mallory").RegisterJob(ctx, "fill", wire.JobHints{CapacityBytes: 300 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if want := (wire.QuotaLeft{Bytes: 300 << 20}); fill.Quota != want {
		t.Errorf("mallory's registration reply says the quota %+v; want %+v", fill.Quota, want)
	}
	_, err = r.client("mallory").RegisterJob(ctx, "more", wire.JobHints{CapacityBytes: 1 << 20})
	wantLimit(t, err, "tenant mallory holds 1 job allotted 300MiB")
	if _, err := r.client("alice").RegisterJob(ctx, "own", wire.JobHints{CapacityBytes: 300 << 20}); err != nil {
		t.Fatalf("alice, from mallory's address: %v; want her own quota", err)
	}
	// The operator sets the quotas and registers the cluster's jobs: none
	// applies to its registrations (a new user's trial found it refused).
	if m, err := r.client("operator").RegisterJob(ctx, "cluster", wire.JobHints{CapacityBytes: 400 << 20}); err != nil {
		t.Fatalf("the operator's job past a client's quota: %v", err)
	} else if m.Quota != (wire.QuotaLeft{}) {
		t.Errorf("the operator's registration reply says a quota: %+v", m.Quota)
	}
	if st := r.c.Status(); len(st.Clients) != 3 || st.Clients[0].Client != "operator 127.0.0.1" || st.Clients[1].Client != "tenant alice" {
		t.Errorf("status clients %+v; want the operator's (named so), then alice's and mallory's", st.Clients)
	}
	r.c.Close()
	r.start()
	_, err = r.client("mallory").RegisterJob(ctx, "more", wire.JobHints{CapacityBytes: 1 << 20})
	wantLimit(t, err, "tenant mallory holds 1 job allotted 300MiB")
}

// TestQuotaHeldWhileNodesStart (hostile trial of the quota): a need the
// autoscaler reserved nodes for is held against the client's quota until
// its job is entered or refused. Before, two registrations at once each
// passed the quota, nodes started for both, and one was then refused.
func TestQuotaHeldWhileNodesStart(t *testing.T) {
	r := newScaleRigWith(t, 1, AutoscaleConfig{}, func(c *Controller) { c.cfg.MaxMbpsPerClient = 2000 })
	h := wire.JobHints{PeakMbps: 2000}
	first, err := r.c.reservation("pq1", "10.0.0.9", "pq1", h, &r.a.cfg)
	if err != nil || first.pend == nil || first.want == 0 {
		t.Fatalf("first reservation: %+v, %v; want nodes wanted and the need held", first, err)
	}
	_, err = r.c.reservation("pq2", "10.0.0.9", "pq2", h, &r.a.cfg)
	wantLimit(t, err, "1 job registering hold 0B and 2000 Mb/s", "MaxMbpsPerClient 2000")
	r.c.unpend(first.pend)
	r.c.unpend(first.pend) // once only
	second, err := r.c.reservation("pq2", "10.0.0.9", "pq2", h, &r.a.cfg)
	if err != nil {
		t.Fatalf("after the first let go: %v", err)
	}
	r.c.unpend(second.pend)

	// Four registrations of the whole quota at once, the nodes started
	// for the first held until the others are answered.
	open := r.holdStarts()
	type result struct {
		m   *wire.PlacementMap
		err error
	}
	results := make(chan result, 4)
	for range 4 {
		go func() {
			m, err := r.c.RegisterJobFrom("10.0.0.9", &wire.JobRegister{Name: "pq", Hints: h})
			results <- result{m, err}
		}()
	}
	var accepted []*wire.PlacementMap
	collect := func(res result) {
		if res.err == nil {
			accepted = append(accepted, res.m)
		} else if wire.CodeOf(res.err) != wire.CodeLimit {
			t.Errorf("concurrent registration: %v; want CodeLimit or success", res.err)
		}
	}
	for range 3 {
		collect(<-results)
	}
	open()
	collect(<-results)
	adds := 0
	for _, d := range r.a.Decisions() {
		adds += d.Count
	}
	if len(accepted) != 1 || adds != 2 || len(accepted[0].Nodes) < 2 {
		t.Errorf("4 registrations of the whole quota at once: %d accepted, %d nodes added; want 1 accepted, over the 2 nodes added for it", len(accepted), adds)
		for _, m := range accepted {
			t.Errorf("accepted %s on %d node(s)", m.Job, len(m.Nodes))
		}
	}
	r.c.mu.Lock()
	cl := *r.c.clients["10.0.0.9"]
	r.c.mu.Unlock()
	if cl.pends != 0 || cl.pend != (Need{}) || cl.mbps != 2000 {
		t.Errorf("after the registrations the client holds %+v; want 2000 Mb/s allotted, nothing pending", cl)
	}
}

// quotaNode is a controller with a 600 MiB quota per client and one node
// of 4 GiB of DRAM, and a registration of a job of capacity bytes from
// client.
func quotaNode(t *testing.T) (*Controller, *wire.NodeRegister, func(client string, bytes int64) (*wire.PlacementMap, error)) {
	t.Helper()
	c := newTest(t, Config{MaxBytesPerClient: 600 << 20})
	node := dramNode("127.0.0.1:7001", 4<<30, 8000)
	mustRegister(t, c, node)
	return c, node, func(client string, bytes int64) (*wire.PlacementMap, error) {
		return c.RegisterJobFrom(client, &wire.JobRegister{Name: "j", Hints: wire.JobHints{CapacityBytes: bytes}})
	}
}

// TestQuotaCountsPersistedValues (hostile trial, 2026-12-07): the values
// a client's ended jobs keep with persist-after-job count against its
// byte quota until they are deleted. Before, a deregistration gave the
// whole allotment back: a client with a 64 MiB quota stored 4 GiB so, job
// after job, and another client's registration was refused for space.
// Until a node applies the job's end, the job's bytes in its last per-job
// figures count; then the bytes its persisted list names.
func TestQuotaCountsPersistedValues(t *testing.T) {
	c, node, reg := quotaNode(t)
	m, err := reg("10.0.0.1", 500<<20)
	if err != nil {
		t.Fatal(err)
	}
	c.heartbeat(&wire.Heartbeat{Addr: node.Addr, Incarnation: 1, Loads: []wire.JobLoad{{Job: m.Job, Bytes: 300 << 20}}})
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	// The node has not applied the end: its last figures count.
	_, err = reg("10.0.0.1", 400<<20)
	wantLimit(t, err, "its ended jobs' persisted values hold 300MiB", "400MiB is more than the 300MiB left",
		"delete persisted values of its ended jobs")
	c.mu.Lock()
	rev := c.ended.ids[m.Job].rev
	c.mu.Unlock()
	// Applied, and 450 MiB of it persisted.
	c.heartbeat(&wire.Heartbeat{Addr: node.Addr, Incarnation: 1, Since: rev,
		Persisted: []wire.HeldJob{{Job: m.Job, Bytes: 450 << 20}}, PersistedJobs: 1, PersistedBytes: 450 << 20})
	_, err = reg("10.0.0.1", 200<<20)
	wantLimit(t, err, "its ended jobs' persisted values hold 450MiB", "200MiB is more than the 150MiB left")
	if cs := c.Status().Clients; len(cs) != 1 || cs[0] != (wire.ClientHold{Client: "client 10.0.0.1", PersistedBytes: 450 << 20, StoredBytes: 450 << 20}) {
		t.Errorf("status clients %+v; want client 10.0.0.1 with no live job and its 450 MiB persisted", cs)
	}
	if _, err := reg("10.0.0.2", 600<<20); err != nil {
		t.Fatalf("another client's whole quota beside the first's persisted values: %v", err)
	}
	small, err := reg("10.0.0.1", 100<<20)
	if err != nil {
		t.Fatalf("100 MiB within the 150 MiB left: %v", err)
	}
	if small.Quota.LeftBytes != 50<<20 {
		t.Errorf("the reply says %d bytes left; want 50 MiB (600 - 450 persisted - 100)", small.Quota.LeftBytes)
	}
	// Deleted: the quota is whole again.
	c.heartbeat(&wire.Heartbeat{Addr: node.Addr, Incarnation: 1, Since: rev})
	if _, err := reg("10.0.0.1", 500<<20); err != nil {
		t.Fatalf("after the persisted values were deleted, 500 MiB beside a 100 MiB job: %v", err)
	}
}

// TestQuotaCountsJobsTheListLeavesOut (read-through, 2026-12-08): a
// node's persisted list names the largest wire.MaxPersistedJobs ended
// jobs only. A job it leaves out counts at the smallest it names, and one
// client's such jobs on the node at most at what the list leaves out.
// Before, they counted nothing: a client ending jobs by the hundred, each
// persisting less than the others, went past its quota uncounted.
func TestQuotaCountsJobsTheListLeavesOut(t *testing.T) {
	c, node, reg := quotaNode(t)
	const many = wire.MaxPersistedJobs + 6
	var held []wire.HeldJob
	var rev uint64
	for range many {
		m, err := reg("10.0.0.1", 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
			t.Fatal(err)
		}
		held = append(held, wire.HeldJob{Job: m.Job, Bytes: 5 << 20})
		c.mu.Lock()
		rev = c.ended.ids[m.Job].rev
		c.mu.Unlock()
	}
	other, err := reg("10.0.0.2", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeregisterJob(t.Context(), other.Job, other.Token); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	rev = max(rev, c.ended.ids[other.Job].rev)
	c.mu.Unlock()
	// The other client's 100 MiB and 63 of the first client's 70 jobs
	// are named; 7 of 5 MiB are left out.
	list := append([]wire.HeldJob{{Job: other.Job, Bytes: 100 << 20}}, held[:wire.MaxPersistedJobs-1]...)
	beat := func(leftOut int64) {
		c.heartbeat(&wire.Heartbeat{Addr: node.Addr, Incarnation: 1, Since: rev, Persisted: list,
			PersistedJobs: many + 1, PersistedBytes: 100<<20 + int64(wire.MaxPersistedJobs-1)*5<<20 + leftOut})
	}
	beat(7 * 5 << 20)
	const named = (wire.MaxPersistedJobs - 1) * 5 << 20
	_, err = reg("10.0.0.1", 600<<20-named-7*5<<20+1)
	wantLimit(t, err, fmt.Sprintf("its ended jobs' persisted values hold %s", sizeText(named+7*5<<20)))
	// The first client deleted most of what was left out: at most the
	// rest counts.
	beat(3 << 20)
	if _, err := reg("10.0.0.1", 600<<20-named-3<<20); err != nil {
		t.Fatalf("a registration of what is left beside the named and the 3 MiB left out: %v", err)
	}
}
