package controller

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/wire"
)

// Drain protocol (see also dataplane/migrate.go and pocket/drain.go):
//
//  1. Drain(addr) marks the node draining. Every job with the node in its
//     map gets a new epoch; the node stays in the maps, marked draining,
//     so clients know to place nothing new on it and where the keys it
//     still holds used to live. The node takes no new jobs.
//  2. The node learns it is draining from its next heartbeat ack; its job
//     table has each of its jobs' epochs, gens and expiries, from which it
//     derives the jobs' tokens itself (it holds the secret): no token
//     travels to it. It refuses puts
//     (CodeDraining) and moves each value to the owner the job's map
//     computes without it, then deletes its own copy. It reports
//     MetricDrainDone = 1 once every value of those jobs has moved.
//  3. The controller retires the node as soon as it reports done, or
//     reports no bytes used, or the deadline passes (a spot instance's
//     notice: whatever is left then is lost, and the log says how much;
//     but values whose owners had no room wait past it for room unless
//     the order said to lose them: holdForRoomLocked), or it dies. Retiring removes the node from every map (a second
//     epoch bump), forgets it, and tells the OnRetire hooks (the
//     autoscaler stops the process through its orchestrator). A node
//     that died while draining, or whose deadline passed, may still have
//     owned values: each job records it as lost (dead.go), so those keys
//     answer wire.CodeLost instead of "not found". A node that moved
//     everything, or held nothing, leaves the maps without a trace.
//
// A job whose map has no other active node when the drain starts is given
// one (the active node with the most spare bandwidth, never one the job
// has lost) so its data has somewhere to go; Drain refuses when there is
// no such node. A job whose other nodes have no room for its values gains
// an active node that has (drain_grow.go), at the order. Drain refuses
// (wire.CodeNoSpace) when the nodes that would take the node's values
// cannot hold them even so (drainOverflowLocked),
// unless the order says to lose what does not fit
// (DrainOptions.LoseOverflow).
//
// Persisted values of ended jobs. A job's values put with persist-after-
// job stay on their nodes after the job ends (the node's job table holds
// it retired), read through the job's credential, whose map names those
// nodes: they cannot move, as no reader would look for them elsewhere. A
// drained node exits, and scale-in drains nodes, so a drain must never
// take them away unasked. Each heartbeat says which ended jobs' values the
// node keeps (wire.Heartbeat.Persisted; a live job's persisted values move
// with its other values). Then:
//
//   - a drain ordered without DrainOptions.DiscardPersisted of a node that
//     keeps such values is refused (wire.CodeConflict), naming the jobs and
//     bytes and what to do: delete the values through the jobs'
//     credentials, or order the drain with the discard;
//   - a drain that finds such values when it would end (a job ended while
//     its node drained, or the node had not reported them yet when the
//     drain began) waits, the node draining and serving them, whatever
//     its deadline, until they are deleted or the drain is ordered again
//     with the discard; it is logged once. Such a held drain no longer
//     counts as running for scale-in (autoscale.go);
//   - scale-in never picks such a node (autoscale.go);
//   - a drain with the discard retires the node as any other, and so does
//     a node that dies while draining; either logs the jobs and bytes
//     destroyed.
//
// The discard, and LoseOverflow, are stored with the draining node
// (state.Node DrainDiscard, DrainLoseOverflow): a controller restarted
// while such a drain runs ends it as ordered. A record written before
// they were stored holds the drain back again, on the side of the values.

// DefaultDrainDeadline is how long a drain may take: the two-minute notice
// a spot instance gets before it is taken away.
const DefaultDrainDeadline = 2 * time.Minute

// Metrics a draining node reports in its heartbeats: the names are
// defined once in wire (wire.MetricDrainDone, wire.MetricDrainLeft), which
// the node's agent sends and `pocket status` reads; these are the same
// constants under the controller's name.
const (
	// MetricDrainDone is 1 once the node has moved every value of the
	// jobs its ack listed.
	MetricDrainDone = wire.MetricDrainDone
	// MetricDrainLeft is the number of values still to move.
	MetricDrainLeft = wire.MetricDrainLeft
	// MetricDrainNoRoom is the number of those whose owners had no room
	// for them in the node's last pass.
	MetricDrainNoRoom = wire.MetricDrainNoRoom
)

// drainState is a draining node's progress.
type drainState struct {
	start    time.Time
	deadline time.Time
	done     bool  // the node reported MetricDrainDone
	empty    bool  // the node reported no bytes used
	left     int64 // values left, as last reported
	noRoom   int64 // of those, values their owners had no room for, as last reported
	discard  bool  // the order said to discard persisted values of ended jobs
	held     bool  // it would end but waits for such values (logged once)
	// loseOverflow: the order said to lose what does not fit; without it
	// a drain past its deadline with values that have no room waits.
	loseOverflow bool
	roomHeld     bool // it waits for room (logged once)
	// knows: the per-job figures the node's latest kept heartbeat brought
	// (node.jobLoads) came from a node that knows it drains, which has
	// refused every put since: a job they list as holding no bytes has
	// nothing left there (leftNothingLocked).
	knows bool
}

// holdForRoomLocked reports whether the draining node n, past its
// deadline, waits for room: its last pass left values whose owners had no
// room for them, and its order did not say to lose them. It logs the wait
// once, and its end. Before, such values were lost at the deadline, also
// when the room check at the order (drainOverflowLocked) had passed on
// figures a burst of puts made stale (a new user's trial: 19 values of a
// job untouched for minutes).
func (c *Controller) holdForRoomLocked(n *node) bool {
	d := n.drain
	return c.latchLocked(&d.roomHeld, !d.loseOverflow && d.noRoom > 0,
		"controller: drain waits past its deadline: the nodes its values go to have no room for them; "+
			"delete values there, or drain again with --lose-overflow to lose them",
		"controller: drain goes on: its values are not waiting for room now",
		"node", n.addr, "no_room", d.noRoom, "values_left", d.left)
}

