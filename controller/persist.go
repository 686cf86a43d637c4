package controller

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// Durable state (Config.Store, package controller/state).
//
// The registries live in memory, as without a store; the store gets a copy
// of every record a change touched, written before anything derived from
// it leaves the controller. Changes mark what they touched under
// Controller.mu (a job id in persister.jobs, the node registry in
// persister.nodes); flush, called by every exported operation after it
// releases Controller.mu and before it answers, takes the marks under the
// lock, builds one state.Batch from the registries' current values and
// applies it. Flushes are serialized by persister.wmu (taken before
// Controller.mu, never while it is held), so concurrent operations share
// one write (group commit) and batches reach the store in the order their
// changes were made. No store I/O happens under Controller.mu.
//
// A failed write leaves its marks in place for the next flush, and the
// operation answers CodeUnavailable: a client is never handed a token, or a
// node an epoch, that a restart would not know. What follows from a change
// and cannot be taken back (a drop order to a node, a retired node's hooks
// and its order to stop, an answer that a job ended) waits for the write
// that saves the change (afterSave), and a change whose failure is answered
// is taken back (a registration: withdrawJobLocked). A write refused
// because this controller no longer leads (state.ErrNotLeader, an etcd
// store) answers CodeNotLeader with the leader's address, and the
// controller stops serving (ha.go).
//
// What is stored: each live job (map, epoch, gen, expiry, allotment,
// client, and its run's trace so far for its profile: profile.go, Saving
// traces), a tombstone per job revoked in the last Config.OrphanGrace (so a
// node still holding its data drops it at once) or whose final map is kept
// (ended.go; the record then carries the map), each node (tiers, cores,
// state, drain deadline) and each recently retired node, and the job
// number and revision counters. A job's token is not stored: New signs it
// again from the id, gen and expiry with Config.Secret, so the secret must
// be the same across restarts (the secret file or $POCKET_SECRET).
type persister struct {
	store state.Store
	wmu   sync.Mutex // serializes flushes; taken before Controller.mu

	// Guarded by Controller.mu.
	jobs  map[string]struct{} // job ids whose record changed
	nodes bool                // the node registry changed
	meta  state.Meta          // the counters as last saved

	// Guarded by wmu.
	saved map[string]state.Node // node records as last saved
	err   string                // the last write error logged ("" after a success)

	// What waits for a save (afterSave): guarded by Controller.mu;
	// waiting is also read without it (a flush without a store).
	after   []func()
	waiting atomic.Bool
}

// tomb is a revoked job remembered for Config.OrphanGrace.
type tomb struct {
	id, name string
	gen      uint64
	at       time.Time
}

// dirtyJobLocked marks a job's record for the next flush.
func (c *Controller) dirtyJobLocked(id string) {
	if c.st.store != nil {
		c.st.jobs[id] = struct{}{}
	}
}

// dirtyNodesLocked marks the node registry for the next flush.
func (c *Controller) dirtyNodesLocked() {
	if c.st.store != nil {
		c.st.nodes = true
	}
}

// flush writes what changed since the last flush. It returns a
// CodeUnavailable error when the store fails; the changes stay marked.
// After a successful write it runs what waited for those changes to be
// saved (afterSaveLocked, the returned nodes' drop orders).
func (c *Controller) flush() error { return c.save(nil) }

// save is flush; undo, when not nil, runs under c.mu (and the write lock,
// so no other flush writes in between) when the write fails, to take back
// a change whose failure the caller answers (a registration: withdrawJobLocked).
func (c *Controller) save(undo func()) error {
	p := &c.st
	if p.store == nil {
		if p.waiting.Load() {
			c.mu.Lock()
			fx := c.takeAfterSaveLocked()
			c.mu.Unlock()
			fx.run(c)
		}
		return nil
	}
	p.wmu.Lock()
	fx, err := c.saveHeld(undo)
	p.wmu.Unlock()
	if err == nil {
		fx.run(c) // without the locks: they send orders and run hooks
	}
	return err
}

