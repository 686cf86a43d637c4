package controller

import (
	"slices"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// A job that lost a node gets another.
//
// A node lost by a job (dead past the grace, or restarted: dead.go), or
// drained and retired (drain.go), leaves its map, and the job's
// allotment spreads over the nodes left.
// When those nodes, idle, could no longer carry it (their bandwidth on
// the job's tier, or their capacity, is below the job's allotment:
// holdsAllotLocked), the job's map grows by one node at a sweep, as a
// growth does (growJobLocked: the node joins, the values it now owns move
// to it, the epoch is bumped twice), until they could, or no node can
// join. This runs whether or not the autoscaler does: before, only the
// autoscaler's per-job policy grew a map, and only under load, so on a
// cluster without it a new user's 200 MiB reservation on two 128 MiB
// nodes, one of them killed, could store 126 MiB beside an idle node and
// then answered "tier full".
//
// The node taken is the active node of the job's tier outside its map,
// not lost by it, with the most spare bandwidth and a spare byte
// (growCandidatesLocked); failing that, a node the job lost that has
// restarted since, or dropped the job's data by order and forgot the
// job, and so holds none of its data (job.lostClean, dead.go), as a
// drain or an adoption takes one. Never a node restored from the state
// and not heard from since. The job waits while its map changes or one
// of its nodes is dead within the grace (its values could not move), and
// for refillDelay after its latest loss or drain. The drain's time is
// stored with the job (state.Job Drained), so a controller restarted
// after it refills as well. Before, a new user's 96 MiB reservation on two 64 MiB nodes, one of
// them drained, kept one node and answered "tier full" to 27 of 70 puts
// beside an empty node.
// A job that lost a node whose nodes carry its allotment but are
// oversubscribed, allotted to other jobs beside it (a job that lost every
// node is adopted by the nodes there are: dead.go), is refilled the same
// way, onto a node with bandwidth to spare (oversubscribedLocked).
// The node replaces one the job was sized with, so it does not count as
// growth the per-job policy may shed (job.grown). When no running node
// can join, the autoscaler (when it runs) starts one (refillStarved),
// within its MaxNodes and cool-down, as for a pressed job.

// refillDelay is how long after a loss a job waits before another node
// joins its map: its clients first follow the loss's map (a restarted
// node's puts, refused until the node has synced, are sent again), and a
// node that flaps is not taken at once. Without it, a node restarted at
// its address was taken back within a sweep, and the two map changes in a
// row outran puts still catching up with the first (a test under load:
// "stale map epoch" after the SDK's retries).
const refillDelay = 3 * time.Second

// refillLocked grows, by one node each, the maps of the live jobs that
// lost a node and whose nodes left no longer carry their allotment.
func (c *Controller) refillLocked(now time.Time) {
	for _, j := range c.jobs {
		if !c.refillDueLocked(j, now) {
			continue
		}
		addr, ok := c.refillCandidateLocked(j)
		if !ok {
			continue
		}
		c.cfg.Logger.Info("controller: job lost or drained a node and its nodes left do not carry its allotment; another joins",
			"job", j.id, "node", addr, "alloc_mbps", j.allocMbps, "alloc_bytes", j.allocBytes)
		delete(j.lostClean, addr) // it holds the job's data from now on
		c.growJobLocked(j, addr, now)
		j.grown-- // it replaces a node the job was sized with
	}
}

// refillDueLocked reports whether j waits for a node to refill its map:
// live, it lost a node or had one drained, refillDelay ago or more, its
// map is not changing, no node of it is dead, and its nodes do not carry
// its allotment, or, for one that lost a node (not one drained: scale-in
// drains by the nodes' measured load, and leaves allotments as they
// fall), a node of them is oversubscribed.
func (c *Controller) refillDueLocked(j *job, now time.Time) bool {
	var since time.Time
	switch {
	case len(j.lost) > 0:
		since = j.lostAt
		if j.drainedAt.After(since) {
			since = j.drainedAt
		}
	case !j.drainedAt.IsZero():
		since = j.drainedAt
	default:
		return false
	}
	return !j.revoked && now.Sub(since) >= refillDelay && !c.changingLocked(j) &&
		c.deadMemberLocked(j) == "" && (!c.holdsAllotLocked(j, "") || len(j.lost) > 0 && c.oversubscribedLocked(j) != "")
}

// oversubscribedLocked names a node of j's map whose jobs together are
// allotted more than it has on j's tier (bandwidth, or bytes); "" when
// none is. A job that lost its nodes is adopted by the nodes there are
// (adoptLostLocked), which may be allotted to other jobs already; its
// nodes then carry its own allotment as on idle nodes
// (holdsAllotLocked) but not beside theirs. Before, such a job stayed
// there: a restarted controller's trial saw three jobs at 1.3x on one
// node with --max-nodes allowing 4.
func (c *Controller) oversubscribedLocked(j *job) string {
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		l := c.loads[mn.Addr]
		if !ok || l == nil || n.state != wire.NodeActive {
			continue
		}
		t := n.tier(j.tier)
		if t == nil {
			continue
		}
		if l.mbps > c.tierMbps(*t)*(1+1e-9) || l.bytes[j.tier] > t.CapacityBytes {
			return mn.Addr
		}
	}
	return ""
}

// refillStarved reports whether a job waits for a node to refill its map
// (refillDueLocked) that no running node can give: the autoscaler, when
// it runs, then has the orchestrator start one (Autoscaler.Step), which
// the next sweep takes.
func (c *Controller) refillStarved(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, j := range c.jobs {
		if !c.refillDueLocked(j, now) {
			continue
		}
		if _, ok := c.refillCandidateLocked(j); !ok {
			return true
		}
	}
	return false
}

// refillCandidateLocked is the node refillLocked adds to j's map.
func (c *Controller) refillCandidateLocked(j *job) (string, bool) {
	cands := c.growCandidatesLocked(j, 1)
	// A job whose nodes carry its allotment is due for being on an
	// oversubscribed node: only onto one with bandwidth to spare, or it
	// would move the oversubscription there.
	over := c.holdsAllotLocked(j, "")
	if i := slices.IndexFunc(cands, func(cd candidate) bool { return !cd.unheard && (!over || cd.spareMbps > 0) }); i >= 0 {
		return cands[i].addr, true
	}
	var best *candidate
	for _, cd := range c.candidatesLocked(j.tier) {
		if cd.unheard || !j.lostClean[cd.addr] || j.has(cd.addr) || cd.spareBytes <= 0 || over && cd.spareMbps <= 0 {
			continue
		}
		if best == nil || better(&cd, best, true) {
			best = &cd
		}
	}
	if best == nil {
		return "", false
	}
	return best.addr, true
}
