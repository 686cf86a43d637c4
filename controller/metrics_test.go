package controller

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
)

// scrape reads the controller's /metrics through its HTTP handler.
func scrape(t *testing.T, c *Controller) metrics.Families {
	t.Helper()
	srv := httptest.NewServer(c.MetricsHandler())
	defer srv.Close()
	fams, err := metrics.Scrape(srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func wantValue(t *testing.T, fams metrics.Families, want float64, name string, labels ...string) {
	t.Helper()
	v, ok := fams.Value(name, labels...)
	if !ok || v != want {
		t.Errorf("%s%v = %v (found %v), want %v", name, labels, v, ok, want)
	}
}

func TestHistoryAndMetrics(t *testing.T) {
	c := newTest(t, Config{})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 1000))
	_, err := c.RegisterJob("j", wire.JobHints{PeakMbps: 300, CapacityBytes: 1 << 28})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < HistoryLen+5; i++ {
		_, err := c.Heartbeat(&wire.Heartbeat{Addr: a, RxMbps: float64(i), TxMbps: 400, CPUPercent: 50,
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, UsedBytes: 1 << 29, Mbps: 1000}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	h := c.History(a)
	if len(h) != HistoryLen || h[len(h)-1].RxMbps != HistoryLen+4 || h[0].RxMbps != 5 {
		t.Fatalf("history: %d samples, first rx %v, last rx %v", len(h), h[0].RxMbps, h[len(h)-1].RxMbps)
	}
	s := h[len(h)-1]
	if s.NetMeasured != 0.4 || s.NetAlloc != 0.3 || s.CPU != 0.5 || s.Capacity[kindDRAM] != 0.5 || time.Since(s.At) > time.Minute {
		t.Fatalf("sample: %+v", s)
	}
	if c.History("127.0.0.1:1") != nil {
		t.Fatal("history of an unknown node")
	}
	fams := scrape(t, c)
	wantValue(t, fams, 1, metrics.ControllerNodes, "state", "active")
	wantValue(t, fams, 0, metrics.ControllerNodes, "state", "dead")
	wantValue(t, fams, 1, metrics.ControllerJobs, "tier", "dram")
	wantValue(t, fams, 0, metrics.ControllerJobs, "tier", "nvme")
	wantValue(t, fams, 1, metrics.ControllerJobRegistrations)
	wantValue(t, fams, 0.4, metrics.NodeNetUtilization, "node", a, "source", "measured")
	wantValue(t, fams, 0.3, metrics.NodeNetUtilization, "node", a, "source", "allocated")
	wantValue(t, fams, 0.5, metrics.NodeCapacityUtilization, "node", a, "tier", "dram")
	wantValue(t, fams, 0.5, metrics.NodeCPUUtilization, "node", a)
	wantValue(t, fams, HistoryLen+4, metrics.NodeRxMbps, "node", a)
	// A dead node's figures end: its last heartbeat is not its present.
	if err := c.SetNodeState(a, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	dead := scrape(t, c)
	wantValue(t, dead, 1, metrics.ControllerNodes, "state", "dead")
	for _, name := range []string{metrics.NodeRxMbps, metrics.NodeTxMbps, metrics.NodeCPUUtilization} {
		if _, ok := dead.Value(name, "node", a); ok {
			t.Errorf("%s of the dead node %s still exported", name, a)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Error("no Go runtime or process figures")
	}
	if fams[metrics.AutoscalerDecisions] != nil {
		t.Error("autoscaler figures without an autoscaler")
	}
}

// TestMetricsJobsAndRefusals: jobs and registrations move with
// registrations, and refusals are counted by the limit that refused them.
func TestMetricsJobsAndRefusals(t *testing.T) {
	c := newTest(t, Config{MaxJobs: 2, RegisterRate: -1})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 1000))
	for i := range 3 {
		_, err := c.RegisterJob("j", wire.JobHints{}) // counts itself
		if i < 2 && err != nil {
			t.Fatal(err)
		}
		if i == 2 && !errors.Is(err, wire.ErrLimit) {
			t.Fatalf("third job over MaxJobs 2: %v", err)
		}
	}
	_, err := c.RegisterJob("", wire.JobHints{})
	c.countRegistration(errors.New("not a wire error"))
	fams := scrape(t, c)
	wantValue(t, fams, 2, metrics.ControllerJobs, "tier", "dram")
	wantValue(t, fams, 2, metrics.ControllerJobRegistrations)
	wantValue(t, fams, 1, metrics.ControllerRegistrationsRefused, "reason", "MaxJobs")
	wantValue(t, fams, 1, metrics.ControllerRegistrationsRefused, "reason", metrics.CodeLabel(wire.CodeOf(err)))
	wantValue(t, fams, 1, metrics.ControllerRegistrationsRefused, "reason", "internal")
	if got := refusalReason(wire.Errorf(wire.CodeLimit, "client x registers jobs faster than 1 a second (RegisterRate 1, RegisterBurst 1)")); got != "RegisterRate" {
		t.Errorf("rate refusal reason %q", got)
	}
}

// TestMetricsAutoscalerDecisions: adds, holds and evaluations are counted
// as the policy takes them.
func TestMetricsAutoscalerDecisions(t *testing.T) {
	r := newScaleRig(t, 2, AutoscaleConfig{Cooldown: 10 * time.Second, Smooth: 1, LowFor: 1, NoJobScaling: true})
	r.beat(900, 0)
	if d := r.a.Step(); d.Action != ActionAdd {
		t.Fatalf("decision at 90%% measured: %+v", d)
	}
	r.settle(3)
	r.beat(950, 0)
	if d := r.a.Step(); d.Action != ActionNone || !r.logs.contains("in cool-down") {
		t.Fatalf("decision within the cool-down: %+v", d)
	}
	r.beat(500, 0) // 50 %: in band on the way down, but still in cool-down
	r.a.Step()
	fams := scrape(t, r.c)
	wantValue(t, fams, 1, metrics.AutoscalerDecisions, "decision", "add")
	wantValue(t, fams, 0, metrics.AutoscalerDecisions, "decision", "remove")
	wantValue(t, fams, 2, metrics.AutoscalerDecisions, "decision", "hold")
	wantValue(t, fams, 3, metrics.AutoscalerEvaluations)
	if v, _ := fams.Value(metrics.AutoscalerUtilization, "dim", "network"); v < 0.4 || v > 0.6 {
		t.Errorf("network utilization %v, want about 0.5", v)
	}
	if !strings.HasPrefix(fams[metrics.AutoscalerDecisions].GetHelp(), "Autoscaler decisions") {
		t.Errorf("help %q", fams[metrics.AutoscalerDecisions].GetHelp())
	}
}

// TestMetricsOrphans: the orphan figures move with what a node reports
// holding: a revoked job's data is ordered dropped at once (a drop and
// its bytes counted), an unknown job's is held through the grace (the
// gauge), and a controller's counts are its own.
func TestMetricsOrphans(t *testing.T) {
	c := newTest(t, Config{OrphanGrace: time.Hour, DeadAfter: time.Hour})
	addr := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(addr, 1<<30, 8000))
	fams := scrape(t, c)
	wantValue(t, fams, 0, metrics.ControllerOrphansDropped)
	wantValue(t, fams, 0, metrics.ControllerOrphanBytesDropped)
	wantValue(t, fams, 0, metrics.ControllerOrphansHeld)
	gone, err := c.RegisterJob("gone", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeregisterJob(context.Background(), gone.Job, gone.Token); err != nil {
		t.Fatal(err)
	}
	held := []wire.HeldJob{{Job: gone.Job, Bytes: 4096}, {Job: "stranger-7", Bytes: 1 << 20}}
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: addr, Held: held}); err != nil {
		t.Fatal(err)
	}
	fams = scrape(t, c)
	wantValue(t, fams, 1, metrics.ControllerOrphansDropped)
	wantValue(t, fams, 4096, metrics.ControllerOrphanBytesDropped)
	wantValue(t, fams, 2, metrics.ControllerOrphansHeld)
	other := newTest(t, Config{})
	wantValue(t, scrape(t, other), 0, metrics.ControllerOrphansDropped)
	if got := fams[metrics.ControllerOrphansHeld].GetType().String(); got != "GAUGE" {
		t.Errorf("%s is a %s; want a gauge", metrics.ControllerOrphansHeld, got)
	}
	if got := fams[metrics.ControllerOrphansDropped].GetType().String(); got != "COUNTER" {
		t.Errorf("%s is a %s; want a counter", metrics.ControllerOrphansDropped, got)
	}
}

