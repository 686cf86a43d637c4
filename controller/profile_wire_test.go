package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/wire"
)

// runProfiledJob registers a job of name without hints on c, has its node
// at addr report rx Mb/s for a few heartbeats, and deregisters it, so that
// its run is recorded under name. It returns the job's id.
func runProfiledJob(t *testing.T, c *Controller, name, addr string, rx float64) string {
	t.Helper()
	m, err := c.RegisterJob(name, wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		hb := &wire.Heartbeat{Addr: addr, RxMbps: rx, Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 8000, UsedBytes: 1 << 20}}}
		if _, err := c.Heartbeat(hb); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	return m.Job
}

// TestJobProfileServed (issue 15, item 2): a running controller serves a
// job name's profile over the control plane (wire.OpJobProfile) to an
// operator, with the next size under its own policy (a per-lambda floor
// of 1000 Mb/s, where `pocket job profile` used to print the default
// policy's 600); a name without a profile is not found, naming how one is
// recorded and the names that have one; a job client's certificate reads
// its own tenant's profiles only (TestProfilesAreTheTenants), a node's
// none.
func TestJobProfileServed(t *testing.T) {
	dir := testPKI(t)
	srv, err := pki.ServerConfig(dir, "controller")
	if err != nil {
		t.Fatal(err)
	}
	const node = "127.0.0.1:7001"
	c := newTest(t, Config{TLS: srv, FirstJobSeq: 1, Policy: Policy{PerLambdaMbps: 1000}})
	mustRegister(t, c, dramNode(node, 1<<30, 8000))
	job := runProfiledJob(t, c, "small", node, 26)
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := a.String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	op := tlsClient(t, dir, addr, "operator", nil)
	got, err := op.JobProfile(ctx, "small")
	if err != nil {
		t.Fatalf("operator's job profile: %v", err)
	}
	p, next, ok := c.Profile("small")
	if !ok || len(p.Runs) != 1 {
		t.Fatalf("controller's own profile of small: %+v %v", p, ok)
	}
	r := got.Runs
	if got.Name != "small" || len(r) != 1 || r[0].Job != job || r[0].Tier != uint8(wire.TierDRAM) ||
		r[0].PeakMbps != p.Runs[0].PeakMbps || r[0].PeakMbps <= 0 || r[0].AllocMbps != p.Runs[0].AllocMbps ||
		len(r[0].Phases) != ProfilePhases || !r[0].Ended.Equal(p.Runs[0].Ended.Truncate(time.Millisecond)) ||
		r[0].Duration != p.Runs[0].Duration.Truncate(time.Millisecond) || !got.Updated.Equal(p.Updated.Truncate(time.Millisecond)) {
		t.Fatalf("served profile %+v\ncontroller's %+v", got, p)
	}
	if got.Next.Mbps != 1000 || got.Next.Mbps != next.Mbps || got.Next.EstimateMbps != next.Estimate.Mbps ||
		got.Next.EstimateMbps >= 1000 || got.Next.Bytes != next.Bytes || got.Next.EstimateRuns != 1 {
		t.Fatalf("served next size %+v; want the controller's policy's %+v (raised to its 1000 Mb/s a lambda)", got.Next, next)
	}

	_, err = op.JobProfile(ctx, "never-ran")
	if !errors.Is(err, wire.ErrNotFound) || !strings.Contains(err.Error(), "recorded when a job of the name ends") ||
		!strings.Contains(err.Error(), "1 name(s) have one: small") {
		t.Fatalf("unknown name: %v, want not found saying how profiles are recorded and naming small", err)
	}
	if _, err := op.JobProfile(ctx, "-bad"); !errors.Is(err, wire.ErrBadKey) {
		t.Fatalf("a name registration refuses: %v, want bad key", err)
	}
	// A job client reads its own tenant's profiles alone: "small" ran
	// in-process (no tenant), so the tenant "client" has none, and is not
	// told the names others have.
	_, err = tlsClient(t, dir, addr, "client", testSecret).JobProfile(ctx, "small")
	if !errors.Is(err, wire.ErrNotFound) || strings.Contains(err.Error(), ": small") || !strings.Contains(err.Error(), "0 name(s)") {
		t.Fatalf("client's certificate reading another's profile: %v, want not found, naming none", err)
	}
	_, err = tlsClient(t, dir, addr, "node", testSecret).JobProfile(ctx, "small")
	if !errors.Is(err, wire.ErrForbidden) || !strings.Contains(err.Error(), "job-profile needs the role operator or client;") {
		t.Fatalf("node's certificate reading a profile: %v, want refused for want of the operator or client role", err)
	}
}

// TestEveryControlOpHasRoles: each control op a peer sends names the
// roles that may send it (roles.go), so that no op the controller serves
// is open to every certificate for want of an entry.
func TestEveryControlOpHasRoles(t *testing.T) {
	n := 0
	for op := wire.ControlBase; op < wire.ReplyBit; op++ {
		if strings.HasPrefix(op.String(), "op(") || op == wire.OpGoAway {
			continue // unassigned, or never sent as a request
		}
		n++
		if _, listed := needs(op); !listed {
			t.Errorf("%s: no roles listed in needs", op)
		}
	}
	if n < 11 {
		t.Fatalf("saw %d control ops", n)
	}
}