// persistedReport is what a node's last heartbeat said of the persisted
// values of ended jobs it keeps (wire.Heartbeat.Persisted).
type persistedReport struct {
	largest []wire.HeldJob // the largest, at most wire.MaxPersistedJobs
	jobs    uint64
	bytes   int64
}

// keeps reports whether the node keeps any.
func (p *persistedReport) keeps() bool { return p.bytes > 0 || p.jobs > 0 }

// unlisted is the bytes of the jobs the list leaves out.
func (p *persistedReport) unlisted() int64 {
	left := p.bytes
	for _, h := range p.largest {
		left -= h.Bytes
	}
	return max(left, 0)
}

// String names the jobs (the largest few) and the bytes, for messages.
func (p *persistedReport) String() string {
	const named = 4
	var b strings.Builder
	fmt.Fprintf(&b, "%d ended job(s), %s", p.jobs, units.FormatSize(p.bytes))
	for i, h := range p.largest {
		if i == named {
			break
		}
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s %s", sep, h.Job, units.FormatSize(h.Bytes))
	}
	if more := p.jobs - uint64(min(len(p.largest), named)); more > 0 && len(p.largest) > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	return b.String()
}

// persistedOf is a heartbeat's persisted report.
func persistedOf(hb *wire.Heartbeat) persistedReport {
	return persistedReport{largest: hb.Persisted, jobs: hb.PersistedJobs, bytes: hb.PersistedBytes}
}

// DrainOptions is a drain order's choices.
type DrainOptions struct {
	// Deadline is how long the drain may take (0: DefaultDrainDeadline).
	Deadline time.Duration
	// DiscardPersisted lets the drain go ahead on a node that keeps
	// persist-after-job values of ended jobs: they are destroyed when it
	// leaves. Without it such a drain is refused, or waits (see above).
	DiscardPersisted bool
	// LoseOverflow lets the drain go ahead when the nodes that would take
	// the node's values cannot hold them all (drainOverflowLocked): what
	// does not fit is lost at the deadline. Without it such a drain is
	// refused (wire.CodeNoSpace). A host about to be taken away (pocket
	// spot) drains with it: moving what fits loses less than nothing.
	LoseOverflow bool

	// fill is how full a node taking the values may end, a fraction of
	// its tier's capacity (0: 1, the whole): scale-in drains within the
	// band's middle.
	fill float64
}

// flags is o's choices as token.DrainOrderProof's flags.
func (o DrainOptions) flags() uint64 {
	var f uint64
	if o.DiscardPersisted {
		f |= token.DrainDiscard
	}
	if o.LoseOverflow {
		f |= token.DrainLoseOverflow
	}
	return f
}

// errKeepsPersisted is the refusal of a drain of a node that keeps
// persisted values of ended jobs. It names the flag of `pocket node
// drain`, --discard-persisted; in Go the option is
// DrainOptions.DiscardPersisted.
//
// The values are those of the node's last heartbeat (every beat, 1 s by
// default): ones deleted since still count until the next, which the
// refusal says. Before, a new user's trial deleted them as told, drained
// at once, and was refused with the same list, as if the delete had
// failed.
func errKeepsPersisted(addr string, p *persistedReport, draining bool, beat time.Duration) error {
	what := "draining it would destroy them when it leaves"
	if draining {
		what = "it is draining, and its drain waits for them"
	}
	return wire.Errorf(wire.CodeConflict, "node %s keeps persist-after-job values of %s, as its last heartbeat reported them "+
		"(every %v: values deleted since still count until the next); %s. "+
		"Delete them with each job's credential (POCKET_CREDENTIAL=... pocket rm JOB KEY, or pocket rm --all JOB for all of them and any chunks of large values no key names; pocket job credential JOB "+
		"prints it from the job's token, also after the job ended), then drain again after the next heartbeat, "+
		"or drain with --discard-persisted to destroy them",
		addr, p, beat, what)
}

// Drain starts draining the node at addr, to leave within deadline (0:
// DefaultDrainDeadline). It returns the deadline applied. Draining an
// already draining node keeps the earlier deadline unless the new one is
// sooner. With Config.Store the change is saved before Drain returns (so
// `pocket node drain`'s answer, and scale-in's, survive a kill -9); if
// the store fails, the error is CodeUnavailable and the node drains all
// the same (its state is saved again at the sweeper's next tick).
//
// A node that keeps persist-after-job values of ended jobs is not drained:
// the error (wire.CodeConflict) names the jobs and bytes and what to do
// (DrainWith with DiscardPersisted goes ahead).
func (c *Controller) Drain(addr string, deadline time.Duration) (time.Duration, error) {
	return c.DrainWith(addr, DrainOptions{Deadline: deadline})
}

// DrainWith is Drain with options: with o.DiscardPersisted the drain goes
// ahead on a node that keeps persisted values of ended jobs (also when it
// is draining already, held for them), and they are destroyed when it
// leaves.
func (c *Controller) DrainWith(addr string, o DrainOptions) (time.Duration, error) {
	if o.Deadline <= 0 {
		o.Deadline = DefaultDrainDeadline
	}
	d, err := c.drain(addr, o)
	if err != nil {
		// The order's caller sees the refusal; the log keeps it too (a
		// new user found the controller's log silent about it).
		c.cfg.Logger.Info("controller: drain refused", "node", addr, "err", err)
		return 0, err
	}
	return d, c.flush() // after c.mu: the store's lock comes first (doc.go)
}