// TestRegistrationCountsPerController: each controller counts its own
// registrations (Controller.regs), starting from zero.
func TestRegistrationCountsPerController(t *testing.T) {
	a, b := newTest(t, Config{}), newTest(t, Config{})
	a.countRegistration(nil)
	a.countRegistration(wire.Errorf(wire.CodeBadKey, "empty name"))
	wantValue(t, scrape(t, a), 1, metrics.ControllerJobRegistrations)
	fams := scrape(t, b)
	wantValue(t, fams, 0, metrics.ControllerJobRegistrations)
	wantValue(t, fams, 0, metrics.ControllerRegistrationsRefused, "reason", "MaxJobs")
	if fams.Find(metrics.ControllerRegistrationsRefused, "reason", "bad_key") != nil {
		t.Errorf("a controller with no refusal reports a's refusal: %v", fams[metrics.ControllerRegistrationsRefused])
	}
}

// TestRefusalSeriesFromTheStart: a new user's trial found
// pocket_controller_job_registrations_refused_total, listed in README's
// Names table, missing from /metrics until the first refusal (no rate or
// increase() before it). A fresh controller exports each limit's series at
// 0, and each limit's refusal is counted under its own series.
func TestRefusalSeriesFromTheStart(t *testing.T) {
	c := newTest(t, Config{})
	fams := scrape(t, c)
	for _, reason := range []string{"MaxJobs", "MaxJobsPerClient", "RegisterRate"} {
		wantValue(t, fams, 0, metrics.ControllerRegistrationsRefused, "reason", reason)
	}
	c.countRegistration(wire.Errorf(wire.CodeLimit, "client x holds 3 jobs (MaxJobsPerClient 3): deregister some first"))
	fams = scrape(t, c)
	wantValue(t, fams, 1, metrics.ControllerRegistrationsRefused, "reason", "MaxJobsPerClient")
	wantValue(t, fams, 0, metrics.ControllerRegistrationsRefused, "reason", "MaxJobs")
}
