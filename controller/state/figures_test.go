package state

import (
	"math"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

func TestProfileFigures(t *testing.T) {
	stores(t, testProfileFigures)
}

// testProfileFigures: a profile with a figure JSON cannot encode (NaN,
// +Inf) or no job can have (negative, over a job's bounds) is refused with
// an error naming the run and the figure, not json's "unsupported value";
// Sanitize clamps every such figure so that the same profile is stored.
func testProfileFigures(t *testing.T, s Store, reopen func() Store) {
	cases := []struct {
		name, field string
		bad         func(r *Run)
	}{
		{"inf peak", "peak Mb/s", func(r *Run) { r.PeakMbps = math.Inf(1) }},
		{"nan peak", "peak Mb/s", func(r *Run) { r.PeakMbps = math.NaN() }},
		{"huge peak", "peak Mb/s", func(r *Run) { r.PeakMbps = math.MaxFloat64 }},
		{"negative bytes", "peak bytes", func(r *Run) { r.PeakBytes = -1 }},
		{"huge bytes", "peak bytes", func(r *Run) { r.PeakBytes = math.MaxInt64 }},
		{"inf allotment", "allotted Mb/s", func(r *Run) { r.AllocMbps = math.Inf(1) }},
		{"negative allotted bytes", "allotted bytes", func(r *Run) { r.AllocBytes = math.MinInt64 }},
		{"inf phase", "phase 2 peak Mb/s", func(r *Run) { r.Phases[1].PeakMbps = math.Inf(1) }},
		{"huge phase bytes", "phase 1 peak bytes", func(r *Run) { r.Phases[0].PeakBytes = wire.MaxJobBytes + 1 }},
	}
	for _, c := range cases {
		p := testProfile(c.name, 2)
		c.bad(&p.Runs[1])
		err := s.Apply(&Batch{PutProfiles: []Profile{p}})
		if err == nil || !strings.Contains(err.Error(), c.field) || !strings.Contains(err.Error(), p.Runs[1].Job) {
			t.Errorf("%s: Apply = %v; want a refusal naming run %s and %q", c.name, err, p.Runs[1].Job, c.field)
			continue
		}
		if n := p.Sanitize(); n != 1 {
			t.Errorf("%s: Sanitize changed %d figures, want 1", c.name, n)
		}
		if err := s.Apply(&Batch{PutProfiles: []Profile{p}}); err != nil {
			t.Errorf("%s: sanitized profile refused: %v", c.name, err)
		}
		if n := p.Sanitize(); n != 0 {
			t.Errorf("%s: a sanitized profile sanitized again changed %d figures", c.name, n)
		}
	}
	snap, err := reopen().Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Profiles) != len(cases) {
		t.Fatalf("stored %d profiles, want %d", len(snap.Profiles), len(cases))
	}
	for _, p := range snap.Profiles {
		r := p.Runs[1]
		if !(r.PeakMbps >= 0 && r.PeakMbps <= wire.MaxJobMbps && r.PeakBytes >= 0 && r.PeakBytes <= wire.MaxJobBytes &&
			r.AllocMbps >= 0 && r.AllocMbps <= wire.MaxJobMbps && r.AllocBytes >= 0 && r.AllocBytes <= wire.MaxJobBytes) {
			t.Errorf("%s: stored run out of bounds: %+v", p.Name, r)
		}
	}
}

func TestSanitizeClamps(t *testing.T) {
	r := Run{PeakMbps: math.Inf(1), PeakBytes: math.MaxInt64, AllocMbps: math.NaN(), AllocBytes: -3,
		Phases: []Phase{{PeakMbps: -1, PeakBytes: 7}}}
	if n := r.Sanitize(); n != 5 {
		t.Errorf("Sanitize changed %d figures, want 5", n)
	}
	want := Run{PeakMbps: wire.MaxJobMbps, PeakBytes: wire.MaxJobBytes, Phases: []Phase{{PeakBytes: 7}}}
	if r.PeakMbps != want.PeakMbps || r.PeakBytes != want.PeakBytes || r.AllocMbps != 0 || r.AllocBytes != 0 || r.Phases[0] != want.Phases[0] {
		t.Errorf("sanitized %+v, want %+v", r, want)
	}
}
