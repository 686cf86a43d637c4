package controller

import (
	"container/list"
	"sort"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// Profiles: sizing without hints (issue 15).
//
// While a job runs, the controller attributes its nodes' heartbeat figures
// to it; when the job ends (deregistered or expired) it records the run
// under the job's NAME (over TLS, its tenant's profile of the name:
// tenant.go), and the next job of that name registered without
// size hints is sized from the last runs instead of Pocket's default
// (2 nodes, 16 Gb/s). Hints, when given, win.
//
// Attribution. A node that counts per job reports each job's own figures
// in its heartbeats (wire.Heartbeat.Loads; jobload.go): job j's bandwidth
// on node n is the larger of its rx and tx there, its bytes what it holds
// there; a job the heartbeat does not list had none. A node that reports
// no per-job figures (an older node) has its heartbeat split among the
// jobs placed on it by their share of its allotment: job j's bandwidth
// on n is max(rx, tx) x a_j/A_n, where a_j is j's allotted Mb/s on n (its
// allotment times its weight there) and A_n the sum over n's jobs; its
// bytes are n's used bytes of j's tier x b_j/B_n with the allotted bytes
// of that tier, or by the bandwidth share when no job on n has a capacity
// allotment (a job alone on its nodes gets exactly their figures; one
// beside a busy job, a share of that job's). The job's figure at a moment
// is the sum over the nodes of its map of their latest attributed
// figures; its run keeps the peaks. The values a change of its map moves
// are not its load: while its map changes, and for the profileSmooth
// heartbeats after (jobload.go), its figures do not count, and each
// node's figure from before the change is forgotten (atEpoch), nor do
// they count while a node of its map
// drains from the cluster, nor when a node that reports per-job figures
// lists the most it may (wire.MaxJobLoads, the busiest) and not the job;
// such a heartbeat is no sample of the run either. A
// heartbeat updates at most profileSampleJobs of the node's jobs (Go's
// randomized map order picks which), so its cost does not grow with the
// number of jobs; on a node with more jobs each is sampled less often.
//
// Phases. The run's life is cut in ProfilePhases (4) equal quarters; each
// keeps the peaks seen in it. While the job runs, peaks are kept in up to
// 64 time buckets (1 s wide at first, doubling when full), folded into the
// quarters when it ends. Phases are shown by `pocket job profile` and are
// there for growing a running job's map ahead of its load (issue 15
// item 1); sizing uses the whole-run peaks.
//
// Sizing from the last K runs (Config.ProfileRuns, 5). With x_0 the
// newest run's peak and x_{k-1} the oldest, the estimate is
//
//	est = ProfileHeadroom x sum_i 2^-i x_i / sum_i 2^-i
//
// (weights halve with each older run; ProfileHeadroom = 1.1 covers the
// peaks a 1 s heartbeat averages away), for bandwidth and bytes alike. A
// run is recorded only when at least ProfileMinSamples (2) heartbeats of
// one node of its map had figures that counted (a run spanning a
// controller restart counts those of both controllers: the trace is
// stored, see Saving traces): a job shorter than a heartbeat interval is
// seen at most once, often before it did anything, and a run none or one
// of whose heartbeats counted (its life within a drain, a map change or
// the settling after a restart) would be recorded as ~0 Mb/s and size the
// next job of its name at ~0. Nor is a run recorded whose nodes saw it
// move and hold no value bytes at all (registered and ended unused, as a
// launch that failed is). Sizing also never gives a
// learned job less bandwidth than one lambda's (Policy.PerLambdaMbps, the
// smallest hinted size; see Policy.needFor).
//
// Bounds. The controller keeps at most Config.MaxProfiles (10,000) names;
// recording a run for a new name beyond that evicts the profile updated
// longest ago of the tenant holding the most profiles (profileBook.trim).
// Profiles live in the durable state (state.Profile).
const (
	ProfilePhases      = 4
	ProfileHeadroom    = 1.1
	ProfileMinSamples  = 2 // heartbeats from one node of a run's map for it to be recorded
	DefaultProfileRuns = 5
	DefaultMaxProfiles = 10_000

	profileSampleJobs = 64
	profileBuckets    = 64
)

// profileBook holds the profiles by name (least recently updated at the
// back of lru) and the traces of running jobs by id. Guarded by
// Controller.mu.
type profileBook struct {
	keep, max int
	byName    map[string]*list.Element // of *state.Profile
	perTenant map[string]int           // profiles held by tenant (profileTenant)
	lru       *list.List
	dirty     map[string]struct{} // names to put (or delete when gone); nil: not persisted
	traces    map[string]*jobTrace
}

// newProfileBook returns a book keeping keep runs per name (0:
// DefaultProfileRuns) of at most maxNames names (0: DefaultMaxProfiles);
// persist marks what changed for batch (false without a store, so that
// nothing accumulates).
func newProfileBook(keep, maxNames int, persist bool) *profileBook {
	if keep <= 0 {
		keep = DefaultProfileRuns
	}
	keep = min(keep, state.MaxProfileRuns)
	if maxNames <= 0 {
		maxNames = DefaultMaxProfiles
	}
	b := &profileBook{keep: keep, max: maxNames, byName: map[string]*list.Element{}, perTenant: map[string]int{},
		lru: list.New(), traces: map[string]*jobTrace{}}
	if persist {
		b.dirty = map[string]struct{}{}
	}
	return b
}

// nodeFig is what a job was attributed on one node at a heartbeat.
type nodeFig struct {
	mbps  float64
	bytes int64
	n     int // heartbeats of the node attributed to the job so far
}

// jobTrace is a running job's use so far.
type jobTrace struct {
	start   time.Time
	perNode map[string]nodeFig
	peak    state.Phase
	width   time.Duration // of each bucket
	buckets []state.Phase // peaks per bucket since start
	// samples is the most heartbeats of one node whose figures counted
	// (nodeFig.n), plus base: the samples of the trace restored from the
	// state (a node's count starts again after a restart).
	samples, base int
	// drainEpoch is the job's epoch when a node of its map was last seen
	// draining from the cluster (0: never).
	drainEpoch uint64
	// epoch is the job's epoch the figures in perNode were taken at.
	epoch uint64

	// What the state holds of the trace (see saveDue): its peak and
	// samples when last marked to be saved, and when.
	savedPeak    state.Phase
	savedSamples int
	savedAt      time.Time
	changed      bool // a peak or bucket rose since then
}

// Saving traces. A running job's trace is stored with its job record
// (state.Job.Trace), so that a run spanning a controller restart or an
// etcd failover keeps what the earlier controller saw. Writing it at
// every heartbeat would be one record write per job per node heartbeat;
// instead a changed trace is saved (its job record marked for the next
// flush) when
//
//   - the run became recordable (ProfileMinSamples heartbeats counted):
//     at once, so that a run is recorded after a restart however few
//     heartbeats follow it (once per run); or
//   - its peak bandwidth or bytes rose to more than traceSaveRise times
//     what was saved: at most once per traceSaveGap; or
//   - any figure of it rose (a peak, a bucket's peak), at most once per
//     traceSaveEvery.
//
// A steady job is thus written once per traceSaveEvery, a ramping one at
// most once per traceSaveGap (and about log_1.25 of its range times in
// all), an idle one (figures 0, which change no bucket) once, when its
// run becomes recordable. A restart loses at most the last traceSaveEvery
// of a trace's buckets, and its stored peaks are within a factor
// traceSaveRise of the true ones but for a rise in the last traceSaveGap
// before it. The job's record written for another reason (an epoch bump)
// carries the trace as it is.
const (
	traceSaveRise  = 1.25
	traceSaveGap   = time.Second
	traceSaveEvery = 10 * time.Second
)

// observeNode attributes one heartbeat of node n to its jobs (the
// attribution in the doc above) and updates their traces; save(id) is
// called for each job whose trace is due to be saved (saveDue).
//
// A job's figure on n is held to rated, the bandwidth n is rated for
// (Controller.nodeMbps): a node that carries more than its rating (on
// loopback, say) would size the job's next run for nodes it does not
// have. A new user's trial: a 6 s load test on nodes rated 1,000 Mb/s
// recorded 12,718 Mb/s, and the next job of its name was sized at 13,990
// Mb/s and scaled the cluster to its maximum at once.
func (b *profileBook) observeNode(n *node, l *nodeLoad, rated float64, now time.Time, save func(id string)) {
	if l == nil || len(l.jobs) == 0 {
		return
	}
	k := 0
	for j := range l.jobs {
		if k == profileSampleJobs {
			break
		}
		k++
		t := b.trace(j, now)
		t.atEpoch(j.epoch)
		// A heartbeat whose figures do not count for j is no sample of
		// its run: the node keeps its figure, the peaks stay, and the run
		// is recorded only if enough of its heartbeats counted.
		if !t.settled(j, n) || unlisted(&n.jobLoads, j.id) {
			continue
		}
		f := attributed(n, l, j)
		f.mbps = min(f.mbps, rated)
		t.add(j, n.addr, f, now)
		if save != nil && t.saveDue(now) {
			save(j.id)
		}
	}
}

// atEpoch forgets the nodes' figures taken before the job's map took epoch
// e (keeping their sample counts): a node's figure from before a change
// counts the values that have since moved to another node, and summed
// with that node's figure from after it, counted them twice (a new-user
// trial's job of 14.7 MB recorded a peak of 21.7 MB over a map change).
// Until each node of the new map has a figure that counts, the job's sum
// is low, which its peaks do not keep.
func (t *jobTrace) atEpoch(e uint64) {
	if t.epoch == e {
		return
	}
	t.epoch = e
	for a, f := range t.perNode {
		t.perNode[a] = nodeFig{n: f.n}
	}
}

// unlisted reports whether the latest heartbeat of a node that reports
// per-job figures says nothing of job: it lists wire.MaxJobLoads jobs
// (the busiest; the node has more) and not job, whose figures there are
// then unknown rather than 0.
func unlisted(l *jobLoads, job string) bool {
	if !l.reports || l.n == 0 {
		return false
	}
	figs := l.beat(1).figs
	_, ok := figs[job]
	return !ok && len(figs) >= wire.MaxJobLoads
}

// saveDue reports whether t is due to be saved (see Saving traces) and,
// if so, notes it saved as it is now.
func (t *jobTrace) saveDue(now time.Time) bool {
	if !t.changed {
		return false
	}
	since := now.Sub(t.savedAt)
	recordable := t.samples >= ProfileMinSamples && t.savedSamples < ProfileMinSamples
	rose := t.peak.PeakMbps > t.savedPeak.PeakMbps*traceSaveRise ||
		float64(t.peak.PeakBytes) > float64(t.savedPeak.PeakBytes)*traceSaveRise
	if !recordable && !(rose && since >= traceSaveGap) && since < traceSaveEvery {
		return false
	}
	t.savedPeak, t.savedSamples, t.savedAt, t.changed = t.peak, t.samples, now, false
	return true
}

// traceRecord is job id's trace as stored (nil before it has one).
func (b *profileBook) traceRecord(id string) *state.Trace {
	t := b.traces[id]
	if t == nil {
		return nil
	}
	return &state.Trace{Start: t.start.UTC(), Width: t.width, Peak: t.peak,
		Buckets: append([]state.Phase(nil), t.buckets...), Samples: t.samples}
}

// restoreTrace enters job j's stored trace (nil: none), with its figures
// clamped into a job's bounds (state.Trace.Sanitize), at most
// profileBuckets buckets and a positive bucket width.
func (b *profileBook) restoreTrace(j *job, r *state.Trace, now time.Time) {
	if r == nil {
		return
	}
	tr := *r
	tr.Buckets = append([]state.Phase(nil), r.Buckets...)
	tr.Sanitize()
	t := b.trace(j, now)
	if !tr.Start.IsZero() && !tr.Start.After(now) {
		t.start = tr.Start.Local()
	}
	if tr.Width > 0 {
		t.width = tr.Width
	}
	t.peak, t.buckets = tr.Peak, tr.Buckets
	for len(t.buckets) > profileBuckets {
		t.fold()
	}
	t.samples, t.base = tr.Samples, tr.Samples
	t.savedPeak, t.savedSamples, t.savedAt = t.peak, t.samples, now
}

// settled reports whether j's figures on node n over the heartbeats a
// profile averages (profileSmooth) are its own load (jobload.go): j's map
// is not changing, and each of those heartbeats covers only time since
// j's latest epoch bump. A drain from the cluster is seen on the draining
// node's heartbeats: from one of them until j's epoch moves on (the
// drain's end bumps it), j's map counts as changing on every node.
func (t *jobTrace) settled(j *job, n *node) bool {
	if n.state == wire.NodeDraining {
		t.drainEpoch = j.epoch
	}
	if j.move != nil || t.drainEpoch == j.epoch {
		return false
	}
	return n.jobLoads.since(j.bumped, profileSmooth) >= n.jobLoads.window(profileSmooth)
}

// profileSmooth is how many heartbeats a job's own traffic on a node is
// averaged over before it counts toward its profile's peak: the profile
// sizes the next run's allotment, a sustained rate, and one heartbeat's
// burst (a new-user trial recorded a peak of 26 Gb/s for a job that ran at
// 6-12 Gb/s) would size it for the burst.
const profileSmooth = 3

// attributed is job j's figure on node n (whose jobs l are) at n's latest
// heartbeat: its own when n reports per-job figures (its traffic averaged
// over profileSmooth heartbeats, its bytes the latest), else n's figures
// split by allotment.
//
// Each figure is held within what one node can have (wire.MaxNodeMbps,
// wire.MaxNodeBytes), so that the sums over a job's nodes stay finite and
// fit int64 whatever reached the controller (nodeFigure).
func attributed(n *node, l *nodeLoad, j *job) nodeFig {
	if n.jobLoads.reports {
		return nodeFigure(n.jobLoads.mbps(j.id, profileSmooth), float64(n.jobLoads.latest(j.id).Bytes))
	}
	w := weightOn(j, n.addr)
	bw := share(j.allocMbps*w, l.mbps, float64(len(l.jobs)))
	by := bw
	if tb := l.bytes[j.tier]; tb > 0 {
		by = float64(j.allocBytes) * w / float64(tb)
	}
	var used int64
	if t := n.tier(j.tier); t != nil {
		used = t.UsedBytes
	}
	return nodeFigure(max(n.rx, n.tx)*bw, float64(used)*by)
}

// nodeFigure is a job's figure on one node, each within one node's bounds
// (NaN and negative figures 0).
func nodeFigure(mbps, bytes float64) nodeFig {
	return nodeFig{mbps: wire.ClampMbps(mbps, wire.MaxNodeMbps), bytes: wire.ClampBytes(wire.SatBytes(bytes), wire.MaxNodeBytes)}
}

// weightOn is j's weight on the node at addr (0 when not in its map).
func weightOn(j *job, addr string) float64 {
	for i := range j.nodes {
		if j.nodes[i].Addr == addr {
			return j.nodes[i].Weight
		}
	}
	return 0
}

func (b *profileBook) trace(j *job, now time.Time) *jobTrace {
	t := b.traces[j.id]
	if t == nil {
		start := j.created
		if start.IsZero() || start.After(now) {
			start = now
		}
		t = &jobTrace{start: start, perNode: map[string]nodeFig{}, width: time.Second}
		b.traces[j.id] = t
	}
	return t
}

// add records node addr's figure, a sample of the run, and updates the
// peaks with the job's sum over the nodes of its map (jobSum).
func (t *jobTrace) add(j *job, addr string, f nodeFig, now time.Time) {
	f.n = t.perNode[addr].n + 1
	t.perNode[addr] = f
	if t.base+f.n > t.samples {
		t.samples = t.base + f.n
		t.changed = t.changed || t.samples == ProfileMinSamples
	}
	sum := t.jobSum(j)
	if p := maxPhase(t.peak, sum); p != t.peak {
		t.peak, t.changed = p, true
	}
	i := max(int(now.Sub(t.start)/t.width), 0)
	for i >= profileBuckets {
		t.fold()
		i = int(now.Sub(t.start) / t.width)
	}
	for len(t.buckets) <= i {
		t.buckets = append(t.buckets, state.Phase{})
	}
	if p := maxPhase(t.buckets[i], sum); p != t.buckets[i] {
		t.buckets[i], t.changed = p, true
	}
}

// jobSum is the job's figure: the sum of its nodes' latest figures, held
// within a job's bounds (wire.MaxJobMbps, wire.MaxJobBytes; saturating,
// never wrapping), so that a run is always one the state can store and
// the profile reply carries. It forgets the nodes that left j's map.
func (t *jobTrace) jobSum(j *job) state.Phase {
	var sum state.Phase
	for a, nf := range t.perNode {
		if !j.has(a) {
			delete(t.perNode, a) // moved out of the job's map
			continue
		}
		sum.PeakMbps += nf.mbps
		sum.PeakBytes = wire.SatAdd(sum.PeakBytes, nf.bytes)
	}
	sum.PeakMbps = wire.ClampMbps(sum.PeakMbps, wire.MaxJobMbps)
	sum.PeakBytes = wire.ClampBytes(sum.PeakBytes, wire.MaxJobBytes)
	return sum
}

// fold merges bucket pairs and doubles their width.
func (t *jobTrace) fold() {
	out := t.buckets[:0]
	for i := 0; i < len(t.buckets); i += 2 {
		p := t.buckets[i]
		if i+1 < len(t.buckets) {
			p = maxPhase(p, t.buckets[i+1])
		}
		out = append(out, p)
	}
	t.buckets = out
	t.width *= 2
}

func maxPhase(a, b state.Phase) state.Phase {
	return state.Phase{PeakMbps: max(a.PeakMbps, b.PeakMbps), PeakBytes: max(a.PeakBytes, b.PeakBytes)}
}

// phases folds the buckets into ProfilePhases quarters of [start, end]:
// a bucket counts in the quarter holding its middle.
func (t *jobTrace) phases(end time.Time) []state.Phase {
	life := end.Sub(t.start)
	out := make([]state.Phase, ProfilePhases)
	for i, p := range t.buckets {
		q := 0
		if life > 0 {
			mid := time.Duration(i)*t.width + t.width/2
			q = min(int(float64(mid)/float64(life)*ProfilePhases), ProfilePhases-1)
		}
		out[q] = maxPhase(out[q], p)
	}
	return out
}

// end records a finished job's run under its name and forgets its
// trace. It records nothing when fewer than ProfileMinSamples heartbeats
// of one node had figures that counted, or when the run moved and held
// no value bytes its nodes saw (unused): a job registered and ended
// without use, such as a launch that failed, says nothing of the next
// run's size, and recorded at 0 it would pull the estimate down by half
// (a new user's trial: 1,894 to 812 Mb/s after one such run).
func (b *profileBook) end(j *job, now time.Time) {
	t := b.traces[j.id]
	delete(b.traces, j.id)
	if t == nil || t.samples < ProfileMinSamples || t.unused() {
		return
	}
	run := state.Run{Job: j.id, Ended: now.UTC(), Duration: now.Sub(t.start), PeakMbps: t.peak.PeakMbps,
		PeakBytes: t.peak.PeakBytes, Tier: j.tier, AllocMbps: j.allocMbps, AllocBytes: j.allocBytes, Phases: t.phases(now)}
	b.record(ProfileKey(j.tenant, j.name), run)
}

// unused reports whether the run's nodes saw it move and hold no value
// bytes at all.
func (t *jobTrace) unused() bool { return t.peak.PeakMbps == 0 && t.peak.PeakBytes == 0 }

// record puts run first in name's profile, keeps the newest b.keep runs,
// and evicts the profile updated longest ago beyond b.max names. The
// run's figures are clamped into a job's bounds first (state.Profile.
// Sanitize), so the book holds only what the state stores and the
// job-profile reply carries.
func (b *profileBook) record(name string, run state.Run) {
	run.Sanitize()
	var p *state.Profile
	if e, ok := b.byName[name]; ok {
		p = e.Value.(*state.Profile)
		b.lru.MoveToFront(e)
	} else {
		p = &state.Profile{Name: name}
		b.add(p)
	}
	p.Runs = append([]state.Run{run}, p.Runs...)
	if len(p.Runs) > b.keep {
		p.Runs = p.Runs[:b.keep]
	}
	p.Updated = run.Ended
	b.mark(name)
	b.trim()
}

// add puts p, a name the book does not hold, first.
func (b *profileBook) add(p *state.Profile) {
	b.byName[p.Name] = b.lru.PushFront(p)
	b.perTenant[profileTenant(p.Name)]++
}

// trim evicts profiles beyond b.max names, each the one updated longest
// ago of the tenant that holds the most (profileTenant; without TLS one
// tenant, so the one updated longest ago): a tenant that ends thousands of
// jobs of throwaway names evicts its own profiles, not every other
// tenant's (a hostile trial's did, when eviction took the oldest of all).
func (b *profileBook) trim() {
	for b.lru.Len() > b.max {
		most := 0
		for _, n := range b.perTenant {
			most = max(most, n)
		}
		for e := b.lru.Back(); e != nil; e = e.Prev() {
			old := e.Value.(*state.Profile)
			if t := profileTenant(old.Name); b.perTenant[t] == most {
				b.lru.Remove(e)
				delete(b.byName, old.Name)
				if b.perTenant[t]--; b.perTenant[t] == 0 {
					delete(b.perTenant, t)
				}
				b.mark(old.Name)
				break
			}
		}
	}
}

// load enters stored profiles, keeping the b.max updated last, with
// their figures clamped into a job's bounds (a store written before the
// bounds may hold larger ones); it returns how many figures it clamped,
// whose profiles it marks to be stored again.
func (b *profileBook) load(ps []state.Profile) (fixed int) {
	sorted := append([]state.Profile(nil), ps...)
	sortProfiles(sorted)
	for i := range sorted {
		p := &sorted[i]
		if len(p.Runs) > b.keep {
			p.Runs = p.Runs[:b.keep]
		}
		if n := p.Sanitize(); n > 0 {
			fixed += n
			b.mark(p.Name)
		}
		if e, ok := b.byName[p.Name]; ok {
			b.lru.Remove(e)
			b.perTenant[profileTenant(p.Name)]--
		}
		b.add(p)
	}
	b.trim()
	return fixed
}

// profile returns a copy of name's profile.
func (b *profileBook) profile(name string) (state.Profile, bool) {
	e, ok := b.byName[name]
	if !ok {
		return state.Profile{}, false
	}
	p := *e.Value.(*state.Profile)
	p.Runs = append([]state.Run(nil), p.Runs...)
	return p, true
}

// Learned is the size a profile gives the next job of its name: bandwidth
// in Mb/s and capacity in bytes (the estimate in the profiles doc), and
// the number of runs it comes from.
type Learned struct {
	Mbps  float64
	Bytes int64
	Runs  int
}

// learned estimates name's next size; false without a profile.
func (b *profileBook) learned(name string) (Learned, bool) {
	e, ok := b.byName[name]
	if !ok {
		return Learned{}, false
	}
	return estimate(e.Value.(*state.Profile).Runs), true
}

// EstimateProfile is the estimate in the profiles doc from p's runs: what
// the runs used, before the policy's floor (see Policy.NextSize for what
// a registration gets).
func EstimateProfile(p *state.Profile) Learned { return estimate(p.Runs) }

// NextSize is what the next job of a profile's name registered without
// size hints asks for, and the estimate it comes from. Registration
// allots it at most what the nodes it places the job on have room for
// (Controller.allotLearnedLocked).
type NextSize struct {
	Mbps     float64 // bandwidth, Mb/s: the estimate, at least one lambda's (Policy.PerLambdaMbps)
	Bytes    int64   // capacity, bytes: the estimate
	Estimate Learned // the runs' estimate (EstimateProfile)
}

// NextSize is what registering a job of prof's name without size hints
// asks for under p: the need registration computes (Policy.needFor over
// the profile's estimate, as sizeJobLocked does), so `pocket job profile`
// shows the size registration places; the allotment is that, or less when
// the nodes have less room.
func (p *Policy) NextSize(prof *state.Profile) NextSize {
	l := estimate(prof.Runs)
	need, _, _ := p.needFor(wire.JobHints{}, &l)
	return NextSize{Mbps: need.Mbps, Bytes: need.Bytes, Estimate: l}
}

// estimate weighs runs (newest first) by 2^-i and adds ProfileHeadroom.
// Each run's peaks are taken within a job's bounds (wire.MaxJobMbps,
// wire.MaxJobBytes; NaN and negative peaks as 0), so the estimate is
// finite and its bytes fit int64 (at most ProfileHeadroom x 2^62), whatever
// a store holds.
func estimate(runs []state.Run) Learned {
	var wsum, mbps, bytes float64
	w := 1.0
	for _, r := range runs {
		wsum += w
		mbps += w * wire.ClampMbps(r.PeakMbps, wire.MaxJobMbps)
		bytes += w * float64(wire.ClampBytes(r.PeakBytes, wire.MaxJobBytes))
		w /= 2
	}
	if wsum == 0 {
		return Learned{}
	}
	return Learned{Mbps: ProfileHeadroom * mbps / wsum, Bytes: wire.SatBytes(ProfileHeadroom * bytes / wsum), Runs: len(runs)}
}

// batch adds the changed profiles to sb (puts, or deletes of evicted
// names) and returns the names taken, to mark again if the write fails.
func (b *profileBook) batch(sb *state.Batch) []string {
	if len(b.dirty) == 0 {
		return nil
	}
	names := make([]string, 0, len(b.dirty))
	for name := range b.dirty {
		names = append(names, name)
		if p, ok := b.profile(name); ok {
			sb.PutProfiles = append(sb.PutProfiles, p)
		} else {
			sb.DeleteProfiles = append(sb.DeleteProfiles, name)
		}
	}
	clear(b.dirty)
	return names
}

// remark marks names again after a failed write.
func (b *profileBook) remark(names []string) {
	for _, n := range names {
		b.mark(n)
	}
}

// mark notes that name's record changed, when the book is persisted.
func (b *profileBook) mark(name string) {
	if b.dirty != nil {
		b.dirty[name] = struct{}{}
	}
}

// hinted reports whether h gives a size (bandwidth, lambdas or capacity);
// latency sensitivity alone is not a size.
func hinted(h wire.JobHints) bool {
	return h.PeakMbps > 0 || h.Lambdas > 0 || h.CapacityBytes > 0
}

// sortProfiles orders profiles by Updated, oldest first, then by name.
func sortProfiles(ps []state.Profile) {
	sort.Slice(ps, func(a, b int) bool {
		if !ps[a].Updated.Equal(ps[b].Updated) {
			return ps[a].Updated.Before(ps[b].Updated)
		}
		return ps[a].Name < ps[b].Name
	})
}