// flushJob is flush for a call that answers about job id's map alone
// (GetMap): after any write under way, it writes what changed only when
// the store does not hold the job's epoch (savedEpoch), or, for a job no
// longer live, its end. So a store that cannot be written (a full disk)
// still lets clients fetch the maps it holds; before, every map fetch of
// every job answered "state not saved" while any change (a node's
// heartbeat figures, a job's traffic profile) waited (a hostile trial).
func (c *Controller) flushJob(id string) error {
	p := &c.st
	if p.store == nil {
		return c.flush()
	}
	p.wmu.Lock() // a write under way may hold the job's change
	c.mu.Lock()
	var dirty bool
	if j, ok := c.jobs[id]; ok {
		dirty = j.epoch != j.savedEpoch
	} else {
		_, dirty = p.jobs[id]
	}
	c.mu.Unlock()
	p.wmu.Unlock()
	if err := c.notLeader(); err != nil {
		return err // deposed by a write under way, whose changes are not saved
	}
	if !dirty {
		return nil
	}
	return c.flush()
}

// saveHeld is save's write, under p.wmu. It returns what waited for the
// changes it saved; on failure that waits on, for the next write.
func (c *Controller) saveHeld(undo func()) (afterSave, error) {
	p := &c.st
	c.mu.Lock()
	b, nodes, jobs, meta := c.batchLocked()
	if b == nil {
		b = &state.Batch{}
	}
	profs := c.prof.batch(b)
	c.sanitizeProfilesLocked(b.PutProfiles)
	if b.Len() == 0 {
		b = nil
	}
	// What waited for the changes made so far: they are all in b (or were
	// saved by an earlier write, flushes being serialized by wmu).
	fx := c.takeAfterSaveLocked()
	c.mu.Unlock()
	if b == nil {
		return fx, nil
	}
	if err := p.store.Apply(b); err != nil {
		c.mu.Lock()
		c.putBackAfterSaveLocked(fx)
		if !errors.Is(err, state.ErrNotLeader) {
			for id := range jobs {
				p.jobs[id] = struct{}{}
			}
			p.nodes = p.nodes || nodes != nil
			c.prof.remark(profs)
		}
		if undo != nil {
			undo()
		}
		c.mu.Unlock()
		if errors.Is(err, state.ErrNotLeader) {
			return afterSave{}, c.deposed(err)
		}
		if msg := err.Error(); msg != p.err {
			c.cfg.Logger.Error("controller: state not saved", "err", err)
			p.err = msg
		}
		return afterSave{}, unsavedError(err, undo != nil)
	}
	if p.err != "" {
		c.cfg.Logger.Info("controller: state saved again")
		p.err = ""
	}
	if nodes != nil {
		p.saved = nodes
	}
	c.mu.Lock()
	p.meta = meta
	for id := range jobs {
		if j := c.jobs[id]; j != nil {
			j.saved = true
		}
	}
	for _, r := range b.PutJobs {
		if j := c.jobs[r.ID]; j != nil && r.State == state.JobLive {
			j.savedEpoch = r.Epoch // the record as written, not as it may be now
		}
	}
	c.mu.Unlock()
	return fx, nil
}

// unsavedError is the answer of a request whose write failed (err). A
// request whose change was taken back (undone: a registration,
// withdrawJobLocked) says so. Every other one says that its change (and
// any made before it) took effect in this controller's memory but is not
// durable: a deregistration has ended the job, a drain runs, a node is
// registered, and a restart before the next successful write undoes it.
// Before, all answered a bare "state not saved", which reads as a change
// that did not happen: a hostile trial's deregistration so answered had
// ended the job (its status showed it gone), and its retry was told the
// job had ended. Taking such a change back is not safe in general: a
// concurrent heartbeat may already carry it (a revocation in a node's
// table) under a later successful write.
func unsavedError(err error, undone bool) error {
	if undone {
		return wire.Errorf(wire.CodeUnavailable, "controller: state not saved: %v: the request was not applied "+
			"(taken back); retry once the controller's store can be written", err)
	}
	return wire.Errorf(wire.CodeUnavailable, "controller: state not saved: %v: the request's change, if it makes one, "+
		"took effect in this controller's memory but is not durable (a controller restart before the next successful "+
		"save undoes it; the next successful save, by any request, keeps it): a retry finds it done (a deregistered "+
		"job answers that it was deregistered)", err)
}

