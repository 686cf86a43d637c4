package controller

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// Ended jobs' final maps.
//
// A job ends by deregistration or by its token's expiry (expireJobs):
// every node drops its values but those put with persist-after-job, which
// stay read-only under the job's token, on the nodes of the map the job
// ended with. Those values are found by that map. Deregistration hands it
// to its caller (the credential, pocket/persist.go); an expiry hands it to
// nobody. So the controller keeps, for each ended job, its final map (an
// endedJob: id, name, gen, tier, epoch, nodes with their weights and
// draining/joining roles; the map clients were handed last, which is the
// one a deregistering client's credential carries), and answers it to an OpGetMap that asks for it
// (wire.JobRef.EndedOK) with a token its secret verifies for the job's id
// and gen, expired or not (expiry is how such a job ends): the reply is
// the map marked wire.PlacementMap.Ended. A token that does not verify
// gets CodeBadToken, as it does for a live job and for an id never
// registered, and a request without EndedOK (an older client) the answer
// an unknown job gets (CodeUnknownJob), so nothing tells which jobs, live
// or ended, exist.
//
// The record is made when the job ends, whatever it put, and kept while a
// node of its map may keep its persisted values (mayKeepLocked): the node
// is registered and dead (it may come back), has not reported a job table
// with the job's revocation applied, reports the job in its heartbeat's
// persisted list, reports more such jobs than the list names (the list
// holds the largest wire.MaxPersistedJobs), or holds the job's data as an
// orphan. Once no node of its map may keep them (typically a heartbeat
// after the job ends, for a job that persisted nothing; when the last
// persisted value is deleted, otherwise) the sweeper drops it. At most
// Config.MaxEndedJobs are kept: beyond, the client that registered the
// most of them loses its own, first those kept only to answer "lost"
// (ended_lost.go), then the oldest to end, each logged (a map with values
// left: they stay, readable by its credential).
//
// With Config.Store each record is stored in the job's revoked record
// (state.Job with State JobRevoked, whose Tier, Epoch, Nodes and Expires
// then hold the final map), so it survives a restart; a restarted
// controller drops it only once every node of its map has synced with the
// new run. An older controller reads such a record as a plain tombstone.

// DefaultMaxEndedJobs is Config.MaxEndedJobs' default.
const DefaultMaxEndedJobs = 4096

// endedJob is an ended job's final map.
type endedJob struct {
	id, name string
	gen      uint64
	tier     uint8
	epoch    uint64
	expires  time.Time       // the token's expiry (zero: never)
	nodes    []wire.MapNode  // State: NodeDraining or NodeJoining as the map named them, else NodeActive
	lost     []wire.LostNode // the nodes that had left the map dead (wire.PlacementMap.Lost)
	at       time.Time       // when it ended
	client   string          // the peer key of the client that registered it (job.client)
	// dropped are the nodes the map names lost that dropped the job's
	// values by order and keep none, by address, with the incarnation
	// that did (ended_lost.go; in memory only).
	dropped map[string]uint64
	// kept are the bytes each node said it keeps of the job in its
	// proved answer to the deregistration's drop order, by address
	// (noteKept; in memory only).
	kept map[string]int64
	// rev is a revision at or after the job's revocation: a node whose
	// table is at rev has applied it (for a restored record, the
	// revision the restart began at).
	rev uint64
}

// endedJobs holds the ended jobs' final maps by id, and in the order they
// ended (oldest first; an entry no longer in ids is skipped), so the bound
// drops the oldest at the cost of what it drops.
type endedJobs struct{ idQueue[endedJob] }

func (es *endedJobs) add(e *endedJob) { es.push(e.id, e) }

