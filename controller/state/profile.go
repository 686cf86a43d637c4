package state

import (
	"fmt"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Bounds of a Profile record, checked by Apply so that no record grows
// without bound whatever the controller's configuration: a profile keeps
// at most MaxProfileRuns runs, a run at most MaxRunPhases phases. The
// number of profiles is bounded by the controller (Config.MaxProfiles,
// evicting the profile updated longest ago).
const (
	MaxProfileRuns = 32
	MaxRunPhases   = 16
)

// Profile is what the last runs of the jobs of one name used, newest run
// first. Updated is when the newest run ended (UTC); the controller evicts
// the profile with the oldest Updated when it holds too many names.
type Profile struct {
	Name    string    `json:"name"`
	Updated time.Time `json:"updated"`
	Runs    []Run     `json:"runs"`
}

// Run is one job's use of resources over its life, as the controller
// attributed the nodes' heartbeat figures to it: peak bandwidth in Mb/s
// (megabits a second; the larger of rx and tx), peak bytes stored on its
// tier, its duration (milliseconds in JSON), and the same peaks per phase
// (equal slices of its life, first to last). Alloc* are what the job was
// given, Tier the wire.Tier number it ran on.
type Run struct {
	Job        string        `json:"job"`
	Ended      time.Time     `json:"ended"`
	Duration   time.Duration `json:"duration_ns"`
	PeakMbps   float64       `json:"peak_mbps"`
	PeakBytes  int64         `json:"peak_bytes"`
	Tier       uint8         `json:"tier"`
	AllocMbps  float64       `json:"alloc_mbps"`
	AllocBytes int64         `json:"alloc_bytes"`
	Phases     []Phase       `json:"phases,omitempty"`
}

// Phase is the peak use of one slice of a run's life.
type Phase struct {
	PeakMbps  float64 `json:"peak_mbps"`
	PeakBytes int64   `json:"peak_bytes"`
}

// check refuses a record beyond the bounds, or without a name, or with a
// figure Sanitize would change (not finite, negative, or over a job's
// bounds): JSON cannot encode a NaN or an infinity, and a figure no job
// can have would size the next job of the name with it.
func (p *Profile) check() error {
	switch {
	case p.Name == "":
		return fmt.Errorf("state: profile without a name")
	case len(p.Runs) > MaxProfileRuns:
		return fmt.Errorf("state: profile %q has %d runs, over the %d a profile keeps", p.Name, len(p.Runs), MaxProfileRuns)
	}
	for i := range p.Runs {
		r := &p.Runs[i]
		if n := len(r.Phases); n > MaxRunPhases {
			return fmt.Errorf("state: profile %q: run %s has %d phases, over %d", p.Name, r.Job, n, MaxRunPhases)
		}
		if bad := r.badFigure(); bad != "" {
			return fmt.Errorf("state: profile %q: run %s: %s (Profile.Sanitize clamps it)", p.Name, r.Job, bad)
		}
	}
	return nil
}

// Sanitize clamps every figure of p's runs into what a job can have: Mb/s
// figures (peaks, phases, allotment) into [0, wire.MaxJobMbps], byte
// figures into [0, wire.MaxJobBytes], NaN to 0, +Inf to the bound, so
// that the record is one every store encodes (JSON has no NaN or
// infinity) and sizing from it cannot overflow. It returns how many
// figures it changed (0 for a record check accepts).
func (p *Profile) Sanitize() int {
	fixed := 0
	for i := range p.Runs {
		fixed += p.Runs[i].Sanitize()
	}
	return fixed
}

// Sanitize clamps r's figures as Profile.Sanitize does and returns how
// many it changed.
func (r *Run) Sanitize() int {
	fixed := 0
	r.figures(func(_ string, mbps *float64, bytes *int64) {
		if mbps != nil {
			if v := wire.ClampMbps(*mbps, wire.MaxJobMbps); v != *mbps {
				*mbps, fixed = v, fixed+1
			}
			return
		}
		if v := wire.ClampBytes(*bytes, wire.MaxJobBytes); v != *bytes {
			*bytes, fixed = v, fixed+1
		}
	})
	return fixed
}

// badFigure describes the first of r's figures outside its bounds (see
// Sanitize): its name, its value and its bound; "" when there is none.
func (r *Run) badFigure() string {
	bad := ""
	r.figures(func(name string, mbps *float64, bytes *int64) {
		switch {
		case bad != "":
		case mbps != nil && wire.ClampMbps(*mbps, wire.MaxJobMbps) != *mbps:
			bad = fmt.Sprintf("%s is %v, not within [0, %g Mb/s]", name, *mbps, float64(wire.MaxJobMbps))
		case bytes != nil && wire.ClampBytes(*bytes, wire.MaxJobBytes) != *bytes:
			bad = fmt.Sprintf("%s is %d, not within [0, %d bytes]", name, *bytes, int64(wire.MaxJobBytes))
		}
	})
	return bad
}

// figures calls f with each of r's figures: a Mb/s figure (mbps set) or a
// byte figure (bytes set), named.
func (r *Run) figures(f func(what string, mbps *float64, bytes *int64)) {
	f("peak Mb/s", &r.PeakMbps, nil)
	f("peak bytes", nil, &r.PeakBytes)
	f("allotted Mb/s", &r.AllocMbps, nil)
	f("allotted bytes", nil, &r.AllocBytes)
	for k := range r.Phases {
		f(fmt.Sprintf("phase %d peak Mb/s", k+1), &r.Phases[k].PeakMbps, nil)
		f(fmt.Sprintf("phase %d peak bytes", k+1), nil, &r.Phases[k].PeakBytes)
	}
}

// MaxTraceBuckets bounds a Trace's buckets (the controller keeps 64,
// doubling their width when full).
const MaxTraceBuckets = 64

// Trace is a running job's use so far, stored with its Job record
// (Job.Trace) so that a run spanning a controller restart or an etcd
// failover keeps what the earlier controller saw: the peaks (Mb/s, bytes)
// over its life, the peaks per bucket of Width since Start (bucket i
// covers [Start+i*Width, Start+(i+1)*Width)), at most MaxTraceBuckets, and
// Samples, the most heartbeats of one node of the job's map whose figures
// counted (a run needs 2 to be recorded). A record without a Trace (one
// written before traces were stored, or of a job not yet seen in a
// heartbeat) starts the run's trace afresh.
type Trace struct {
	Start   time.Time     `json:"start"`
	Width   time.Duration `json:"width_ns"`
	Peak    Phase         `json:"peak"`
	Buckets []Phase       `json:"buckets,omitempty"`
	Samples int           `json:"samples"`
}

// Sanitize clamps t's figures as Run.Sanitize does, drops the buckets
// beyond MaxTraceBuckets and makes a negative Width or Samples 0 (a
// reader takes a Width of 0 as its own first width); it returns how many
// figures it changed.
func (t *Trace) Sanitize() int {
	fixed := 0
	clamp := func(p *Phase) {
		if v := wire.ClampMbps(p.PeakMbps, wire.MaxJobMbps); v != p.PeakMbps {
			p.PeakMbps, fixed = v, fixed+1
		}
		if v := wire.ClampBytes(p.PeakBytes, wire.MaxJobBytes); v != p.PeakBytes {
			p.PeakBytes, fixed = v, fixed+1
		}
	}
	clamp(&t.Peak)
	if len(t.Buckets) > MaxTraceBuckets {
		t.Buckets, fixed = t.Buckets[:MaxTraceBuckets], fixed+1
	}
	for i := range t.Buckets {
		clamp(&t.Buckets[i])
	}
	if t.Width < 0 {
		t.Width, fixed = 0, fixed+1
	}
	if t.Samples < 0 {
		t.Samples, fixed = 0, fixed+1
	}
	return fixed
}