// afterSave is what waits for the changes made before it to be saved:
// what cannot be taken back (an order sent to a node, a hook run) and
// follows from a change goes out only once the store holds the change, so
// a controller restarted on the store never finds the change undone while
// its effect stands.
type afterSave struct {
	drops []lostDrop // returned nodes' drop orders (dead.go)
	fns   []func()   // afterSaveLocked's
}

// afterSaveLocked has fn run once every change made so far is saved: after
// the next successful write (at once without a store), by whichever
// operation makes it, without c.mu. fn must not block: it sends on a
// goroutine of its own, or hands over to the goroutine that acts.
func (c *Controller) afterSaveLocked(fn func()) {
	c.st.after = append(c.st.after, fn)
	c.st.waiting.Store(true)
}

// takeAfterSaveLocked takes everything waiting for a save.
func (c *Controller) takeAfterSaveLocked() afterSave {
	fx := afterSave{drops: c.lostDrops, fns: c.st.after}
	c.lostDrops, c.st.after = nil, nil
	c.st.waiting.Store(false)
	return fx
}

// putBackAfterSaveLocked puts back, ahead of what was queued since, what
// a failed write took: it waits for the next one.
func (c *Controller) putBackAfterSaveLocked(fx afterSave) {
	if len(fx.drops) == 0 && len(fx.fns) == 0 {
		return
	}
	c.lostDrops = append(fx.drops, c.lostDrops...)
	c.st.after = append(fx.fns, c.st.after...)
	c.st.waiting.Store(true)
}

// run sends and runs what a save let go.
func (fx afterSave) run(c *Controller) {
	if len(fx.drops) > 0 {
		c.sendLostDrops(fx.drops)
	}
	for _, f := range fx.fns {
		f()
	}
}

// sanitizeProfilesLocked clamps the figures of the profiles about to be
// saved into a job's bounds (state.Profile.Sanitize), logging each it
// changes: the book records and loads only such profiles, and this is the
// last guard, so that no figure can make the write, and with it every
// later write of the state (registrations, map fetches, deregistrations),
// fail. Their phases are the book's, hence c.mu.
func (c *Controller) sanitizeProfilesLocked(ps []state.Profile) {
	for i := range ps {
		if n := ps[i].Sanitize(); n > 0 {
			c.cfg.Logger.Warn("controller: profile figures out of bounds clamped before saving", "name", ps[i].Name, "figures", n)
		}
	}
}

// batchLocked builds the batch of the marked records and clears the
// marks; it returns nil when nothing changed. It also returns the node
// records the batch leaves saved (nil: unchanged), the marked jobs (to
// mark again if the write fails) and the counters saved.
func (c *Controller) batchLocked() (*state.Batch, map[string]state.Node, map[string]struct{}, state.Meta) {
	p := &c.st
	b := &state.Batch{}
	jobs := p.jobs
	p.jobs = map[string]struct{}{}
	for id := range jobs {
		if j, ok := c.jobs[id]; ok {
			r := jobRecord(j)
			r.Trace = c.prof.traceRecord(j.id)
			if n := finiteJob(&r); n > 0 {
				c.cfg.Logger.Warn("controller: job figures not finite made finite before saving", "job", j.id, "figures", n)
			}
			b.PutJobs = append(b.PutJobs, r)
		} else if r, ok := c.endedRecordLocked(id); ok {
			b.PutJobs = append(b.PutJobs, r)
		} else {
			b.DeleteJobs = append(b.DeleteJobs, id)
		}
	}
	var nodes map[string]state.Node
	if p.nodes {
		p.nodes = false
		nodes = c.nodeRecordsLocked()
		b.PutNodes, b.DeleteNodes = diffNodes(p.saved, nodes)
		if len(b.PutNodes) == 0 && len(b.DeleteNodes) == 0 {
			nodes = nil
		}
	}
	meta := state.Meta{Seq: c.seq, Rev: c.rev, SecretID: secretID(c.cfg.Secret), CAID: c.caID}
	if meta != p.meta {
		b.Meta = &meta
	}
	if b.Len() == 0 {
		return nil, nil, nil, meta
	}
	return b, nodes, jobs, meta
}

