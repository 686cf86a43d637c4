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
// every job's allotment on the job's nodes. The operator (no tenant)
// still reads them. Fails on the old code: the tenant's refusal held the
// spare bytes.
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
	if !strings.Contains(m.Note, "more than their bandwidth") || strings.Contains(m.Note, "8000") {
		t.Fatalf("tenant's note %q: want the over-allotment said without the node's figures", m.Note)
	}
	m, err = c.RegisterJob("fast", wire.JobHints{PeakMbps: 9000})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Note, "of their 8000 Mb/s") {
		t.Fatalf("operator's note %q: want the sum of the allotments and the nodes' bandwidth", m.Note)
	}
}