// drain is DrainWith's change of the registry, under c.mu.
func (c *Controller) drain(addr string, o DrainOptions) (time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[addr]
	if !ok {
		return 0, wire.Errorf(wire.CodeNotFound, "node %s is not registered", addr)
	}
	now, deadline := time.Now(), o.Deadline
	switch n.state {
	case wire.NodeDead:
		return 0, wire.Errorf(wire.CodeUnavailable, "node %s is dead: nothing can be moved off it", addr)
	case wire.NodeDraining:
		// A refused order changes nothing: the check comes first.
		discard := o.DiscardPersisted || n.drain != nil && n.drain.discard
		if !discard && n.persisted.keeps() {
			return 0, errKeepsPersisted(addr, &n.persisted, true, c.cfg.HeartbeatInterval)
		}
		if n.drain == nil {
			n.drain = &drainState{start: now, deadline: now.Add(deadline)}
		} else if d := now.Add(deadline); d.Before(n.drain.deadline) {
			n.drain.deadline = d
		}
		n.drain.discard = discard
		n.drain.loseOverflow = n.drain.loseOverflow || o.LoseOverflow
		c.dirtyNodesLocked()
		// A drain held past its deadline (for persisted values) has no
		// time left, not a negative time, which no reply may carry.
		return max(n.drain.deadline.Sub(now), 0), nil
	}
	if !o.DiscardPersisted && n.persisted.keeps() {
		return 0, errKeepsPersisted(addr, &n.persisted, false, c.cfg.HeartbeatInterval)
	}
	if j, why := c.receivingLocked(addr); j != nil {
		return 0, wire.Errorf(wire.CodeBusy, "cannot drain node %s now: it takes values of job %s (%s), which would move twice "+
			"and be, meanwhile, where no reader looks; drain it once that change has ended (pocket status shows the job's map)", addr, j.id, why)
	}
	fill := o.fill
	if fill <= 0 {
		fill = 1
	}
	var plan drainPlan
	over := c.overflowLocked(addr, fill, nil)
	if over != nil && o.fill <= 0 {
		// An operator's order; scale-in (o.fill) drains no node whose
		// values need more nodes.
		plan = c.planDrainGrowthLocked(addr, fill)
		over = c.overflowLocked(addr, fill, plan)
	}
	if over != nil && !o.LoseOverflow {
		note := ""
		if o.fill <= 0 {
			note = c.growthNoteLocked(addr, over, plan)
		}
		return 0, wire.Errorf(wire.CodeNoSpace, "cannot drain node %s: %s%s; "+
			"delete values to make room there, start another node, or wait for the drains running to end, then drain again "+
			"(values move to their jobs' other nodes, and a job whose nodes have no room gains an active node that has), "+
			"or drain with --lose-overflow to move what fits and lose the rest at the deadline", addr, over.message(fill), note)
	}
	if err := c.adoptOrphansLocked(addr); err != nil {
		return 0, err
	}
	c.growForDrainLocked(plan, addr, now)
	n.drain = &drainState{start: now, deadline: now.Add(deadline), discard: o.DiscardPersisted, loseOverflow: o.LoseOverflow}
	n.drainEnd = nil // the record keeps the latest drain's end
	why := fmt.Sprintf("drain requested, deadline %v", deadline)
	if o.DiscardPersisted {
		why += ", persisted values of ended jobs discarded"
	}
	c.setStateLocked(n, wire.NodeDraining, why)
	return deadline, nil
}

// adoptOrphansLocked gives every job that has addr as its only active node
// another active node, so the drained data has an owner. When a job has
// none to take, it refuses before any map changes (a hostile review: a
// refused drain had given an earlier job a node, at a new epoch, that
// nothing then filled).
func (c *Controller) adoptOrphansLocked(addr string) error {
	l := c.loads[addr]
	if l == nil {
		return nil
	}
	var orphans []*job
	for j := range l.jobs {
		if c.otherActiveLocked(j, addr) {
			continue
		}
		if _, ok := c.adoptCandidateLocked(j, addr, nil); !ok {
			return c.errNowhereToGoLocked(addr, j)
		}
		orphans = append(orphans, j)
	}
	sort.Slice(orphans, func(a, b int) bool { return orphans[a].id < orphans[b].id })
	for _, j := range orphans {
		to, _ := c.adoptCandidateLocked(j, addr, nil)
		w := 0.0
		for _, mn := range j.nodes {
			if mn.Addr == addr {
				w = mn.Weight
			}
		}
		delete(j.lostClean, to) // it holds the job's data from now on
		nodes := append(append([]wire.MapNode(nil), j.nodes...), wire.MapNode{Addr: to, Weight: w, State: wire.NodeActive, Since: wire.SinceNotYet})
		c.placeLocked(j, nodes)
		c.bumpLocked(j)
		c.cfg.Logger.Info("controller: job gets a node to take the data of a draining one", "job", j.id, "node", to, "draining", addr)
	}
	return nil
}