func jobRecord(j *job) state.Job {
	r := state.Job{ID: j.id, Name: j.name, Lambdas: j.hints.Lambdas, CapacityBytes: j.hints.CapacityBytes,
		PeakMbps: j.hints.PeakMbps, LatencySensitive: j.hints.LatencySensitive, Tier: j.tier, Epoch: j.epoch,
		AllocMbps: j.allocMbps, AllocBytes: j.allocBytes, Gen: j.gen, Created: j.created.UTC(),
		Client: j.client, Tenant: j.tenant, State: state.JobLive, Grown: j.grown}
	if !j.expires.IsZero() {
		r.Expires = j.expires.UTC()
	}
	if !j.drainedAt.IsZero() {
		r.Drained = j.drainedAt.UTC()
	}
	for addr, at := range j.undone {
		if r.Undone == nil {
			r.Undone = map[string]time.Time{}
		}
		r.Undone[addr] = at.UTC()
	}
	r.Nodes = make([]state.MapWeight, len(j.nodes))
	for i, mn := range j.nodes {
		r.Nodes[i] = state.MapWeight{Addr: mn.Addr, Weight: mn.Weight, Role: roleOf(mn), Since: mn.Since}
	}
	for _, l := range j.lost {
		r.Lost = append(r.Lost, state.LostNode{Addr: l.Addr, Weight: l.Weight, Epoch: l.Epoch, Clean: j.lostClean[l.Addr]})
	}
	return r
}

// finiteJob makes every float of a job record finite and not negative
// (NaN 0, +Inf the largest float64), returning how many it changed: JSON
// cannot encode the others, and one such record would fail every later
// write of the state, the whole cluster's registrations and map fetches
// with it. The decoders refuse hints that lead there (wire.JobHints.
// Check); an in-process caller's may not have been checked.
func finiteJob(r *state.Job) int {
	n := 0
	fix := func(f *float64) {
		if v := wire.ClampMbps(*f, math.MaxFloat64); v != *f {
			*f, n = v, n+1
		}
	}
	fix(&r.PeakMbps)
	fix(&r.AllocMbps)
	for i := range r.Nodes {
		fix(&r.Nodes[i].Weight)
	}
	for i := range r.Lost {
		fix(&r.Lost[i].Weight)
	}
	return n
}

// tombRecord is a revoked job's record: its tombstone and, when the job's
// final map is kept (e not nil, ended.go), that map.
func tombRecord(t *tomb, e *endedJob) state.Job {
	r := state.Job{ID: t.id, Name: t.name, Gen: t.gen, State: state.JobRevoked, Revoked: t.at.UTC()}
	addFinalMap(&r, e)
	return r
}

// nodeRecordsLocked returns the record of every registered node and of
// every recently retired one.
func (c *Controller) nodeRecordsLocked() map[string]state.Node {
	out := make(map[string]state.Node, len(c.nodes)+len(c.gone))
	for addr, n := range c.nodes {
		r := state.Node{Addr: addr, State: uint8(n.state), Cores: n.cores, Incarnation: n.incarnation}
		for _, t := range n.tiers {
			// Finite (NaN 0): the decoder bounds a tier's Mb/s, an
			// in-process registration may not have (see finiteJob).
			mbps := wire.ClampMbps(t.Mbps, math.MaxFloat64)
			r.Tiers = append(r.Tiers, state.NodeTier{Kind: t.Kind, CapacityBytes: t.CapacityBytes, Mbps: mbps})
		}
		if n.drain != nil && n.state == wire.NodeDraining {
			r.DrainDeadline = n.drain.deadline.UTC()
			r.DrainDiscard, r.DrainLoseOverflow = n.drain.discard, n.drain.loseOverflow
		}
		if e := n.drainEnd; e != nil {
			r.DrainEnded, r.DrainEndWhy = e.At.UTC(), e.Why
		}
		out[addr] = r
	}
	for addr, g := range c.gone {
		if _, ok := out[addr]; !ok {
			out[addr] = state.Node{Addr: addr, Gone: g.at.UTC(), Incarnation: g.inc, GoneWhy: g.why, GoneLost: g.lost}
		}
	}
	return out
}

// diffNodes returns the records of now that differ from saved, and the
// addresses saved has and now does not.
func diffNodes(saved, now map[string]state.Node) (put []state.Node, del []string) {
	for addr, r := range now {
		if old, ok := saved[addr]; !ok || !sameNode(&old, &r) {
			put = append(put, r)
		}
	}
	for addr := range saved {
		if _, ok := now[addr]; !ok {
			del = append(del, addr)
		}
	}
	sort.Slice(put, func(a, b int) bool { return put[a].Addr < put[b].Addr })
	sort.Strings(del)
	return put, del
}

