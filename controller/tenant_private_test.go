package controller

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestTenantRefusalsNameNoClusterFigures: a tenant's "no space" refusal
// and its over-allotment note give no figure of the cluster's. Before,
// the refusal named the largest tier's spare bytes exactly, so between
// two registrations a tenant could follow, to the byte, what other
// tenants stored and were allotted (a hostile trial); the note summed
// every job's allotment on the job's nodes, and even without the sum its
// presence told a tenant whether others' allotments passed a figure
// (a re-check bisected one exactly). The operator (no tenant) still reads
// them. Fails on the old code: the tenant's refusal held the spare
// bytes; on e3ab5df, alice's job within the node's bandwidth got a note.
func TestTenantRefusalsNameNoClusterFigures(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, &wire.NodeRegister{Addr: "127.0.0.1:7001", Tiers: []wire.TierStat{
		{Kind: kindDRAM, CapacityBytes: 8 << 30, Mbps: 8000}}})
	// Another tenant's job holds 3 GiB of the 8.
	if _, err := c.RegisterJobFor("10.0.0.6", "bob", &wire.JobRegister{Name: "held", Hints: wire.JobHints{CapacityBytes: 3 << 30}}); err != nil {
		t.Fatal(err)
	}
	spare := strconv.FormatInt(5<<30, 10)
	big := &wire.JobRegister{Name: "big", Hints: wire.JobHints{CapacityBytes: 6 << 30}}
	_, err := c.RegisterJobFor("10.0.0.5", "alice", big)
	if !errors.Is(err, wire.ErrNoSpace) || strings.Contains(err.Error(), spare) || strings.Contains(err.Error(), "5GiB") ||
		!strings.Contains(err.Error(), "6442450944") || !strings.Contains(err.Error(), "lower the capacity hint") {
		t.Fatalf("tenant's refusal: %v; want no space, naming its need and advice and not the %s spare bytes", err, spare)
	}
	_, err = c.RegisterJob("big", big.Hints)
	if !errors.Is(err, wire.ErrNoSpace) || !strings.Contains(err.Error(), spare) {
		t.Fatalf("operator's refusal: %v; want the %s spare bytes", err, spare)
	}

	// A job asking more bandwidth than its node has: the note says so,
	// with the sum of the allotments for the operator only.
	m, err := c.RegisterJobFor("10.0.0.5", "alice", &wire.JobRegister{Name: "fast", Hints: wire.JobHints{PeakMbps: 9000}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Note, "more than its 1 node(s) carry") || strings.Contains(m.Note, "8000") {
		t.Fatalf("tenant's note %q: want the over-allotment said without the node's figures", m.Note)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	// Within the node's bandwidth alone, past it with another tenant's
	// allotment: no note, which would tell alice that bob's allotment is
	// over 3000 Mb/s (a trial bisected it exactly).
	if _, err := c.RegisterJobFor("10.0.0.6", "bob", &wire.JobRegister{Name: "bw", Hints: wire.JobHints{PeakMbps: 3500}}); err != nil {
		t.Fatal(err)
	}
	m, err = c.RegisterJobFor("10.0.0.5", "alice", &wire.JobRegister{Name: "fits", Hints: wire.JobHints{PeakMbps: 5000}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Note != "" {
		t.Fatalf("tenant's note %q for a job within the node's bandwidth: it tells of another tenant's allotment", m.Note)
	}
	m, err = c.RegisterJob("fast", wire.JobHints{PeakMbps: 9000})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Note, "of their 8000 Mb/s") {
		t.Fatalf("operator's note %q: want the sum of the allotments and the nodes' bandwidth", m.Note)
	}
}

// TestTenantSpareIsCoarse: whether a tenant's capacity hint fits is
// judged against the spare rounded to 4 leading bits, so its yes or no
// does not follow other tenants' bytes exactly. A re-check bisected the
// exact spare in 40 registrations and read another tenant's put of
// 12,345,678 bytes to within 1,314. Fails on the old code: the hint of
// the exact spare fitted, and one byte more did not.
func TestTenantSpareIsCoarse(t *testing.T) {
	if got := privateSpare(5<<30 + 12345); got != 5<<30 {
		t.Fatalf("privateSpare(5 GiB + 12345) = %d, want 5 GiB", got)
	}
	if got := privateSpare(15); got != 15 {
		t.Fatalf("privateSpare(15) = %d", got)
	}
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, &wire.NodeRegister{Addr: "127.0.0.1:7001", Tiers: []wire.TierStat{
		{Kind: kindDRAM, CapacityBytes: 8 << 30, Mbps: 8000}}})
	const held = 3<<30 - 12345678 // another tenant's: the spare is 5 GiB + 12,345,678
	if _, err := c.RegisterJobFor("10.0.0.6", "bob", &wire.JobRegister{Name: "held", Hints: wire.JobHints{CapacityBytes: held}}); err != nil {
		t.Fatal(err)
	}
	probe := func(bytes int64) error {
		m, err := c.RegisterJobFor("10.0.0.5", "alice", &wire.JobRegister{Name: "probe", Hints: wire.JobHints{CapacityBytes: bytes}})
		if err == nil {
			if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
				t.Fatal(err)
			}
		}
		return err
	}
	if err := probe(5 << 30); err != nil {
		t.Fatalf("5 GiB of a 5 GiB + 12,345,678 spare: %v", err)
	}
	if err := probe(5<<30 + 12345678); !errors.Is(err, wire.ErrNoSpace) {
		t.Fatalf("the exact spare, 5 GiB + 12,345,678: %v; want refused as no space (the tenant sees the spare rounded)", err)
	}
	if _, err := c.RegisterJob("op", wire.JobHints{CapacityBytes: 5<<30 + 12345678}); err != nil {
		t.Fatalf("the operator's hint of the exact spare: %v", err)
	}
}

// TestTenantMaxJobsRefusalNamesNoCount: a tenant refused at the cluster's
// MaxJobs is not told how many jobs the cluster holds; the operator is.
// Before, the tenant read MaxJobs and the count, and so what the other
// tenants held (a re-check: 12 jobs, its own 7). Fails on the old code.
func TestTenantMaxJobsRefusalNamesNoCount(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1, MaxJobs: 2})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	for range 2 {
		if _, err := c.RegisterJobFor("10.0.0.6", "bob", &wire.JobRegister{Name: "held"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.RegisterJobFor("10.0.0.5", "alice", &wire.JobRegister{Name: "one"})
	if !errors.Is(err, wire.ErrLimit) || strings.ContainsAny(err.Error(), "0123456789") {
		t.Fatalf("tenant's refusal at MaxJobs: %v; want a limit naming no figure", err)
	}
	if _, err := c.RegisterJob("one", wire.JobHints{}); !errors.Is(err, wire.ErrLimit) || !strings.Contains(err.Error(), "MaxJobs 2") {
		t.Fatalf("operator's refusal at MaxJobs: %v; want its figures", err)
	}
}
