package controller

import (
	"iter"
	"strings"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// A stored profile always fits a wire.JobProfile reply: these constants
// fail to compile (a negative unsigned constant) if the store keeps more
// runs or phases than the reply carries.
const (
	_ = uint(wire.MaxProfileRuns - state.MaxProfileRuns)
	_ = uint(wire.MaxRunPhases - state.MaxRunPhases)
	_ = uint(wire.MaxRunPhases - ProfilePhases)
)

// profileNamesShown is how many profile names a "no profile" answer lists.
const profileNamesShown = 10

// Profile returns the profile of job name (its last runs, newest first)
// and what the next job of the name registered without size hints is
// allotted under the controller's policy (Policy.NextSize); false when
// the name has none. JobProfile is its wire form.
func (c *Controller) Profile(name string) (state.Profile, NextSize, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.prof.profile(name)
	if !ok {
		return p, NextSize{}, false
	}
	return p, c.cfg.Policy.NextSize(&p), true
}

// JobProfile serves wire.OpJobProfile (`pocket job profile NAME`): the
// profile of job name (a registered name, not a job id) with the next size
// under this controller's policy, in the reply's units (Mb/s, bytes,
// millisecond times). Over TLS a job's profile is its tenant's
// (tenant.go): name is then "TENANT/NAME", or a bare NAME when one tenant
// alone has a profile of it. Errors: CodeBadKey for a name registration
// would refuse; CodeNotFound when the name has no profile, with how
// profiles are recorded and the names that have one (at most
// profileNamesShown, the most recently updated first), or when several
// tenants have one, naming them.
func (c *Controller) JobProfile(name string) (*wire.JobProfile, error) {
	if err := checkProfileArg(name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	key, theirs := MatchProfile(name, c.prof.keys())
	c.mu.Unlock()
	if len(theirs) > 1 {
		return nil, wire.Errorf(wire.CodeNotFound, "job name %q has profiles of %d tenants: give one of %s",
			name, len(theirs), strings.Join(theirs[:min(len(theirs), profileNamesShown)], ", "))
	}
	p, next, ok := c.Profile(key)
	if !ok {
		return nil, c.noProfile(name)
	}
	return profileReply(&p, next), nil
}

// noProfile is the CodeNotFound answer for a name without a profile.
func (c *Controller) noProfile(name string) error {
	c.mu.Lock()
	names, n := c.prof.names(profileNamesShown)
	c.mu.Unlock()
	list := ""
	if n > 0 {
		list = ": " + strings.Join(names, ", ")
		if n > len(names) {
			list += ", ..."
		}
	}
	return wire.Errorf(wire.CodeNotFound, "no profile of job name %q: a profile is recorded when a job of the name ends "+
		"(deregistered, or its token expired) after %d heartbeats of one of its nodes (%d name(s) have one%s)",
		name, ProfileMinSamples, n, list)
}

// keys yields the profile keys, the most recently updated first.
func (b *profileBook) keys() iter.Seq[string] {
	return func(yield func(string) bool) {
		for e := b.lru.Front(); e != nil; e = e.Next() {
			if !yield(e.Value.(*state.Profile).Name) {
				return
			}
		}
	}
}

// names returns up to most profile names, the most recently updated
// first, and how many names have a profile.
func (b *profileBook) names(most int) ([]string, int) {
	out := make([]string, 0, min(most, b.lru.Len()))
	for e := b.lru.Front(); e != nil && len(out) < most; e = e.Next() {
		out = append(out, e.Value.(*state.Profile).Name)
	}
	return out, b.lru.Len()
}

// profileReply is p with next in its wire form.
func profileReply(p *state.Profile, next NextSize) *wire.JobProfile {
	out := &wire.JobProfile{Name: p.Name, Updated: p.Updated, Runs: make([]wire.ProfileRun, len(p.Runs)),
		Next: wire.ProfileNext{Mbps: next.Mbps, Bytes: next.Bytes, EstimateMbps: next.Estimate.Mbps,
			EstimateBytes: next.Estimate.Bytes, EstimateRuns: uint32(next.Estimate.Runs)}}
	for i, r := range p.Runs {
		out.Runs[i] = wire.ProfileRun{Job: r.Job, Ended: r.Ended, Duration: r.Duration, PeakMbps: r.PeakMbps,
			PeakBytes: r.PeakBytes, Tier: r.Tier, AllocMbps: r.AllocMbps, AllocBytes: r.AllocBytes,
			Phases: make([]wire.ProfilePhase, len(r.Phases))}
		for k, ph := range r.Phases {
			out.Runs[i].Phases[k] = wire.ProfilePhase{PeakMbps: ph.PeakMbps, PeakBytes: ph.PeakBytes}
		}
	}
	return out
}