func sameNode(a, b *state.Node) bool {
	return a.Addr == b.Addr && a.State == b.State && a.Cores == b.Cores && a.Incarnation == b.Incarnation && a.DrainDeadline.Equal(b.DrainDeadline) &&
		a.DrainDiscard == b.DrainDiscard && a.DrainLoseOverflow == b.DrainLoseOverflow &&
		a.DrainEnded.Equal(b.DrainEnded) && a.DrainEndWhy == b.DrainEndWhy &&
		a.Gone.Equal(b.Gone) && a.GoneWhy == b.GoneWhy && a.GoneLost == b.GoneLost && slices.Equal(a.Tiers, b.Tiers)
}

// restore loads the store into the empty registries of a new controller.
func (c *Controller) restore(now time.Time) error {
	snap, err := c.st.store.Load()
	if err != nil {
		return err
	}
	if id := snap.Meta.SecretID; id != "" && id != secretID(c.cfg.Secret) {
		return ErrOtherSecret
	}
	if !snap.Empty {
		c.seq = max(snap.Meta.Seq, 1)
	}
	if c.caID == "" {
		c.caID = snap.Meta.CAID
	}
	// Every store's Load checks its records (state.Snapshot.Check); this
	// is the guard for a Store that does not (a record out of range
	// failed every later status reply, or showed its job as tier(7)).
	if err := snap.Check(); err != nil {
		return fmt.Errorf("state: controller state is corrupted (invalid record: %w): "+
			"move the state aside to start empty, or fix the record", err)
	}
	c.restoreNodes(snap.Nodes, now)
	c.startSettleLocked(now)
	c.restoreJobs(snap.Jobs)
	if n := c.prof.load(snap.Profiles); n > 0 {
		c.cfg.Logger.Warn("controller: stored profile figures out of bounds clamped", "figures", n,
			"mbps_bound", float64(wire.MaxJobMbps), "bytes_bound", int64(wire.MaxJobBytes))
	}
	if rev := max(snap.Meta.Rev, c.maxGen()); rev >= c.rev {
		c.rev = rev
		c.log.first = rev + 1
	}
	c.st.meta = snap.Meta
	// A node has applied a restored ended job's revocation once its table
	// is at a revision of this run (its job then is not live there).
	for _, e := range c.ended.ids {
		e.rev = c.rev
	}
	// No node of this run has confirmed any epoch: a restored job's map is
	// handed out once its nodes have synced (publishedLocked).
	for _, j := range c.jobs {
		j.epochRev, j.bumped, j.savedEpoch = c.rev, now, j.epoch
		// Its nodes' confirmations and leases are this run's: a node
		// that a change in progress takes keys from is waited for
		// until it has synced, or the longest lease it may hold ends.
		j.losing = nil
		c.noteLosingLocked(j)
		c.holdForRetiredLocked(j, now)
	}
	c.restoreWitnessesLocked()
	if len(snap.Jobs)+len(snap.Nodes) > 0 {
		c.cfg.Logger.Info("controller: state restored", "jobs", len(c.jobs), "nodes", len(c.nodes),
			"tombstones", len(c.tombs.ids), "next_job", c.seq)
	}
	return nil
}

// holdForRetiredLocked marks, on a restore, the nodes j lost that the
// earlier run retired within the longest lease it gives (DeadAfter plus
// the grace) before now: one retired at its drain's deadline while silent
// may still serve the map before until its lease ends, which is not
// saved, so the map without it waits as long (ownerBehindLocked), as it
// did in the earlier run (noteLosingLocked keeps a retired node's mark
// while its lease runs). Before, the marks were rebuilt from the maps
// alone, which no longer name it: a review's restart handed the map out
// 30.8 s before the lease ended. A node retired as lost after its lease
// had ended (it died while draining) is waited for too, up to the same
// bound from its retirement: the reason is not told apart.
func (c *Controller) holdForRetiredLocked(j *job, now time.Time) {
	lease := c.cfg.DeadAfter + max(c.cfg.DeadNodeGrace, 0)
	for _, l := range j.lost {
		g, ok := c.gone[l.Addr]
		if !ok || !g.lost || !now.Before(g.at.Add(lease)) {
			continue
		}
		if j.losing == nil {
			j.losing = map[string]loss{}
		}
		j.losing[l.Addr] = loss{rev: c.rev, leaseEnd: g.at.Add(lease), leaves: true}
	}
}