// evictions returns the k kept maps (at most all of them) that the bound
// of kept maps drops, in order: each time, of the client with the most
// kept maps, its oldest-ended map for which first is true, else its
// oldest-ended map; first's answers are taken as they stand. Of clients
// tied at the most, the one whose oldest kept map ended last loses: a
// crowd of identities with a map each (a hostile trial: 4,096 source
// addresses, each ending one job) then pushes out its own newest, not a
// map kept longer; before, the tie went by the client's name, and the
// victim's went first. It drops the queue's leading entries that are no
// longer kept.
//
// Each choice costs the number of clients, not of maps: it was a pass
// over every kept map per map dropped, and a hostile re-check's 81,856
// jobs expiring together held the controller's lock for over 30 s (7.2 s
// for 20,000 on this machine), long enough for every node's lease to
// lapse.
func (es *endedJobs) evictions(k int, first func(*endedJob) bool) []*endedJob {
	for len(es.queue) > 0 && es.ids[es.queue[0].id] != es.queue[0] {
		es.queue[0] = nil
		es.queue = es.queue[1:]
	}
	type kept struct {
		all, firsts []*endedJob // in the order they ended
		next, nextF int         // the first of each not yet dropped
	}
	by := map[string]*kept{}
	var clients []string
	for _, e := range es.queue {
		if es.ids[e.id] != e {
			continue
		}
		kc := by[e.client]
		if kc == nil {
			kc = &kept{}
			by[e.client] = kc
			clients = append(clients, e.client)
		}
		kc.all = append(kc.all, e)
		if first(e) {
			kc.firsts = append(kc.firsts, e)
		}
	}
	// A dropped map is moved up before next, so a client's oldest kept
	// map is all[next]; dropped marks those firsts may still name.
	dropped := map[*endedJob]bool{}
	left := func(kc *kept) int { return len(kc.all) - kc.next }
	oldest := func(kc *kept) *endedJob { return kc.all[kc.next] }
	var out []*endedJob
	for len(out) < k {
		most := ""
		var mk *kept
		for _, cl := range clients {
			kc := by[cl]
			if left(kc) == 0 {
				continue
			}
			if mk == nil || left(kc) > left(mk) || left(kc) == left(mk) && (oldest(kc).at.After(oldest(mk).at) ||
				oldest(kc).at.Equal(oldest(mk).at) && cl < most) {
				most, mk = cl, kc
			}
		}
		if mk == nil {
			break
		}
		var e *endedJob
		for mk.nextF < len(mk.firsts) && e == nil {
			if f := mk.firsts[mk.nextF]; !dropped[f] {
				e = f
			}
			mk.nextF++
		}
		if e == nil {
			e = oldest(mk)
		}
		dropped[e] = true
		if mk.all[mk.next] != e { // a first past the oldest: move it up to next
			i := slices.Index(mk.all[mk.next:], e) + mk.next
			copy(mk.all[mk.next+1:i+1], mk.all[mk.next:i])
			mk.all[mk.next] = e
		}
		mk.next++
		out = append(out, e)
	}
	return out
}

// sortByEnd puts the queue in the order the jobs ended (then by gen): a
// restore enters the records in registration order.
func (es *endedJobs) sortByEnd() {
	slices.SortStableFunc(es.queue, func(a, b *endedJob) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.gen, b.gen)
	})
}

// finalNodes is a map's nodes as an ended job's final map keeps them:
// draining and joining as they were, every other state active (a dead
// node holds none of the values now, or holds them again if it returns).
func finalNodes(ns []wire.MapNode) []wire.MapNode {
	out := make([]wire.MapNode, len(ns))
	for i, n := range ns {
		// Since stays: placement over the map's lost nodes leaves out a
		// node that came after a loss (package pocket, lost.go). Without
		// it a credential reading by this map named lost values "not
		// found" (a hostile trial: 14 of 52), and a node that joined
		// while taking a draining one's share was asked alone.
		out[i] = wire.MapNode{Addr: n.Addr, Weight: n.Weight, State: wire.NodeActive, Since: n.Since}
		if n.State == wire.NodeDraining || n.State == wire.NodeJoining {
			out[i].State = n.State
		}
	}
	return out
}

// endJobLocked records the final map m of a job that has just ended at
// revision rev, dropping the oldest record beyond Config.MaxEndedJobs.
func (c *Controller) endJobLocked(j *job, m *wire.PlacementMap, rev uint64, now time.Time) {
	c.ended.add(&endedJob{id: j.id, name: j.name, gen: j.gen, tier: j.tier, epoch: j.epoch, expires: j.expires,
		nodes: finalNodes(m.Nodes), lost: slices.Clone(m.Lost), at: now, rev: rev, client: j.client})
	if !c.endingMany {
		c.fitEndedLocked()
	}
}