// drainOverflowLocked says which node would overflow if the node at x
// drained ("" when none would), beside the nodes draining already, whose
// values still to move go to the same nodes. Each job's bytes on a
// leaving node (jobBytesLocked, its latest figure) go to the job's active
// nodes that are not leaving, by weight, or, with none, to the node
// adoptOrphansLocked would give it; a node taking them may end with at
// most limit (a fraction) of its tier's capacity used, by its latest
// report. A drain that overflows a node fails its moves there ("no
// space") and loses, at its deadline, what did not fit: before, such a
// drain was accepted like any other, and then (a hostile review) one
// checked alone while another drain still sent its values to the same
// node.
func (c *Controller) drainOverflowLocked(x string, limit float64) string {
	return c.overflowLocked(x, limit, nil).message(limit)
}

// overflow is a node whose tier the values of the leaving nodes would
// fill past a limit (drainOverflowLocked).
type overflow struct {
	at             nodeKind
	in             float64 // the bytes it would take
	used, capacity int64   // its tier's, by its latest report
	drains         int     // drains running counted beside the one checked
}

// message says what overflows, for the refusal ("" for none).
func (o *overflow) message(limit float64) string {
	if o == nil {
		return ""
	}
	return fmt.Sprintf("its values%s would take %s on node %s, whose %s tier has %s of %s free%s",
		besideDrains(o.drains), units.FormatSize(wire.SatBytes(o.in)), o.at.addr, kindName(o.at.kind),
		units.FormatSize(max(o.capacity-o.used, 0)), units.FormatSize(o.capacity), underLimit(limit))
}

// overflowLocked is drainOverflowLocked with the jobs of plan grown as it
// plans (drain_grow.go): nil when nothing overflows.
func (c *Controller) overflowLocked(x string, limit float64, plan drainPlan) *overflow {
	leaving := c.leavingLocked(x)
	in := map[nodeKind]float64{}
	for addr := range leaving {
		c.addOutflowLocked(addr, leaving, plan, in)
	}
	for j, jn := range plan {
		c.addGrownInflowLocked(j, jn, leaving, in)
	}
	ks := make([]nodeKind, 0, len(in))
	for k := range in {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(a, b int) bool {
		return ks[a].addr < ks[b].addr || ks[a].addr == ks[b].addr && ks[a].kind < ks[b].kind
	})
	for _, k := range ks {
		var used, capacity int64
		if t := c.nodes[k.addr].tier(k.kind); t != nil {
			used, capacity = t.UsedBytes, t.CapacityBytes
		}
		if float64(used)+in[k] > limit*float64(capacity) {
			return &overflow{at: k, in: in[k], used: used, capacity: capacity, drains: len(leaving) - 1}
		}
	}
	return nil
}

// leavingLocked is x and the nodes draining now.
func (c *Controller) leavingLocked(x string) map[string]bool {
	leaving := map[string]bool{x: true}
	for addr, n := range c.nodes {
		if n.state == wire.NodeDraining {
			leaving[addr] = true
		}
	}
	return leaving
}

// addOutflowLocked adds to in, per receiving node and tier, the bytes the
// leaving node addr sends its jobs' receivers (see drainOverflowLocked);
// the jobs of plan are addGrownInflowLocked's.
func (c *Controller) addOutflowLocked(addr string, leaving map[string]bool, plan drainPlan, in map[nodeKind]float64) {
	l, n := c.loads[addr], c.nodes[addr]
	if l == nil || n == nil {
		return
	}
	for j := range l.jobs {
		t := n.tier(j.tier)
		if _, grows := plan[j]; grows || t == nil {
			continue
		}
		var to []wire.MapNode
		var wsum float64
		var me wire.MapNode
		for _, mn := range j.nodes {
			switch m, ok := c.nodes[mn.Addr]; {
			case mn.Addr == addr:
				me = mn
			case ok && m.state == wire.NodeActive && !leaving[mn.Addr]:
				to, wsum = append(to, mn), wsum+mn.Weight
			}
		}
		b := c.jobBytesLocked(j, n, me, float64(t.UsedBytes))
		if b <= 0 {
			continue
		}
		if wsum <= 0 {
			a, ok := c.adoptCandidateLocked(j, addr, leaving)
			if !ok {
				continue // adoptOrphansLocked refuses the drain, naming the job
			}
			to, wsum = []wire.MapNode{{Addr: a, Weight: 1}}, 1
		}
		for _, mn := range to {
			in[nodeKind{mn.Addr, j.tier}] += b * mn.Weight / wsum
		}
	}
}

// besideDrains says, for messages, that k other drains' values count.
func besideDrains(k int) string {
	if k == 0 {
		return ""
	}
	return fmt.Sprintf(", with the values %d node(s) draining now still send,", k)
}

// underLimit names a fill limit below the whole capacity for messages.
func underLimit(limit float64) string {
	if limit >= 1 {
		return ""
	}
	return fmt.Sprintf(" (up to %.0f%% full)", 100*limit)
}

// errNowhereToGoLocked refuses the drain of addr, the only active node
// of j's map, when no other active node of j's tier can take j's data,
// and says what lets the drain go ahead: another node of the tier, or the
// job's end. When active nodes of the tier were passed over because j
// lost them (adoptCandidateLocked), it says so.
func (c *Controller) errNowhereToGoLocked(addr string, j *job) error {
	tier := kindName(j.tier)
	lost := ""
	for _, cand := range c.candidatesLocked(j.tier) {
		if cand.addr != addr && c.lostByLocked(j, cand.addr) {
			lost = " (nodes the job lost do not count until they restart: what they hold of it is stale)"
			break
		}
	}
	return wire.Errorf(wire.CodeUnavailable, "cannot drain node %s: it holds the data of job %s, and no other active %s node can take it%s; "+
		"start another %s node (pocket node --controller ...), or deregister the job (pocket job deregister %s: its data is dropped but for values put with --persist), then drain again",
		addr, j.id, tier, lost, tier, j.id)
}