// restoreNodes enters the stored nodes. They count as heard from
// restoreGrace after now: a node that is still running heartbeats within
// Config.DeadAfter of that and keeps its state and its place in its jobs'
// maps; one that does not is marked dead as if the controller had never
// stopped.
func (c *Controller) restoreNodes(recs []state.Node, now time.Time) {
	defer c.sortDrainsEndedLocked()
	for _, r := range recs {
		c.st.saved[r.Addr] = r
		if !r.Gone.IsZero() {
			c.gone[r.Addr] = retiredNode{at: r.Gone, inc: r.Incarnation, why: r.GoneWhy, lost: r.GoneLost}
			if r.GoneWhy != "" { // how older records' drains ended is not known
				c.drainsEnded = append(c.drainsEnded, wire.RetiredNode{Addr: r.Addr, At: r.Gone, Why: r.GoneWhy, Lost: r.GoneLost})
			}
			continue
		}
		// The lease an earlier run gave it is not saved: the longest this
		// run would give (its draining one may be unread), from when the
		// node counts as heard from. Before, a node frozen as its drain
		// began and the controller restarted was retired as lost about
		// 6 s later, and acknowledged its queued puts when it resumed.
		n := &node{addr: r.Addr, state: wire.NodeState(r.State), cores: r.Cores, incarnation: r.Incarnation,
			lastSeen: now.Add(restoreGrace), restored: true, unheard: true,
			leaseEnd: now.Add(restoreGrace + c.cfg.DeadAfter + max(c.cfg.DeadNodeGrace, 0))}
		for _, t := range r.Tiers {
			n.tiers = append(n.tiers, wire.TierStat{Kind: t.Kind, CapacityBytes: t.CapacityBytes, Mbps: t.Mbps})
		}
		if !r.DrainEnded.IsZero() {
			n.drainEnd = &wire.RetiredNode{Addr: r.Addr, At: r.DrainEnded, Why: r.DrainEndWhy, Lost: true}
			c.drainsEnded = append(c.drainsEnded, *n.drainEnd)
		}
		switch n.state {
		case wire.NodeDead:
			n.deadSince = now
		case wire.NodeDraining:
			n.drain = &drainState{start: now, deadline: r.DrainDeadline, discard: r.DrainDiscard, loseOverflow: r.DrainLoseOverflow}
		case wire.NodeActive:
		default:
			n.state = wire.NodeActive
		}
		c.nodes[r.Addr] = n
	}
}

// restoreGrace is how much later than its restore a restored node may
// send its first heartbeat before DeadAfter runs: a heartbeat the node
// sent as the old controller died can take that long to fail (the
// metaclient's least attempt timeout) before the node tries the new one.
// Without it, with short heartbeats (100 ms, DeadAfter 300 ms) or a busy
// machine, a restarted controller marked running nodes dead within a
// second and clients read their keys as unavailable.
const restoreGrace = 3 * time.Second