// fitEndedLocked holds the kept final maps to Config.MaxEndedJobs: the
// maps no node needs any more go before any that one does, then the
// bound's choice (boundEndedLocked). A pass over them all, so many jobs
// ending at once (expireJobs) fit them once (Controller.endingMany).
func (c *Controller) fitEndedLocked() {
	if len(c.ended.ids) > c.cfg.MaxEndedJobs {
		c.pruneEndedLocked()
	}
	c.boundEndedLocked()
}

// boundEndedLocked drops final maps beyond Config.MaxEndedJobs, and logs
// each: the oldest-ended of the client (job.client) that registered the
// most of those kept, so that one client ending jobs by the thousand
// forgets its own maps, not other clients' (a hostile trial's 4,200
// registrations from one address, each persisting a value, made another
// job's token stop opening its persisted values). Clients behind one
// address share it, as they share --max-jobs-per-client.
func (c *Controller) boundEndedLocked() {
	over := len(c.ended.ids) - c.cfg.MaxEndedJobs
	if over <= 0 {
		return
	}
	now := time.Now()
	for _, e := range c.ended.evictions(over, c.lostOnlyLocked) {
		lostOnly := c.lostOnlyLocked(e)
		delete(c.ended.ids, e.id)
		c.dirtyJobLocked(e.id)
		more, ok := c.forgot.note(now)
		if !ok {
			continue
		}
		what := "its persisted values stay, read through its credential"
		if lostOnly {
			what = "it was kept to answer that its values were lost, and its keys now read not found"
		}
		c.cfg.Logger.Warn("controller: an ended job's final map is forgotten: over the bound of kept maps; "+what, "job", e.id,
			"ended", e.at.UTC().Format(time.RFC3339), "bound", c.cfg.MaxEndedJobs, "more_forgotten_before", more)
	}
}

// forgotLog spaces the log lines of final maps the bound forgets: one at
// most every forgotEvery, counting those forgotten between. A hostile
// trial ending jobs by the thousand had a line logged for each, 11,632
// lines.
type forgotLog struct {
	at     time.Time
	unsaid int
}

// forgotEvery is the least time between two forgotLog lines.
const forgotEvery = 10 * time.Second

// note counts one map forgotten at now, and reports whether to log it
// with the count of those not logged before it.
func (f *forgotLog) note(now time.Time) (unsaid int, ok bool) {
	if !f.at.IsZero() && now.Sub(f.at) < forgotEvery {
		f.unsaid++
		return 0, false
	}
	unsaid, f.unsaid, f.at = f.unsaid, 0, now
	return unsaid, true
}

// pruneEndedLocked drops the final maps that no node may still need
// (see above), and compacts the queue.
func (c *Controller) pruneEndedLocked() {
	es := &c.ended
	kept := es.queue[:0]
	for _, e := range es.queue {
		if es.ids[e.id] != e {
			continue
		}
		if c.anyMayKeepLocked(e) || e.keepsLost() {
			kept = append(kept, e)
			continue
		}
		delete(es.ids, e.id)
		c.dirtyJobLocked(e.id)
	}
	clear(es.queue[len(kept):])
	es.queue = kept
}

// anyMayKeepLocked reports whether a node of e's map may keep persisted
// values of e's job.
func (c *Controller) anyMayKeepLocked(e *endedJob) bool {
	for _, mn := range e.nodes {
		if c.mayKeepLocked(mn.Addr, e) {
			return true
		}
	}
	// A node the job lost may come back with them: it is ordered to drop
	// them then (ended_lost.go), which needs this map.
	for _, l := range e.lost {
		if n := c.nodes[l.Addr]; n != nil && e.droppedAt(l.Addr, n.incarnation) {
			continue
		}
		if c.mayKeepLocked(l.Addr, e) {
			return true
		}
	}
	return false
}