// adoptCandidateLocked returns the address of the active node of j's
// tier, other than the draining addr and the nodes j has lost (whatever
// they still hold of j is stale) but for those known to hold none of it
// (j.lostClean: restarted since, or dropped it: dead.go), that best takes the draining node's
// share of j's allotted bytes (adoptBetter); false when there is none.
// Before, a lost node that had restarted did not count, and after a few
// restarts of pocket up every node was on every job's lost list: no node
// could be drained beside two empty ones (a new user's re-check). A node
// restored from the state and not heard from since does not count.
func (c *Controller) adoptCandidateLocked(j *job, addr string, skip map[string]bool) (string, bool) {
	var me wire.MapNode
	for _, mn := range j.nodes {
		if mn.Addr == addr {
			me = mn
		}
	}
	// Its share of the allotment, or what it holds there if more: a job
	// without a capacity hint has no allotted bytes, and its 600 MiB went
	// to the node with the most spare bandwidth, full or not.
	need := me.Weight * float64(j.allocBytes)
	if n := c.nodes[addr]; n != nil {
		if t := n.tier(j.tier); t != nil {
			need = max(need, c.jobBytesLocked(j, n, me, float64(t.UsedBytes)))
		}
	}
	cands := c.candidatesLocked(j.tier)
	best := -1
	for i := range cands {
		if cands[i].addr == addr || skip[cands[i].addr] || cands[i].unheard || c.lostByLocked(j, cands[i].addr) && !j.lostClean[cands[i].addr] {
			continue
		}
		if best < 0 || adoptBetter(&cands[i], &cands[best], wire.SatBytes(need)) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return cands[best].addr, true
}

// adoptBetter orders the candidates to take need bytes of a job whose
// node leaves (a drain, a loss): a node whose spare bytes hold them (and
// at least one byte) first, the most spare bandwidth first among those;
// then the most spare bytes. A node's share of a job is capacity it must
// hold, so the most spare bandwidth alone (as before) gave a drained
// node's 8 GiB to a node with 1 GiB spare next to one with 16.
func adoptBetter(a, b *candidate, need int64) bool {
	fa, fb := a.spareBytes >= need && a.spareBytes > 0, b.spareBytes >= need && b.spareBytes > 0
	switch {
	case fa != fb:
		return fa
	case fa:
		return better(a, b, true)
	case a.spareBytes != b.spareBytes:
		return a.spareBytes > b.spareBytes
	}
	return better(a, b, true)
}

func (c *Controller) otherActiveLocked(j *job, addr string) bool {
	for _, mn := range j.nodes {
		if mn.Addr == addr {
			continue
		}
		if n, ok := c.nodes[mn.Addr]; ok && n.state == wire.NodeActive {
			return true
		}
	}
	return false
}

// drainReportLocked records a draining node's progress from a heartbeat;
// kept says the heartbeat's per-job figures were kept (node.jobLoads).
func (c *Controller) drainReportLocked(n *node, hb *wire.Heartbeat, kept bool) {
	d := n.drain
	if d == nil || n.state != wire.NodeDraining {
		return
	}
	var used int64
	for _, t := range hb.Tiers {
		used += t.UsedBytes
	}
	// Empty counts only in a report of a node that knows it drains (its
	// drainer's figures ride along): such a node refuses new puts. A
	// report made before the node heard of its drain says nothing of the
	// puts it takes meanwhile: before, a node frozen as its drain began
	// was retired 'empty' 12 ms after it resumed and acknowledged 82
	// queued puts (a hostile re-check; its mover happened to move them
	// before it exited).
	draining := false
	for _, m := range hb.Metrics {
		switch m.Name {
		case MetricDrainDone:
			d.done, draining = m.Value >= 1, true
		case MetricDrainLeft:
			d.left = int64(m.Value)
		case MetricDrainNoRoom:
			d.noRoom = int64(m.Value)
		}
	}
	d.empty = draining && len(hb.Tiers) > 0 && used == 0
	if kept {
		d.knows = draining
	}
}

// leftNothingLocked reports whether job j has nothing left on the
// draining node n: the node's latest per-job figures, from a heartbeat
// made once it knew it drains (so it has taken no put since), list j as
// holding no bytes there. A job they do not list (a node with more jobs
// than wire.MaxJobLoads lists the busiest; values put before the node
// heard of the job are not counted per job) may hold some.
func (c *Controller) leftNothingLocked(n *node, j *job) bool {
	return n.drain != nil && n.drain.knows && n.jobLoads.heldNone(j.id)
}

// RetireHook is told that a drained node has left the cluster.
type RetireHook func(addr string, why string)

// checkDrains retires every draining node that is done, empty, dead or
// out of time, and returns the retired nodes with the reason, for the
// hooks to run without the lock.
func (c *Controller) checkDrainsLocked(now time.Time) map[string]string {
	var out map[string]string
	for addr, n := range c.nodes {
		d := n.drain
		if d == nil {
			continue
		}
		why, lost := "", false
		switch {
		case n.state == wire.NodeDead && n.silent && now.Before(n.leaseEnd):
			// Silent, it may be frozen, not dead, still serving within
			// the lease an ack before its drain gave it: not lost before
			// that ends. Before, a node frozen as its drain began was
			// retired at once and acknowledged 200 queued puts when it
			// resumed, all then lost (a hostile trial). A node marked
			// dead by request is taken at its operator's word.
			continue
		case n.state == wire.NodeDead && c.lossHeldLocked(now, c.cfg.DeadAfter):
			// Every node dead, or the first just heard again: the
			// controller may be the one cut off (lossHeldLocked). Before,
			// a drain ordered as every node went silent retired its node
			// as lost 32 s later (a hostile trial: 259 values).
			continue
		case n.state == wire.NodeDead && (d.done || d.empty):
			// It reported its data moved, then went silent before it had
			// confirmed the maps it leaves (below): nothing of it is lost.
			// (A review: retired "died while draining" since that wait.)
			why = fmt.Sprintf("moved all its data in %v, then went silent", now.Sub(d.start).Round(time.Millisecond))
		case n.state == wire.NodeDead:
			why, lost = "died while draining", true
		case (d.done || d.empty) && c.leavingUnconfirmedLocked(n, now):
			// Not before it has confirmed the maps it leaves: retired
			// now, its mark would hold them back for its lease.
			continue
		case d.done:
			why = fmt.Sprintf("moved all its data in %v", now.Sub(d.start).Round(time.Millisecond))
		case d.empty:
			why = fmt.Sprintf("empty after %v", now.Sub(d.start).Round(time.Millisecond))
		case now.After(d.deadline) && (n.unheard || c.holdForRoomLocked(n)):
			// Not before a node restored from the state has reported
			// (its drain's figures are this run's, none yet): a hostile
			// re-check's restart retired a held drain as lost 0.75 s in.
			continue
		case now.After(d.deadline):
			why, lost = fmt.Sprintf("drain deadline passed with %d value(s) not moved (lost)", d.left), true
		default:
			continue
		}
		// A dead node is not held: what it keeps is out of reach.
		if n.state != wire.NodeDead && c.holdDrainLocked(n) {
			if !lost {
				c.releaseHeldLocked(n, now)
			}
			continue
		}
		if n.persisted.keeps() {
			c.cfg.Logger.Warn("controller: drained node leaves with persisted values of ended jobs", "node", addr,
				"why", why, "discard_ordered", n.drain.discard, "persisted", n.persisted.String())
		}
		c.retireLocked(n, now, why, lost)
		if out == nil {
			out = map[string]string{}
		}
		out[addr] = why
	}
	return out
}

// leavingUnconfirmedLocked reports whether a map n leaves still waits
// for n to confirm the epoch that began it (ownerBehindLocked). A node
// retired so keeps its mark until its lease ends (noteLosingLocked), and
// the map without it is held back that long: after a controller restart
// in the middle of a drain (whose marks begin with the restore), a node
// that reported its drain done in its first heartbeat, its job table
// still the earlier run's, was retired at once and its jobs' maps held
// back about 30 s, while their other nodes refused the map before as
// stale (an HA trial: kill -9 of the active controller 1 s into a drain).
// Its next heartbeat or two confirm.
func (c *Controller) leavingUnconfirmedLocked(n *node, now time.Time) bool {
	l := c.loads[n.addr]
	if l == nil {
		return false
	}
	for j := range l.jobs {
		if m, ok := j.losing[n.addr]; ok && n.since < m.rev && now.Before(m.leaseEnd) {
			return true
		}
	}
	return false
}

// holdDrainLocked reports whether a drain that would end waits for the
// persisted values of ended jobs its node keeps (a drain not told to
// discard them), and logs it once. A held drain goes on when the values
// are gone or the drain is ordered again with the discard.
func (c *Controller) holdDrainLocked(n *node) bool {
	d := n.drain
	return c.latchLocked(&d.held, !d.discard && n.persisted.keeps(),
		"controller: drain waits: the node keeps persist-after-job values of ended jobs, which leaving would destroy; "+
			"delete them with each job's credential (pocket job credential JOB prints it from the job's token), or drain again with --discard-persisted",
		"controller: drain goes on: the node keeps no persisted values of ended jobs now",
		"node", n.addr, "persisted", n.persisted.String(), "values_left", d.left)
}

// latchLocked sets *held to hold and returns it, logging a change: begins
// as a warning (with attrs) when the hold begins, ends when it ends.
func (c *Controller) latchLocked(held *bool, hold bool, begins, ends string, attrs ...any) bool {
	switch {
	case hold && !*held:
		c.cfg.Logger.Warn(begins, attrs...)
	case !hold && *held:
		c.cfg.Logger.Info(ends, attrs[:2]...) // the node
	}
	*held = hold
	return hold
}

// retireLocked removes a node from every job's map and from the registry.
// With lost (the node may still have owned values: it died, or its
// deadline passed) each job records it as lost (loseNodeLocked), so its
// keys answer "lost", but for a job the node's figures show had nothing
// left there (leftNothingLocked), which leaves it as from a drain that
// ended; a job that has nowhere else to go (loseNodeLocked refuses)
// loses it from its map all the same. Before, every job on the node
// recorded it lost: a hostile trial's tenant left one unconfirmed chunk
// on a node drained with a 20 s deadline, and every other job there,
// whose values had all moved, answered "lost" for keys it never wrote
// and listed partially for the rest of its life.
func (c *Controller) retireLocked(n *node, now time.Time, why string, lost bool) {
	var jobs []*job
	if l := c.loads[n.addr]; l != nil {
		for j := range l.jobs {
			jobs = append(jobs, j)
		}
	}
	for _, j := range jobs {
		c.leaveMapLocked(j, n.addr, now, lost && !c.leftNothingLocked(n, j))
	}
	c.endedRetireLocked(n, "the node was retired: "+why, lost)
	delete(c.nodes, n.addr)
	c.gone[n.addr] = retiredNode{at: now, inc: n.incarnation, why: why, lost: lost}
	c.drainEndedLocked(wire.RetiredNode{Addr: n.addr, At: now, Why: why, Lost: lost})
	c.dirtyNodesLocked()
	c.cfg.Logger.Info("controller: node retired", "node", n.addr, "why", why)
}

// leaveMapLocked takes the node at addr out of j's map as it leaves the
// cluster, or a held drain releases the job (releaseHeldLocked): with
// lost the job records it lost (loseNodeLocked), unless the job has
// nowhere else to go; without, as from a drain that moved the job's
// values.
func (c *Controller) leaveMapLocked(j *job, addr string, now time.Time, lost bool) {
	if lost && c.loseNodeLocked(j, addr, false) {
		return
	}
	if !lost {
		j.drainedAt = now // its nodes left may not carry its allotment (refill.go)
	}
	j.lostOne()
	kept := make([]wire.MapNode, 0, len(j.nodes))
	for _, mn := range j.nodes {
		if mn.Addr != addr {
			kept = append(kept, mn)
		}
	}
	c.settleDrainedLocked(j, kept, j.epoch+1) // the epoch bumpLocked publishes below
	c.renormalizeLocked(j, kept)
	c.bumpLocked(j)
}

// releaseHeldLocked takes a drained node whose drain is held for the
// persisted values of ended jobs (holdDrainLocked) out of the maps of the
// live jobs it is still in, whose values it has moved: each as its
// retirement would. Before, their maps kept it draining for as long as
// the hold lasted, and a job whose map has a draining node neither grows
// nor shrinks: a hostile trial's tenant, deregistering a job with
// persisted values as soon as its map showed a node draining, froze
// another tenant's job at one node under a load that had grown it within
// 5 s before. A job with no other node keeps it (its retirement gives
// the job another).
func (c *Controller) releaseHeldLocked(n *node, now time.Time) {
	l := c.loads[n.addr]
	if l == nil {
		return
	}
	for j := range l.jobs {
		if c.otherActiveLocked(j, n.addr) {
			c.leaveMapLocked(j, n.addr, now, false)
		}
	}
}

// settleDrainedLocked gives the nodes of j's map nodes (the map being
// made as a node leaves it, retired or lost) that took a draining
// node's share (adoptOrphansLocked: Since wire.SinceNotYet) the epoch
// from which they hold it, once no node of nodes still drains from the
// cluster; the node joining by j's own change is its change's end's to
// settle (finishMoveLocked).
func (c *Controller) settleDrainedLocked(j *job, nodes []wire.MapNode, epoch uint64) {
	for _, mn := range nodes {
		if n, ok := c.nodes[mn.Addr]; ok && n.state == wire.NodeDraining {
			return
		}
	}
	for i := range nodes {
		joining := j.move != nil && j.move.role == wire.NodeJoining && j.move.addr == nodes[i].Addr
		if nodes[i].Since == wire.SinceNotYet && !joining {
			nodes[i].Since = epoch
		}
	}
}

// stamp formats t for an error message: UTC, to the second.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// normalize rescales weights to sum to 1. Placement picks the highest
// score, and scaling every weight by one factor keeps every key's owner.
func normalize(ns []wire.MapNode) {
	sum := weightSum(ns)
	if sum <= 0 {
		return
	}
	for i := range ns {
		ns[i].Weight /= sum
	}
}

// drainEndedLocked records how a drain ended (its node retired, or
// restarted while draining), for the status (wire.ClusterStatus.Retired):
// the latest wire.MaxStatusRetired. Both are saved with the node's record
// (state.Node GoneWhy, DrainEnded) and listed again after a restart
// (restoreNodes).
func (c *Controller) drainEndedLocked(r wire.RetiredNode) {
	if len(c.drainsEnded) == wire.MaxStatusRetired {
		c.drainsEnded = append(c.drainsEnded[:0], c.drainsEnded[1:]...)
	}
	c.drainsEnded = append(c.drainsEnded, r)
}

// sortDrainsEndedLocked orders the drain ends restored from the state by
// time and keeps the latest wire.MaxStatusRetired.
func (c *Controller) sortDrainsEndedLocked() {
	sort.SliceStable(c.drainsEnded, func(a, b int) bool { return c.drainsEnded[a].At.Before(c.drainsEnded[b].At) })
	if k := len(c.drainsEnded) - wire.MaxStatusRetired; k > 0 {
		c.drainsEnded = append(c.drainsEnded[:0], c.drainsEnded[k:]...)
	}
}

// retiredNode is a node a drain retired not long ago (Controller.gone).
type retiredNode struct {
	at  time.Time // when it left
	inc uint64    // its process's incarnation (0: unknown)
	// why it left, and whether values it held were left unmoved (lost:
	// it died while draining, or its deadline passed), for the status
	// (wire.RetiredNode) and goneLocked; saved with the state
	// (state.Node.GoneWhy, GoneLost).
	why  string
	lost bool
}

// goneLocked refuses a registration at the address of a node that drained
// and left less than Config.ForgetAfter ago (the answers name times, not
// durations, so a node's retries see one message and log it once):
//
//   - from the retired process itself (its incarnation), or from a node
//     that sends none (an older agent, which retries whatever it is told):
//     wire.CodeDraining, which tells the node it was retired and should
//     stop (metaclient.ErrRetired: `pocket node` exits, for good). It is
//     answered only once the retirement is saved (RegisterNode flushes
//     first; while the store fails the node is told CodeUnavailable);
//   - from any other process, including one whose incarnation cannot be
//     compared because the retired node's is unknown (a retirement
//     recorded by a controller from before incarnations were kept with
//     it): wire.CodeUnavailable, which its agent retries until the
//     controller forgets the retired node and takes the new one. Telling
//     a process to stop is final, so it is said only to the one known to
//     be retired.
//
// It reports clean when it takes a new process (another incarnation) at
// the address of a node retired as lost: it restarted, empty, so the jobs
// that lost it may take it back (cleanReturnLocked).
func (c *Controller) goneLocked(reg *wire.NodeRegister) (clean bool, err error) {
	g, ok := c.gone[reg.Addr]
	if !ok {
		return false, nil
	}
	if g.lost && g.inc != 0 && reg.Incarnation != 0 && reg.Incarnation != g.inc {
		// Its drain did not end with its data moved (it died, or ran out
		// of time): a new process there is a restart, taken at once as
		// any restarted node is. Before, it was refused for ForgetAfter.
		delete(c.gone, reg.Addr)
		return true, nil
	}
	if reg.Incarnation != 0 && reg.Incarnation != g.inc {
		return false, wire.Errorf(wire.CodeUnavailable, "node %s (incarnation %d) was drained and retired at %s; a new node may register there from %s: retry then",
			reg.Addr, g.inc, stamp(g.at), stamp(g.at.Add(c.cfg.ForgetAfter)))
	}
	if g.lost {
		return false, wire.Errorf(wire.CodeDraining, "node %s was retired at %s: it must stop serving (%s: what it held that had "+
			"not moved is lost); a new node process may register at that address at once", reg.Addr, stamp(g.at), g.why)
	}
	return false, wire.Errorf(wire.CodeDraining, "node %s was drained and retired at %s: it must stop serving (its data moved to the jobs' other nodes); "+
		"a new node may register at that address from %s", reg.Addr, stamp(g.at), stamp(g.at.Add(c.cfg.ForgetAfter)))
}

// life is how long a retired node is remembered: Config.ForgetAfter, but
// Config.ForgetLostAfter for one retired with values unmoved (it died
// while draining: it may be a frozen or cut-off process) whose
// incarnation is known. Such a process coming back is told to stop
// serving, and dies with what it holds; a new process there registers at
// once (goneLocked). Before, after a minute it registered again as an
// unknown node, and kept the persist-after-job values of the jobs that
// had ended meanwhile for good (a hostile trial: 80 KiB, refusing its
// drains 15 minutes on).
func (g retiredNode) life(cfg *Config) time.Duration {
	if g.lost && g.inc != 0 {
		return max(cfg.ForgetAfter, cfg.ForgetLostAfter)
	}
	return cfg.ForgetAfter
}

// ForgetRetired lets a new node register at the address of a node a drain
// retired less than Config.ForgetAfter ago, whose process is known to have
// ended: an orchestrator stopped it, or has just started a new node at
// that address (the old one's listener is gone). The kernel hands out
// freed ports again, and a new local node on a retired node's port must
// not be refused: before, `pocket up` restarted on its data directory
// within a minute of a drain failed ("1 of 2 nodes registered"), its new
// node at the drained node's --node-ports port refused until then (a new
// user's trial).
func (c *Controller) ForgetRetired(addr string) {
	c.mu.Lock()
	delete(c.gone, addr)
	c.mu.Unlock()
}

// OnRetire registers a hook run (without the controller's lock, on the
// sweeper's goroutine) for every node a drain retires, once the
// retirement is saved (Config.Store): the hook stops the node, which
// cannot be taken back, so it waits while the store fails.
func (c *Controller) OnRetire(h RetireHook) {
	c.mu.Lock()
	c.retireHooks = append(c.retireHooks, h)
	c.mu.Unlock()
}

// retirement is a retired node whose hooks are due (Controller.retired).
type retirement struct{ addr, why string }

// drainTick retires finished drains, saves the retirements and runs the
// hooks of every retirement saved so far: a retirement the write failed to
// save has its hooks run at the tick after the write that saves it.
func (c *Controller) drainTick(now time.Time) {
	c.mu.Lock()
	retired := c.checkDrainsLocked(now)
	for addr, why := range retired {
		c.afterSaveLocked(func() {
			c.mu.Lock()
			c.retired = append(c.retired, retirement{addr: addr, why: why})
			c.mu.Unlock()
		})
	}
	c.mu.Unlock()
	if len(retired) > 0 {
		_ = c.flush() // logged; retried at the next tick
	}
	c.mu.Lock()
	due := c.retired
	c.retired = nil
	hooks := append([]RetireHook(nil), c.retireHooks...)
	c.mu.Unlock()
	for _, r := range due {
		for _, h := range hooks {
			h(r.addr, r.why)
		}
	}
}

// drainRequest checks a drain order's proof, which covers the
// connection's challenge nonce (a node's proof never passes), and starts
// the drain.
func (c *Controller) drainRequest(nonce []byte, m *wire.DrainNode) (*wire.DrainNode, error) {
	if len(nonce) == 0 {
		return nil, errNoChallenge
	}
	o := DrainOptions{Deadline: m.Deadline, DiscardPersisted: m.DiscardPersisted, LoseOverflow: m.LoseOverflow}
	if !token.VerifyDrainOrder(c.cfg.Secret, nonce, m.Addr, m.Deadline.Milliseconds(), o.flags(), m.Proof) {
		return nil, wire.Errorf(wire.CodeBadToken, "drain %s: proof does not match the cluster secret and this connection's challenge", m.Addr)
	}
	d, err := c.DrainWith(m.Addr, o)
	if err != nil {
		return nil, err
	}
	return &wire.DrainNode{Addr: m.Addr, Deadline: d}, nil
}
