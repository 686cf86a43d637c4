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
	if err := CheckProfileArg(name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	key, theirs := MatchProfile(name, c.prof.keys())
	c.mu.Unlock()
	if len(theirs) > 1 {
		return nil, wire.Errorf(wire.CodeNotFound, "job name %q has profiles of %d tenants: give one of %s",
			name, len(theirs), ShownNames(theirs))
	}
	p, next, ok := c.Profile(key)
	if !ok {
		return nil, c.noProfile(name, "")
	}
	return profileReply(&p, next), nil
}

// TenantProfile serves wire.OpJobProfile to a job client of tenant (the
// TenantOf its certificate): the tenant's own profile of job name (NAME,
// or TENANT/NAME naming its own tenant), never another tenant's. Errors
// are JobProfile's, CodeForbidden for another tenant's name, and the
// not-found answer lists only the tenant's own profiles.
func (c *Controller) TenantProfile(tenant, name string) (*wire.JobProfile, error) {
	if err := CheckProfileArg(name); err != nil {
		return nil, err
	}
	asked, job := splitKey(name)
	key := ProfileKey(tenant, job)
	if asked != "" && asked != tenant {
		return nil, wire.Errorf(wire.CodeForbidden, "profile %q: a job client reads its own tenant's profiles only (%s): the operator reads every tenant's",
			name, ProfileKey(tenant, "NAME"))
	}
	p, next, ok := c.Profile(key)
	if !ok {
		return nil, c.noProfile(job, tenant)
	}
	return profileReply(&p, next), nil
}

// ShownNames lists the first profileNamesShown of names, and "..." after
// them when there are more.
func ShownNames(names []string) string {
	s := strings.Join(names[:min(len(names), profileNamesShown)], ", ")
	if len(names) > profileNamesShown {
		s += ", ..."
	}
	return s
}

// noProfile is the CodeNotFound answer for a name without a profile,
// listing the profiles of tenant ("": every profile).
func (c *Controller) noProfile(name, tenant string) error {
	c.mu.Lock()
	names, n := c.prof.names(profileNamesShown, tenant)
	c.mu.Unlock()
	list := ""
	if len(names) > 0 {
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

// profileNamesScan bounds the profiles names looks at for a tenant's
// names: the walk holds the controller's lock, and a hostile trial's
// lookups of names it had no profile of, each walking 10,000 profiles
// (277 us), took registrations' p99 from 54 us to 12.6 ms.
const profileNamesScan = 1024

// names returns up to most profile names of tenant ("": of every
// tenant), the most recently updated first, among the profileNamesScan
// most recently updated, and how many the tenant has (perTenant).
func (b *profileBook) names(most int, tenant string) ([]string, int) {
	n := b.lru.Len()
	if tenant != "" {
		n = b.perTenant[tenant]
	}
	out := make([]string, 0, min(most, n))
	scanned := 0
	for e := b.lru.Front(); e != nil && len(out) < min(most, n) && scanned < profileNamesScan; e = e.Next() {
		scanned++
		if key := e.Value.(*state.Profile).Name; tenant == "" || profileTenant(key) == tenant {
			out = append(out, key)
		}
	}
	return out, n
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