// mayKeepLocked reports whether the node at addr may keep persisted values
// of e's job. A node the registry does not have (forgotten, or retired by
// a drain) keeps none: its process left.
func (c *Controller) mayKeepLocked(addr string, e *endedJob) bool {
	n, ok := c.nodes[addr]
	switch {
	case !ok:
		return false
	case n.state == wire.NodeDead, n.unheard, n.since < e.rev:
		return true
	}
	return c.keepsByReportLocked(n, e)
}

// keepsByReportLocked reports whether n's reports say it may keep
// persisted values of e's job: it holds the job's data as an orphan, its
// last heartbeat's persisted list names the job, or the list leaves jobs
// out.
func (c *Controller) keepsByReportLocked(n *node, e *endedJob) bool {
	switch {
	case c.orphans[n.addr][e.id] != nil:
		return true
	case n.persisted.jobs > uint64(len(n.persisted.largest)):
		return true // the job may be among those the list leaves out
	}
	return slices.ContainsFunc(n.persisted.largest, func(h wire.HeldJob) bool { return h.Job == e.id })
}

// endedLocked returns the final map record of the ended job id when tok
// is a token of it (its id and gen; expired or not), else nil.
func (c *Controller) endedLocked(id string, tok []byte) *endedJob {
	e := c.ended.ids[id]
	if e == nil {
		return nil
	}
	claims, ok := token.ParseJob(c.cfg.Secret, []byte(id), tok)
	if !ok || claims.Gen != e.gen {
		return nil
	}
	return e
}

// unanswered are the nodes of e's final map that have not answered the
// deregistration's drop order with a proved count of what they keep
// (endedJob.kept): one that has, has applied the job's end, whatever
// revision its table is at. Before, an ended job's map waited for every
// node's next heartbeat: a new user's trial's open_credential right after
// a deregistration took 1.9-2.0 s every time.
func (e *endedJob) unanswered() []wire.MapNode {
	if len(e.kept) == 0 {
		return e.nodes
	}
	var out []wire.MapNode
	for _, mn := range e.nodes {
		if _, ok := e.kept[mn.Addr]; !ok {
			out = append(out, mn)
		}
	}
	return out
}

// publicMap is e's final map as OpGetMap answers it, with tok (verified).
func (e *endedJob) publicMap(tok []byte) *wire.PlacementMap {
	return &wire.PlacementMap{Job: e.id, Tier: e.tier, Epoch: e.epoch, Token: append([]byte(nil), tok...),
		Expires: e.expires, Nodes: append([]wire.MapNode(nil), e.nodes...), Lost: slices.Clone(e.lost), Ended: true}
}

// GetMapOrEnded is GetMap for a client that takes an ended job's final
// map (wire.JobRef.EndedOK): a live job's current map, else the final map
// of an ended job whose persisted values nodes may still keep, marked
// Ended, when tok is the job's token (expired or not). Otherwise it fails
// as GetMap does (CodeBadToken for a token that does not verify for id,
// whether or not id exists; CodeUnknownJob for an ended job's token of
// another gen).
//
// The final map is answered once the job's end has reached the live nodes
// of it (their job tables are at its revocation, or they answered its drop
// order: endedJob.unanswered), waiting for that up to
// confirmWait as a live job's new epoch waits (elastic.go): before, a node
// still holding the job live with its token expired refuses reads of its
// values as expired, which an ended job's handle takes for "holds none",
// so a listing would come up short.
func (c *Controller) GetMapOrEnded(id string, tok []byte) (*wire.PlacementMap, error) {
	m, err := c.GetMap(id, tok)
	if err == nil || !errors.Is(err, wire.ErrUnknownJob) {
		return m, err
	}
	deadline := time.Now().Add(c.EndedMapWait())
	return c.awaitMap(func() (*wire.PlacementMap, bool, error) {
		e := c.endedLocked(id, tok)
		if e == nil {
			return nil, true, err
		}
		if c.reachedLocked(e.unanswered(), e.rev) || !time.Now().Before(deadline) {
			return e.publicMap(tok), true, nil
		}
		return nil, false, nil
	})
}