// restoreJobs enters the stored jobs in registration order, with their
// tokens signed again, and the tombstones.
func (c *Controller) restoreJobs(recs []state.Job) {
	sort.Slice(recs, func(a, b int) bool { return recs[a].Gen < recs[b].Gen })
	for i := range recs {
		r := &recs[i]
		if r.State == state.JobRevoked {
			c.tombs.add(&tomb{id: r.ID, name: r.Name, gen: r.Gen, at: r.Revoked})
			c.restoreEndedLocked(r)
			continue
		}
		j := &job{id: r.ID, name: r.Name, tier: r.Tier, epoch: r.Epoch, allocMbps: r.AllocMbps,
			allocBytes: r.AllocBytes, created: r.Created.Local(), gen: r.Gen, client: r.Client, tenant: r.Tenant, heapIdx: -1,
			noQuota: c.operatorKey(r.Client),
			hints: wire.JobHints{Lambdas: r.Lambdas, CapacityBytes: r.CapacityBytes, PeakMbps: r.PeakMbps,
				LatencySensitive: r.LatencySensitive}}
		if !r.Expires.IsZero() {
			j.expires = r.Expires.Local()
		}
		j.token = token.SignJob(c.cfg.Secret, []byte(j.id), token.Claims{Gen: j.gen, Expires: j.expires})
		nodes := make([]wire.MapNode, len(r.Nodes))
		for k, mn := range r.Nodes {
			nodes[k] = wire.MapNode{Addr: mn.Addr, Weight: mn.Weight, State: wire.NodeState(mn.Role), Since: mn.Since}
		}
		j.grown, j.saved = r.Grown, true
		if !r.Drained.IsZero() {
			j.drainedAt = r.Drained.Local()
		}
		c.jobs[j.id] = j
		c.prof.restoreTrace(j, r.Trace, time.Now())
		c.order.add(j)
		c.placeLocked(j, nodes)
		for addr, at := range r.Undone {
			if j.undone == nil {
				j.undone = map[string]time.Time{}
			}
			j.undone[addr] = at.Local()
		}
		c.startMoveLocked(j, restoredMove(j))
		if _, ok := j.undone[moveAddr(j.move)]; ok {
			// Its change is an undo: a later change of the node clears
			// the mark (growJobLocked, shrinkJobLocked). Not undone
			// again, however long it has waited (a hostile re-check's
			// restarts flipped a stuck change at each restart; then,
			// with the mark kept for the hold alone, at a restart past
			// it).
			j.move.undone = true
		}
		if len(r.Lost) > 0 {
			lost := make([]wire.LostNode, len(r.Lost))
			for k, l := range r.Lost {
				lost[k] = wire.LostNode{Addr: l.Addr, Weight: l.Weight, Epoch: l.Epoch}
			}
			c.setLostLocked(j, lost)
			for _, l := range r.Lost {
				if l.Clean {
					c.cleanLostLocked(j, l.Addr)
				}
			}
		}
		c.expiry.add(j)
		c.holdLocked(j, 1)
	}
	c.ended.sortByEnd()
	// A restart under a lower bound (or on a state a larger default
	// wrote) keeps at most its bound: the maps that ended first go. Which
	// maps no node needs is not known until the nodes report.
	c.boundEndedLocked()
}

// maxGen is the highest gen of a restored job or tombstone.
func (c *Controller) maxGen() uint64 {
	var g uint64
	for _, j := range c.jobs {
		g = max(g, j.gen)
	}
	for _, t := range c.tombs.ids {
		g = max(g, t.gen)
	}
	return g
}

// ErrOtherSecret means the store's jobs were signed with another cluster
// secret than Config.Secret: none of their tokens would verify.
var ErrOtherSecret = errors.New("the stored jobs' tokens were signed with another cluster secret: " +
	"start with the secret they were made with (--secret-file or $POCKET_SECRET), or on an empty --data-dir")

// secretID is a keyed hash naming the secret (state.Meta.SecretID).
func secretID(secret []byte) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("pocket controller state: secret id"))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// tombs holds the revoked jobs of the last Config.OrphanGrace, oldest
// first (revocations come in time order), so pruning costs what it prunes.
type tombs struct{ idQueue[tomb] }

func (ts *tombs) add(t *tomb) { ts.push(t.id, t) }

// idQueue holds values by id and in the order they were added, oldest
// first; an entry of the queue whose id now holds another value (or none)
// is stale, and whoever walks the queue skips it.
type idQueue[T any] struct {
	ids   map[string]*T
	queue []*T
}

func (q *idQueue[T]) push(id string, v *T) {
	if q.ids == nil {
		q.ids = map[string]*T{}
	}
	q.ids[id] = v
	q.queue = append(q.queue, v)
}

// pruneLocked forgets the tombstones older than grace and marks them for
// deletion from the store.
func (c *Controller) pruneTombsLocked(now time.Time, grace time.Duration) {
	ts := &c.tombs
	i := 0
	for ; i < len(ts.queue) && now.Sub(ts.queue[i].at) > grace; i++ {
		t := ts.queue[i]
		if ts.ids[t.id] == t {
			delete(ts.ids, t.id)
			c.dirtyJobLocked(t.id)
		}
	}
	if i > 0 {
		clear(ts.queue[:i])
		ts.queue = ts.queue[i:]
	}
}
