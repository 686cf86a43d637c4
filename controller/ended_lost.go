package controller

import (
	"slices"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Persisted values an ended job lost.
//
// A node cut off past its lease is lost by its jobs (dead.go): their maps
// name it in wire.PlacementMap.Lost, and keys it owned answer "lost". A
// job may end while such a node is away. On its return the node applies
// the job's end: it drops the job's values but those put with
// persist-after-job, which it keeps retired, read-only under the job's
// token. The job's final map names the node lost too, so no credential
// reaches them; they only hold the node's drains back until one discards
// them. A live job's returned lost node gets a drop order for all of the
// job's data (returnedLocked, sendLostDrops); an ended job's gets it here,
// when its heartbeat reports the job's persisted values
// (wire.Heartbeat.Persisted) and the job's final map names it lost and not
// a member. The final map is kept while such a node may come back with
// them (anyMayKeepLocked), and such a node is not forgotten while a kept
// final map or a live job names it lost, for up to Config.ForgetLostAfter
// (sweep), so its return finds both. A node that comes back later than
// that keeps them, as before, until a drain discards them: a node that
// stays dead is forgotten in the end, and with it the maps kept for it.
// Before, the node kept the values for good (a session's finding after a
// node frozen past its lease came back to an ended job).

// DefaultForgetLostAfter is Config.ForgetLostAfter's default.
const DefaultForgetLostAfter = time.Hour

// endedLostRetry is how long an ended job's drop order to a returned
// lost node is left to its first attempt before the heartbeat that still
// reports the values queues it again.
func (c *Controller) endedLostRetry() time.Duration {
	return max(c.cfg.DropTimeout, 10*c.cfg.HeartbeatInterval)
}

// endedLostDropsLocked queues drop orders (lostDrop, sent after the next
// save) for the persisted values node n reports of ended jobs that lost
// it. A heartbeat names the largest wire.MaxPersistedJobs jobs only: when
// n keeps more, every kept final map that names it lost is a candidate
// (a hostile trial's node holding 65 larger jobs' values never named the
// one that had lost it). A job n dropped by order in its present process
// (endedJob.dropped) is not ordered again.
func (c *Controller) endedLostDropsLocked(n *node, now time.Time) {
	if n.persisted.jobs == 0 && len(c.endedDrops) == 0 {
		return // most heartbeats: nothing kept, nothing queued
	}
	due := map[string]bool{}
	for _, h := range n.persisted.largest {
		if e := c.ended.ids[h.Job]; e != nil && e.lostOnly(n.addr) {
			due[h.Job] = true
		}
	}
	if n.persisted.jobs > uint64(len(n.persisted.largest)) {
		for id, e := range c.ended.ids {
			if e.lostOnly(n.addr) && !e.droppedAt(n.addr, n.incarnation) {
				due[id] = true
			}
		}
	}
	for job := range due {
		d := lostDrop{addr: n.addr, job: job}
		if at, ok := c.endedDrops[d]; ok && now.Sub(at) < c.endedLostRetry() {
			continue
		}
		if c.endedDrops == nil {
			c.endedDrops = map[lostDrop]time.Time{}
		}
		c.endedDrops[d] = now
		c.lostDrops = append(c.lostDrops, d)
		c.st.waiting.Store(true)
	}
	for d := range c.endedDrops {
		if d.addr == n.addr && !due[d.job] {
			delete(c.endedDrops, d)
		}
	}
}

// droppedAt reports whether the node at addr, incarnation inc (0: not
// known, never matched), dropped e's job's values by order and answered
// that it keeps none.
func (e *endedJob) droppedAt(addr string, inc uint64) bool {
	return inc != 0 && e.dropped[addr] == inc
}

// noteEndedDropped records that the node at addr, incarnation inc,
// dropped the ended job's values by order and keeps none of them: its
// heartbeat's persisted list, when it names only the largest jobs, cannot
// say so, and the map is kept for it no longer (anyMayKeepLocked).
func (c *Controller) noteEndedDropped(job, addr string, inc uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.ended.ids[job]
	if e == nil || inc == 0 {
		return
	}
	if e.dropped == nil {
		e.dropped = map[string]uint64{}
	}
	e.dropped[addr] = inc
}

// names reports whether e's final map names addr among its nodes
// (member) and among its lost nodes (lost).
func (e *endedJob) names(addr string) (member, lost bool) {
	member = slices.ContainsFunc(e.nodes, func(mn wire.MapNode) bool { return mn.Addr == addr })
	lost = slices.ContainsFunc(e.lost, func(l wire.LostNode) bool { return l.Addr == addr })
	return member, lost
}

// lostOnly reports whether e's final map names addr lost and not among
// its nodes.
func (e *endedJob) lostOnly(addr string) bool {
	member, lost := e.names(addr)
	return lost && !member
}

// namesLost reports whether a live job or a kept final map names addr
// lost: a dead node there is not forgotten, since it may come back with
// those jobs' data, and its return must find it known.
func (c *Controller) namesLostLocked(addr string) bool {
	if len(c.lostFrom[addr]) > 0 {
		return true
	}
	for _, e := range c.ended.ids {
		if _, lost := e.names(addr); lost {
			return true
		}
	}
	return false
}

// Persisted values lost with a node's process.
//
// A node of an ended job's final map whose process goes away, by a
// restart (restartedLocked) or a drain that retires it with them
// (retireLocked), takes the job's persisted values it held with it. The
// node at the address, a new process or none, then holds none, and a read
// through the job's credential would answer "not found" and a listing
// would look complete: a new user's trial (30 values over 3 nodes, one
// node killed and restarted) listed 17 and exited 0, and a whole cluster's
// restart listed nothing. So such a node leaves the final map's nodes and
// joins its lost ones (endedLoseLocked), at the map's epoch plus one (a
// LostNode's Epoch is the first epoch without it), when it may have held
// some (mayKeepLocked of the old process: it reported the job, had not
// reported since the job ended, or was dead); reads of its keys answer
// "lost" and listings say what is missing, as for a live job. The SDKs
// take the controller's final map over a credential's of the same epoch
// that names fewer lost nodes. Such a map is kept after no node keeps any
// of the values (keepsLost), so that the answer stays "lost"; beyond
// Config.MaxEndedJobs those of the client with the most kept maps are
// dropped first, the oldest first (boundEndedLocked). Before, anyone's
// went first: a hostile trial's 4,200 jobs of one client, each
// persisting a byte, turned another client's "lost" into "not found",
// and its listing looked complete.

// endedLoseLocked marks addr, whose process went away (why), lost in the
// final maps of ended jobs it may have held persisted values of.
func (c *Controller) endedLoseLocked(addr, why string) {
	for _, e := range c.ended.ids {
		if i := e.member(addr); i >= 0 && c.mayKeepLocked(addr, e) {
			c.loseEndedLocked(e, i, why)
		}
	}
}

// endedRetireLocked takes n, retired (why; lost: it died draining, or its
// deadline passed with values not moved), out of the final maps of ended
// jobs. A drain that moved all its data (not lost) left n holding of an
// ended job only what its reports name (keepsByReportLocked: a job whose
// end it had not applied yet was moved as a live one, and a node drains
// only once its last report listed what it kept), so each other final map
// naming it lets it go as a node that left, not lost. Before, a drain
// that overlapped a job's end listed its node lost in the job's final
// map whenever the node had not reported since the end: a new user's
// trial (2 of 2) read "lost" for keys never written, and `pocket ls`
// exited 3, while every value had moved and read back.
func (c *Controller) endedRetireLocked(n *node, why string, lost bool) {
	if lost {
		c.endedLoseLocked(n.addr, why)
		return
	}
	for _, e := range c.ended.ids {
		i := e.member(n.addr)
		switch {
		case i < 0:
		case c.keepsByReportLocked(n, e):
			c.loseEndedLocked(e, i, why)
		default:
			e.nodes = slices.Delete(slices.Clone(e.nodes), i, i+1)
			c.dirtyJobLocked(e.id)
			c.cfg.Logger.Info("controller: an ended job's final map lets a drained node go (its values moved)", "job", e.id, "node", n.addr, "why", why)
		}
	}
}

// member is the index of addr among e's final map's nodes, -1 when not
// there.
func (e *endedJob) member(addr string) int {
	return slices.IndexFunc(e.nodes, func(mn wire.MapNode) bool { return mn.Addr == addr })
}

// loseEndedLocked moves e's i-th node from its final map's nodes to its
// lost ones, at the map's epoch plus one.
func (c *Controller) loseEndedLocked(e *endedJob, i int, why string) {
	addr := e.nodes[i].Addr
	lost := append(slices.Clone(e.lost), wire.LostNode{Addr: addr, Weight: e.nodes[i].Weight, Epoch: e.epoch + 1})
	if over := len(lost) - wire.MaxLostNodes; over > 0 {
		lost = lost[over:]
	}
	e.lost = lost
	e.nodes = slices.Delete(slices.Clone(e.nodes), i, i+1)
	c.dirtyJobLocked(e.id)
	c.cfg.Logger.Warn("controller: an ended job's persisted values on a node are lost", "job", e.id, "node", addr, "why", why)
}

// keepsLost reports whether e names a node lost after the job ended
// (endedLoseLocked): the map is kept to answer "lost" for its keys.
func (e *endedJob) keepsLost() bool {
	return slices.ContainsFunc(e.lost, func(l wire.LostNode) bool { return l.Epoch > e.epoch })
}

// lostOnlyLocked reports whether e is kept only to answer "lost": no
// node may keep any of its values (keepsLost, and not anyMayKeepLocked).
func (c *Controller) lostOnlyLocked(e *endedJob) bool {
	return e.keepsLost() && !c.anyMayKeepLocked(e)
}