// EndedMapWait is the longest GetMapOrEnded waits before it answers a
// just-ended job's final map: until the job's end has reached its live
// nodes, at most confirmWait (min(DeadAfter, 5 heartbeats): 3 s by
// default). A client's own bound on that call should be longer.
func (c *Controller) EndedMapWait() time.Duration { return c.confirmWait() }

// errEnded is the refusal of a call that needs a live job (deregistration)
// for an ended one, to its own token: CodeUnknownJob, as for an unknown
// job, with the why and what stays.
func (e *endedJob) errEnded() error {
	how := "was deregistered at " + e.at.UTC().Format(time.RFC3339)
	if !e.expires.IsZero() && !e.at.Before(e.expires) {
		how = "ended when its token expired at " + e.expires.UTC().Format(time.RFC3339)
	}
	return wire.Errorf(wire.CodeUnknownJob, "job %s is not registered: it %s. Its data was dropped, except values put with "+
		"persist-after-job, which stay readable (get, list, delete) with its token or credential", e.id, how)
}

// endedRecordLocked is the stored record of a job that is not live: its
// tombstone (orphans.go) and its final map, whichever are kept; false
// when neither is.
func (c *Controller) endedRecordLocked(id string) (state.Job, bool) {
	t, e := c.tombs.ids[id], c.ended.ids[id]
	if t == nil && e == nil {
		return state.Job{}, false
	}
	if t != nil {
		return tombRecord(t, e), true
	}
	r := state.Job{ID: e.id, Name: e.name, Gen: e.gen, State: state.JobRevoked, Revoked: e.at.UTC()}
	addFinalMap(&r, e)
	return r, true
}

// addFinalMap fills a revoked record's map fields from e.
func addFinalMap(r *state.Job, e *endedJob) {
	if e == nil {
		return
	}
	r.Tier, r.Epoch, r.Client = e.tier, e.epoch, e.client
	if !e.expires.IsZero() {
		r.Expires = e.expires.UTC()
	}
	r.Nodes = make([]state.MapWeight, len(e.nodes))
	for i, mn := range e.nodes {
		r.Nodes[i] = state.MapWeight{Addr: mn.Addr, Weight: mn.Weight, Role: roleOf(mn), Since: mn.Since}
	}
	for _, l := range e.lost {
		r.Lost = append(r.Lost, state.LostNode{Addr: l.Addr, Weight: l.Weight, Epoch: l.Epoch})
	}
}

// restoreEndedLocked enters the final map a revoked record carries (none
// when it has neither nodes nor lost nodes: a plain tombstone, or one of
// an older build; a map whose every node was lost since the job ended
// has lost nodes only, ended_lost.go). Its rev is set once the restore
// knows the revision (setRestoredRevs).
func (c *Controller) restoreEndedLocked(r *state.Job) {
	if len(r.Nodes) == 0 && len(r.Lost) == 0 {
		return
	}
	e := &endedJob{id: r.ID, name: r.Name, gen: r.Gen, tier: r.Tier, epoch: r.Epoch, at: r.Revoked.Local(), client: r.Client}
	for _, l := range r.Lost {
		e.lost = append(e.lost, wire.LostNode{Addr: l.Addr, Weight: l.Weight, Epoch: l.Epoch})
	}
	if !r.Expires.IsZero() {
		e.expires = r.Expires.Local()
	}
	e.nodes = make([]wire.MapNode, len(r.Nodes))
	for i, mn := range r.Nodes {
		e.nodes[i] = wire.MapNode{Addr: mn.Addr, Weight: mn.Weight, State: wire.NodeActive, Since: mn.Since}
		if s := wire.NodeState(mn.Role); s == wire.NodeDraining || s == wire.NodeJoining {
			e.nodes[i].State = s
		}
	}
	c.ended.add(e)
	// A sweep the last process left waiting, failed or cut off is not
	// stored: every restored job is swept once its nodes are ready (one
	// with nothing left to sweep costs an order or two a node).
	c.unswept[e.id] = &pendingSweep{}
}
