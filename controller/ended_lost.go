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
// it.
func (c *Controller) endedLostDropsLocked(n *node, now time.Time) {
	reported := map[string]bool{}
	for _, h := range n.persisted.largest {
		reported[h.Job] = true
		e := c.ended.ids[h.Job]
		if e == nil || !e.lostOnly(n.addr) {
			continue
		}
		d := lostDrop{addr: n.addr, job: h.Job}
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
		if d.addr == n.addr && !reported[d.job] {
			delete(c.endedDrops, d)
		}
	}
}

// lostOnly reports whether e's final map names addr lost and not among
// its nodes.
func (e *endedJob) lostOnly(addr string) bool {
	isAddr := func(a string) bool { return a == addr }
	return slices.ContainsFunc(e.lost, func(l wire.LostNode) bool { return isAddr(l.Addr) }) &&
		!slices.ContainsFunc(e.nodes, func(mn wire.MapNode) bool { return isAddr(mn.Addr) })
}

// namesLost reports whether a live job or a kept final map names addr
// lost: a dead node there is not forgotten, since it may come back with
// those jobs' data, and its return must find it known.
func (c *Controller) namesLostLocked(addr string) bool {
	if len(c.lostFrom[addr]) > 0 {
		return true
	}
	for _, e := range c.ended.ids {
		if slices.ContainsFunc(e.lost, func(l wire.LostNode) bool { return l.Addr == addr }) {
			return true
		}
	}
	return false
}
