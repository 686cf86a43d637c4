package controller

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Maps that change under a running job
//
// The autoscaler (autoscale.go) also watches each job on its own, with two
// kinds of figures from the heartbeats of the nodes of its map (JobUtil):
//
//   - the nodes' utilization, per dimension: their measured network share
//     (max of rx and tx over bandwidth, averaged over Smooth heartbeats)
//     weighted by bandwidth, and the bytes used of the job's tier over its
//     capacity; the binding one counts (Max);
//   - the job's own traffic on them (Mbps): the sum of the per-job figures
//     its nodes report (max of its rx and tx there, averaged over Smooth
//     heartbeats; jobload.go), or, from a node that reports none (an older
//     node), the node's traffic split among its jobs by allotment. The
//     values a change of its map moves are not its traffic: while its map
//     changes and until its nodes have sent Smooth heartbeats since, its
//     figures are settling (JobUtil.Settling) and do not grow the job.
//
// Then, one change per job at a time, at most one per JobCooldown:
//
//   - pressed (pressedLocked: its nodes over the band with its own
//     traffic or bytes beyond its allotment, or, once, one node of its map
//     over the band with load no growth answers): the job's map gains a
//     node (growJobLocked): the active node of
//     its tier outside the map, not lost by the job, with the most spare
//     bandwidth, whose own utilization is under Low. When there is none
//     the autoscaler starts one through its orchestrator, and the job
//     grows onto it at a later evaluation;
//   - its nodes under Low (latest figures, as scale-in), and the rest of
//     its nodes would stay under the band's middle, in bandwidth and in
//     capacity, each of them with its share of what the node shed held
//     (dropSafeLocked, dropFitsLocked): the map sheds one of
//     the nodes growth added, the one holding the least (shrinkJobLocked).
//     These are the nodes' figures, whoever's load they carry: a job does
//     not shed a node onto nodes other jobs keep busy. Hints still win: a
//     map never shrinks below the nodes it was sized with (job.grown
//     counts the nodes growth added), nor, for a job with size hints,
//     below the nodes whose bandwidth and capacity hold its allotment
//     (holdsHintsLocked: a node drained from the cluster or lost does
//     not lower the growth count).
//
// A node of the job's map draining from the cluster, or dead, is a change
// of its map too (or will be, when it leaves): meanwhile the autoscaler
// neither grows nor shrinks the job, and its cool-downs run from the last
// evaluation that saw it (about when the node left). Only the drain grows
// it, when its other nodes have no room for the values (drain_grow.go).
//
// A change is carried out like a drain (drain.go), for one job only:
//
//  1. the node joins marked NodeJoining in the job's map, or is marked
//     NodeDraining in it (it stays active for other jobs); the epoch is
//     bumped. Clients put each (key, chunk) to its owner under the map
//     without the draining nodes and also look for it at its owner under
//     the map without the joining ones (pocket/drain.go); under weighted
//     rendezvous hashing only the keys the changed node gains or loses
//     (its weight's share, about 1/n) have two owners;
//  2. every other live node of the map, having learned the epoch from its
//     heartbeat ack, moves the values whose owner changed to the new owner
//     with the data plane's conditional puts (dataplane/migrate.go: never
//     over a newer write, never bringing back a deleted key) and reports
//     how many are left (wire.MoveReport);
//  3. once every live node other than a joining one has reported none
//     left at the change's epoch or later, the change ends: the joining
//     node becomes an ordinary member, or the leaving node leaves the map;
//     the epoch is bumped again.
//
// A node that dies or drains while it joins or leaves ends the change at
// once, as a plain member: what it holds is then the dead-node (dead.go)
// or drain machinery's to handle.
//
// The controller hands a new epoch to clients (GetMap) only once every
// live node of the map has confirmed it in a heartbeat (publishedLocked):
// until then it hands out the map before. So no client routes by a map its
// nodes have not heard of, and a node that has heard refuses the older
// epoch (a client refetches until the new map is out, pocket/route.go):
// a write can never land at an old owner after a reader was told to look
// at the new one. A node that heartbeats without catching up holds the
// epoch back for confirmWait at most; one that the map takes keys from
// holds it back until it confirms it or the lease it held at the change
// ends (ownerBehindLocked), since it may serve the older map until then.

// move is a change of a job's map in progress.
type move struct {
	epoch  uint64 // the epoch the change started at
	addr   string // the node joining or leaving
	role   wire.NodeState
	start  time.Time
	done   map[string]uint64 // nodes that reported nothing left, and at which epoch
	warned bool              // its slowness was logged
	// Its progress (undo.go): each node's latest count of values left,
	// when one last went down, and whether it undoes an earlier change.
	left     map[string]int64
	progress time.Time
	undone   bool
	// The changed node's bytes of the job, the most (joining) or least
	// (leaving) its heartbeats showed, once seen (bytesProgressLocked).
	bytesBest int64
	bytesSeen bool
}

// slowMove is how long a change may run before the controller warns (once)
// that it is still waiting, and for which nodes: a wedged mover, or a node
// whose puts to the new owner fail, holds the change (and the job's next
// one) open.
const slowMove = DefaultDrainDeadline

// restoredMove rebuilds the change in progress of a job read from the
// durable state; its nodes report again.
func restoredMove(j *job) *move {
	for _, mn := range j.nodes {
		if mn.State == wire.NodeJoining || mn.State == wire.NodeDraining {
			return &move{epoch: j.epoch, addr: mn.Addr, role: mn.State, start: time.Now(), done: map[string]uint64{}}
		}
	}
	return nil
}

// startMoveLocked records j's change in progress.
func (c *Controller) startMoveLocked(j *job, mv *move) {
	j.move = mv
	if mv != nil {
		c.moving[j] = struct{}{}
		c.liftQuotaLocked(j)
	}
}

// movesTick ends the changes in progress that are complete or whose node
// is no longer an active member, and forgets those of jobs that ended; the
// sweeper calls it every heartbeat interval.
func (c *Controller) movesTick(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for j := range c.moving {
		if j.revoked || j.move == nil {
			delete(c.moving, j)
			continue
		}
		if c.finishMoveLocked(j, now) {
			continue
		}
		c.bytesProgressLocked(j, now)
		if c.stuckLocked(j, now) {
			c.undoMoveLocked(j, now)
			continue
		}
		if !j.move.warned && now.Sub(j.move.start) > slowMove {
			j.move.warned = true
			c.cfg.Logger.Warn("controller: a job's map change is still waiting", "job", j.id, "node", j.move.addr,
				"for", now.Sub(j.move.start).Round(time.Second), "waiting_on", c.waitingOnLocked(j))
		}
	}
}

// waitingOnLocked lists the nodes j's change waits for.
func (c *Controller) waitingOnLocked(j *job) []string {
	var out []string
	for _, mn := range j.nodes {
		if mn.Addr == j.move.addr && j.move.role == wire.NodeJoining {
			if n, ok := c.nodes[mn.Addr]; ok && n.state == wire.NodeDead {
				out = append(out, mn.Addr+" (joining, dead)")
			}
			continue
		}
		if _, done := j.move.done[mn.Addr]; !done {
			out = append(out, mn.Addr)
		}
	}
	return out
}

// roleOf is a map node's role in its job's map change (0: none).
func roleOf(mn wire.MapNode) uint8 {
	if mn.State == wire.NodeJoining || mn.State == wire.NodeDraining {
		return uint8(mn.State)
	}
	return 0
}

// publishedLocked is the map clients are handed: the current one once
// every live node of it has confirmed its epoch, else the last one handed
// out.
//
// A node that stays behind (its table's revision does not reach the
// change's) holds the map back for at most confirmWait from the change,
// unless the map takes keys from it (ownerBehindLocked): then for the
// lease it held at the change.
func (c *Controller) publishedLocked(j *job) *wire.PlacementMap {
	if c.publishableLocked(j) {
		j.pub = c.mapLocked(j)
	}
	return j.pub
}

// publishableLocked reports whether j's current map may be handed out:
// once its live nodes have confirmed it, or confirmWait after the bump,
// and in either case not while a node the map takes keys from may still
// serve clients of the map before (ownerBehindLocked).
func (c *Controller) publishableLocked(j *job) bool {
	if j.pub != nil && j.pub.Epoch == j.epoch {
		return true
	}
	if !c.confirmedLocked(j) && time.Since(j.bumped) <= c.confirmWait() {
		return false
	}
	return c.ownerBehindLocked(j, time.Now()) == ""
}

// loss is a node's part in a map that takes keys from it: since rev, the
// revision of the epoch that began it, holding a lease that ends at
// leaseEnd (its lease then: the acks after the bump carry the new epoch,
// extendLossesLocked), as a node leaving the map (leaves) or as a member
// while another joins.
type loss struct {
	rev      uint64
	leaseEnd time.Time
	leaves   bool
}

// noteLosingLocked records, after a bump of j's map, the nodes it takes
// keys from: while a node joins, every other member (its keys that the
// joining node owns now move); a node leaving the map, or draining from
// the cluster. A node whose part is the same keeps its mark (its first
// bump's); one whose part changes (a member of a grow that starts
// draining: a review found the drain's map handed out on the grow's
// confirmation) gets a new one. A node that left the map (retired at a
// drain's deadline, or lost) keeps its mark while it has not confirmed it
// and its lease runs: it may serve the map before (a review: a drain's
// deadline retired a silent node, and the map without it went out at
// once).
func (c *Controller) noteLosingLocked(j *job) {
	joining := slices.ContainsFunc(j.nodes, func(mn wire.MapNode) bool { return mn.State == wire.NodeJoining })
	losing := map[string]loss{}
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		// A drain's node that turned dead drains still (n.drain).
		leaves := mn.State == wire.NodeDraining || ok && (n.state == wire.NodeDraining || n.drain != nil)
		if !(leaves || joining && mn.State != wire.NodeJoining) {
			continue
		}
		l, was := j.losing[mn.Addr]
		switch {
		case was && l.leaves == leaves:
		case ok:
			l = loss{rev: j.epochRev, leaseEnd: later(l.leaseEnd, n.leaseEnd), leaves: leaves}
		default:
			continue
		}
		losing[mn.Addr] = l
	}
	now := time.Now()
	for addr, l := range j.losing {
		if _, kept := losing[addr]; kept || j.has(addr) {
			continue
		}
		// One gone from the registry since (retired) had not confirmed
		// when its mark was kept.
		if n, ok := c.nodes[addr]; (!ok || n.since < l.rev) && now.Before(l.leaseEnd) {
			losing[addr] = l
		}
	}
	j.losing = losing
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// extendLossesLocked makes the marks of the maps that take keys from n
// (noteLosingLocked) last as long as the lease ack gives it when ack
// does not bring its job table to their revision: a delta capped at
// maxAckJobs or maxAckBytes, or a page of a snapshot before its last.
// The node serves its older table under the new lease. Before, the mark
// kept the lease of the bump, and the map went out while the node, never
// told it, served the older one (a review: 4,106 jobs registered after
// the node's table, then a grow).
func (c *Controller) extendLossesLocked(n *node, ack *wire.NodeAck) {
	l := c.loads[n.addr]
	if l == nil || ack.Rev >= c.rev && !(ack.Full && ack.More) {
		return // a whole table: no mark is past it (most acks)
	}
	for j := range l.jobs {
		if m, ok := j.losing[n.addr]; ok && (ack.Rev < m.rev || ack.Full && ack.More) && n.leaseEnd.After(m.leaseEnd) {
			m.leaseEnd = n.leaseEnd
			j.losing[n.addr] = m
		}
	}
}

// ownerBehindLocked names a node that j's map takes keys from (a member
// while a node joins, a node leaving the map or draining from the
// cluster: noteLosingLocked) which has not confirmed the epoch that began
// it and may still serve its jobs within the lease it held then
// (dataplane/lease.go); "" when none. Such a node is behind, cut off from
// the controller or frozen, but maybe not from its clients: it serves the
// older map to clients that hold it, so handing out the newer one would
// let a client put a key at its new owner while another reads the older
// value at that node. Dead nodes count (confirmedLocked does not wait for
// them), and so do nodes that have reported no job table (a node takes
// any epoch of a job it has not heard of). The wait ends with the lease
// the node held at the bump: an ack after it carried the new epoch, so a
// node still serving past that lease has learned it. A node heard from
// since is waited for too: a heartbeat that reached the controller says
// nothing of its ack reaching the node (a trial's proxy dropped it, and
// the node served the older map), nor does one from a node whose table
// does not catch up. Before, any node was waited for confirmWait at
// most (hostile trials: puts acknowledged at a joining node read back
// stale at a muted node, 13 of 13; a drain of a muted node, 60 of 60),
// then, for a while, a node heard since the bump was not. A node
// without a lease (DeadNodeGrace negative) serves on with no end and is
// not waited for.
//
// A node that has left the registry since (retired) is taken as not
// having confirmed: noteLosingLocked kept its mark only if it had not.
func (c *Controller) ownerBehindLocked(j *job, now time.Time) string {
	for addr, l := range j.losing {
		n, ok := c.nodes[addr]
		if (!ok || n.since < l.rev) && now.Before(l.leaseEnd) {
			return addr
		}
	}
	return ""
}

// confirmWait bounds how long the nodes of a map may hold a new epoch
// back: DeadAfter (a node that stops heartbeating is dead by then and no
// longer waited for), at most 5 heartbeat intervals (a heartbeating node
// confirms within one or two).
func (c *Controller) confirmWait() time.Duration {
	return min(c.cfg.DeadAfter, 5*c.cfg.HeartbeatInterval)
}

// publishedMap is GetMap's map: the published one, with the job's
// allotment (AllocMbps, AllocBytes) as it stands. A job restored from
// the durable state has none yet: its map is handed out once its nodes
// have synced with this run, waiting for that (confirmWait), so a
// restart never hands out an epoch its nodes have not heard of.
func (c *Controller) publishedMap(id string, tok []byte) (*wire.PlacementMap, error) {
	return c.awaitMap(func() (*wire.PlacementMap, bool, error) {
		j, err := c.lookupLocked(id, tok)
		if err != nil {
			return nil, true, err
		}
		if j.pub != nil || c.publishableLocked(j) {
			// A copy carrying the job's allotment as it stands (the
			// published map does not): job deregister says what it gives
			// back.
			m := *c.publishedLocked(j)
			m.AllocMbps, m.AllocBytes = j.allocMbps, j.allocBytes
			return &m, true, nil
		}
		if addr := c.ownerBehindLocked(j, time.Now()); addr != "" && time.Since(j.bumped) > c.confirmWait() {
			// A restored job has no map handed out before to answer
			// with: say why, rather than hold the call for the lease.
			return nil, true, wire.Errorf(wire.CodeUnavailable, "job %s's map is held back: node %s, which it takes keys from, "+
				"has not confirmed it and may serve the map before until its lease ends in %v; fetch it again then",
				j.id, addr, time.Until(j.losing[addr].leaseEnd).Round(time.Second))
		}
		return nil, false, nil
	})
}

// awaitMap calls try under c.mu until it is done (it answers the map or
// an error), every 25 ms, or until the controller closes (CodeClosed).
func (c *Controller) awaitMap(try func() (m *wire.PlacementMap, done bool, err error)) (*wire.PlacementMap, error) {
	for {
		c.mu.Lock()
		m, done, err := try()
		c.mu.Unlock()
		if done {
			return m, err
		}
		select {
		case <-c.srv.done:
			return nil, wire.Errorf(wire.CodeClosed, "controller closed")
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// confirmedLocked reports whether every live node of j's map that has
// reported a job table has one at or after j's latest epoch change (a node
// that has not is syncing: it will get the latest epoch whole).
func (c *Controller) confirmedLocked(j *job) bool {
	return c.reachedLocked(j.nodes, j.epochRev)
}

// reachedLocked reports whether every live node of nodes that has
// reported a job table has one at or after rev: a dead node, one the
// registry does not know, or one that has reported none (it will sync
// whole) is not waited for.
func (c *Controller) reachedLocked(nodes []wire.MapNode, rev uint64) bool {
	for _, mn := range nodes {
		n, ok := c.nodes[mn.Addr]
		if !ok || n.state == wire.NodeDead || (n.since == 0 && !n.restored) {
			continue
		}
		if n.since < rev {
			return false
		}
	}
	return true
}

// moveReportsLocked records a node's move reports and ends the changes
// they complete.
func (c *Controller) moveReportsLocked(n *node, rs []wire.MoveReport) {
	for _, r := range rs {
		j, ok := c.jobs[r.Job]
		if !ok || j.move == nil || r.Epoch < j.move.epoch || !j.has(n.addr) {
			continue
		}
		now := time.Now()
		j.move.progressLocked(n.addr, r.Left, now)
		if r.Left == 0 {
			j.move.done[n.addr] = r.Epoch
		} else {
			delete(j.move.done, n.addr)
		}
		c.finishMoveLocked(j, now)
	}
}

// finishMoveLocked ends j's change when every node of the map other than
// a joining one has moved its values, or when the changed node is no
// longer a member that can finish it (it drains from the cluster, or left
// the map: lost, forgotten). A dead node, changed or not, holds the change
// open while it stays in the map: it may come back with the values it has
// not moved (or, joining, without the values not moved to it yet); once
// it is lost it leaves the map, and the change goes on without it. It
// reports whether the change ended.
func (c *Controller) finishMoveLocked(j *job, now time.Time) bool {
	mv := j.move
	if mv == nil {
		return false
	}
	changed, ok := c.nodes[mv.addr]
	abort := !ok || changed.state == wire.NodeDraining || !j.has(mv.addr)
	if !abort {
		if changed.state == wire.NodeDead {
			return false
		}
		for _, mn := range j.nodes {
			if mn.Addr == mv.addr && mv.role == wire.NodeJoining {
				continue
			}
			if _, ok := c.nodes[mn.Addr]; !ok {
				continue // forgotten: nothing of it to wait for
			}
			if _, done := mv.done[mn.Addr]; !done {
				return false
			}
		}
	}
	nodes := make([]wire.MapNode, 0, len(j.nodes))
	for _, mn := range j.nodes {
		if mn.Addr == mv.addr && mv.role == wire.NodeDraining && !abort {
			continue // it left the map with nothing of the job on it
		}
		mn.State = wire.NodeActive
		if mn.Addr == mv.addr && mv.role == wire.NodeJoining && mn.Since == wire.SinceNotYet {
			mn.Since = j.epoch + 1 // the epoch bumpLocked publishes below
		}
		nodes = append(nodes, mn)
	}
	c.renormalizeLocked(j, nodes)
	c.bumpLocked(j)
	j.move, j.lastChange = nil, now
	delete(c.moving, j)
	what := map[wire.NodeState]string{wire.NodeJoining: "joined", wire.NodeDraining: "left"}[mv.role]
	if mv.undone {
		what += " (undoing a change that made no progress)"
	}
	if abort {
		what = "stopped changing (drains from the cluster, or left the map)"
	} else if mv.role == wire.NodeDraining {
		j.grown = max(0, j.grown-1)
	}
	c.cfg.Logger.Info("controller: job map changed", "job", j.id, "node", mv.addr, "change", what,
		"took", now.Sub(mv.start).Round(time.Millisecond), "nodes", len(nodes), "epoch", j.epoch)
	return true
}

// GrowJob adds the active node addr to the map of the running job id and
// moves the values it now owns to it (see the top of this file); addr ""
// picks the node (the one with the most spare bandwidth). Errors:
// CodeUnknownJob, CodeNotFound for a node that is not active or lacks the
// job's tier, CodeExists when addr is in the map, CodeBusy while the map
// is changing, CodeNoSpace when no node can be added or addr has no spare
// byte of the tier. The node gets no more of the job's bytes (its
// allotment, or what it holds when more) than it has spare
// (growJobLocked).
func (c *Controller) GrowJob(id, addr string) error {
	c.mu.Lock()
	err := c.growJobByIDLocked(id, addr, time.Now())
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.flush()
}

// ShrinkJob takes the node addr out of the map of the running job id,
// moving its values of the job to the other nodes first; addr "" picks the
// node holding the least. Errors: CodeUnknownJob, CodeNotFound for a node
// not in the map, CodeBusy while the map is changing, CodeUnavailable when
// the map has no other active node.
func (c *Controller) ShrinkJob(id, addr string) error {
	c.mu.Lock()
	err := c.shrinkJobByIDLocked(id, addr, time.Now())
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.flush()
}

// changeableLocked is the live job id whose map may change now: errors
// CodeUnknownJob, or CodeBusy while a change runs.
func (c *Controller) changeableLocked(id string) (*job, error) {
	j, ok := c.jobs[id]
	if !ok || j.revoked {
		return nil, wire.Errorf(wire.CodeUnknownJob, "job %s is not registered", id)
	}
	if j.move != nil {
		return nil, wire.Errorf(wire.CodeBusy, "job %s's map is changing (node %s)", id, j.move.addr)
	}
	return j, nil
}

func (c *Controller) growJobByIDLocked(id, addr string, now time.Time) error {
	j, err := c.changeableLocked(id)
	if err != nil {
		return err
	}
	if addr == "" {
		cands := c.growCandidatesLocked(j, 1)
		if len(cands) == 0 {
			return wire.Errorf(wire.CodeNoSpace, "no active %s node outside job %s's map can take part of it", kindName(j.tier), id)
		}
		addr = cands[0].addr
	}
	if j.has(addr) {
		return wire.Errorf(wire.CodeExists, "node %s is in job %s's map already", addr, id)
	}
	if dead := c.deadMemberLocked(j); dead != "" {
		return wire.Errorf(wire.CodeUnavailable, "node %s of job %s's map is dead: it could not move its values to a new node", dead, id)
	}
	n, ok := c.nodes[addr]
	if !ok || n.state != wire.NodeActive || n.tier(j.tier) == nil || c.lostByLocked(j, addr) {
		return wire.Errorf(wire.CodeNotFound, "node %s is not an active %s node job %s can use", addr, kindName(j.tier), id)
	}
	if c.spareBytesLocked(addr, j.tier) <= 0 {
		return wire.Errorf(wire.CodeNoSpace, "node %s has no spare %s byte (its capacity less its use or its jobs' allotments): it could hold none of job %s", addr, kindName(j.tier), id)
	}
	c.growJobLocked(j, addr, now)
	return nil
}

// growJobLocked adds addr to j's map as joining, with the mean weight of
// the map's nodes (so its share of the keys is 1/(n+1)), or less: no more
// of the job's bytes, the larger of its allotment and what its nodes say
// it holds, than the node has spare (growWeight).
func (c *Controller) growJobLocked(j *job, addr string, now time.Time) {
	w := 1.0
	if len(j.nodes) > 0 {
		w = 0
		for _, mn := range j.nodes {
			w += mn.Weight
		}
		w /= float64(len(j.nodes))
		// The bytes the job holds when beyond its allotment (puts beyond a
		// hint are taken while its nodes have room): the joining node is
		// sent its share of those.
		held := int64(min(c.jobUtilLocked(j, 1).Bytes, float64(wire.MaxNodeBytes)))
		spare := int64(float64(c.spareBytesLocked(addr, j.tier)) * growFill)
		w = growWeight(w, spare, max(j.allocBytes, held), j.nodes)
	}
	nodes := append(append([]wire.MapNode(nil), j.nodes...), wire.MapNode{Addr: addr, Weight: w, State: wire.NodeJoining, Since: wire.SinceNotYet})
	c.renormalizeLocked(j, nodes)
	c.bumpLocked(j)
	j.grown++
	c.startMoveLocked(j, &move{epoch: j.epoch, addr: addr, role: wire.NodeJoining, start: now, done: map[string]uint64{}})
	delete(j.undone, addr) // a new change of it: undoable again (undo.go)
	j.lastChange = now
	c.cfg.Logger.Info("controller: job map grows", "job", j.id, "node", addr, "nodes", len(nodes), "epoch", j.epoch)
}

// growFill is the share of a joining node's spare bytes a growth may
// fill with the job's (the autoscaler's default High band): a share of
// the keys is not exactly that share of the bytes, and a tier's size
// classes leave some of its bytes unusable. A hostile re-check's job was
// given all of a 16 MiB node's spare, and its move stuck.
const growFill = 0.8

// growWeight is the weight a node joining a map of nodes gets for a job
// allotted bytes: w (the mean), or less, so that after the weights are
// normalized the node's share of the bytes, w/(sum+w), is at most spare.
// A job of no bytes, or a node that holds all of them, keeps w.
func growWeight(w float64, spare, bytes int64, nodes []wire.MapNode) float64 {
	if bytes <= 0 || spare >= bytes {
		return w
	}
	var sum float64
	for _, mn := range nodes {
		sum += mn.Weight
	}
	share := float64(max(spare, 0)) / float64(bytes) // < 1
	return min(w, share*sum/(1-share))
}

// spareBytesLocked is a node's spare bytes on tier kind, as sizing counts
// them (candidatesLocked); 0 for a node that is not an active one of it.
func (c *Controller) spareBytesLocked(addr string, kind uint8) int64 {
	n, ok := c.nodes[addr]
	if !ok || n.state != wire.NodeActive {
		return 0
	}
	t := n.tier(kind)
	if t == nil {
		return 0
	}
	return max(0, t.CapacityBytes-c.heldBytesLocked(n, t))
}

func (c *Controller) shrinkJobByIDLocked(id, addr string, now time.Time) error {
	j, err := c.changeableLocked(id)
	if err != nil {
		return err
	}
	if addr == "" {
		addr = c.shrinkVictimLocked(j)
	}
	if !j.has(addr) {
		return wire.Errorf(wire.CodeNotFound, "node %s is not in job %s's map", addr, id)
	}
	if !c.otherActiveLocked(j, addr) {
		return wire.Errorf(wire.CodeUnavailable, "node %s is the only active node of job %s's map: its data has nowhere to go", addr, id)
	}
	if n, ok := c.nodes[addr]; !ok || n.state != wire.NodeActive {
		return wire.Errorf(wire.CodeNotFound, "node %s is not active; the drain or dead-node rules handle it", addr)
	}
	c.shrinkJobLocked(j, addr, now)
	return nil
}

// shrinkJobLocked marks addr leaving j's map.
func (c *Controller) shrinkJobLocked(j *job, addr string, now time.Time) {
	nodes := append([]wire.MapNode(nil), j.nodes...)
	for i := range nodes {
		if nodes[i].Addr == addr {
			nodes[i].State = wire.NodeDraining
		}
	}
	c.placeLocked(j, nodes)
	c.bumpLocked(j)
	c.startMoveLocked(j, &move{epoch: j.epoch, addr: addr, role: wire.NodeDraining, start: now, done: map[string]uint64{}})
	delete(j.undone, addr) // a new change of it: undoable again (undo.go)
	j.lastChange = now
	c.cfg.Logger.Info("controller: job map shrinks", "job", j.id, "node", addr, "nodes", len(nodes)-1, "epoch", j.epoch)
}

// changingLocked reports whether j's map is changing: a change of its own
// runs (growth, shrink), or a node of its map drains from the cluster
// (drain.go). Either moves values as the job's puts (jobload.go).
func (c *Controller) changingLocked(j *job) bool {
	if j.move != nil {
		return true
	}
	for _, mn := range j.nodes {
		if n, ok := c.nodes[mn.Addr]; ok && n.state == wire.NodeDraining {
			return true
		}
	}
	return false
}

// deadMemberLocked is a dead node of j's map ("" when none is).
func (c *Controller) deadMemberLocked(j *job) string {
	for _, mn := range j.nodes {
		if n, ok := c.nodes[mn.Addr]; ok && n.state == wire.NodeDead {
			return mn.Addr
		}
	}
	return ""
}

// shrinkVictimLocked picks the active member of j's map holding the least
// bytes of j's tier, not held back (heldBackLocked); "" when none is.
func (c *Controller) shrinkVictimLocked(j *job) string {
	best, bestUsed := "", int64(-1)
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		if !ok || n.state != wire.NodeActive || c.heldBackLocked(j, mn.Addr) {
			continue
		}
		var used int64
		if t := n.tier(j.tier); t != nil {
			used = t.UsedBytes
		}
		if bestUsed < 0 || used < bestUsed || (used == bestUsed && mn.Addr < best) {
			best, bestUsed = mn.Addr, used
		}
	}
	return best
}

// growCandidatesLocked lists the active nodes of j's tier outside its
// map, not lost by it nor held back (heldBackLocked), not joining another
// job's map (joinTargetsLocked), with a spare byte, whose utilization is
// under maxUtil, the most spare bandwidth first. A node with no spare byte
// could hold none of the job's values (growJobLocked gives a node no more
// of the job's bytes than growFill of its spare).
func (c *Controller) growCandidatesLocked(j *job, maxUtil float64) []candidate {
	var out []candidate
	joining := c.joinTargetsLocked()
	for _, cd := range c.candidatesLocked(j.tier) {
		if j.has(cd.addr) || c.lostByLocked(j, cd.addr) || cd.spareBytes <= 0 || c.heldBackLocked(j, cd.addr) || joining[cd.addr] {
			continue
		}
		if c.nodeUtilLocked(c.nodes[cd.addr], j.tier, 1) >= maxUtil {
			continue
		}
		out = append(out, cd)
	}
	sort.Slice(out, func(a, b int) bool { return better(&out[a], &out[b], true) })
	return out
}

// joinTargetsLocked is the set of nodes joining a job's map now. A node
// joins one job's map at a time (growCandidatesLocked): its spare bytes
// count the values moving to it only once they are there, so two jobs
// grown onto it at once were each given most of its spare (a hostile
// re-check: two jobs holding 53 MiB each, grown onto a 16 MiB node in one
// step, about 29.6 MiB aimed at it, both moves stuck).
func (c *Controller) joinTargetsLocked() map[string]bool {
	out := map[string]bool{}
	for _, j := range c.jobs {
		if mv := j.move; mv != nil && mv.role == wire.NodeJoining {
			out[mv.addr] = true
		}
	}
	return out
}

// nodeUtilLocked is one node's utilization: the larger of its measured
// network share (averaged over its last smooth heartbeats) and its tier's
// used share.
func (c *Controller) nodeUtilLocked(n *node, kind uint8, smooth int) float64 {
	if n == nil {
		return 1
	}
	u := c.measuredLocked(n, smooth)
	if t := n.tier(kind); t != nil && t.CapacityBytes > 0 {
		u = max(u, float64(t.UsedBytes)/float64(t.CapacityBytes))
	}
	return u
}

// measuredLocked is a node's measured network share: the larger of rx and
// tx over its bandwidth, averaged over its last smooth heartbeats (each
// divided before it is added, so that no sum of finite shares overflows).
func (c *Controller) measuredLocked(n *node, smooth int) float64 {
	h := n.hist.last(smooth)
	if len(h) == 0 {
		return max(n.rx, n.tx) / c.nodeMbps(n)
	}
	var mean float64
	for _, s := range h {
		mean += s.NetMeasured / float64(len(h))
	}
	return mean
}

// peakLocked is a node's measured network share at its highest over its
// last smooth heartbeats: what scale-in reads, so that only a load low in
// each of them drains or sheds a node (a heartbeat's dip, a pause of the
// clients or a map change's stall, is not a load that ended). The traffic
// of jobs that have ended and have none in the latest heartbeat is left
// out (endedTrafficLocked): that load has ended for good, and waiting it
// out cost the trace about 50 node-seconds in 180 s.
func (c *Controller) peakLocked(n *node, smooth int) float64 {
	h := n.hist.last(smooth)
	if len(h) == 0 {
		return max(n.rx, n.tx) / c.nodeMbps(n)
	}
	bw := c.nodeMbps(n)
	var peak float64
	for i, s := range h { // oldest first: the (len(h)-i)-th latest
		rx, tx, ok := c.endedTrafficLocked(n, len(h)-i)
		if !ok {
			peak = max(peak, s.NetMeasured)
			continue
		}
		// Per direction: an ended job's puts do not hide a live job's
		// gets (a hostile re-check: rx 169 and tx 164 counted as 0).
		peak = max(peak, max(s.RxMbps-rx, s.TxMbps-tx, 0)/bw)
	}
	return peak
}

// endedTrafficLocked is the traffic, rx and tx in Mb/s, that jobs no longer live
// carried in n's k-th latest heartbeat (1: the latest), for those with no
// traffic in the latest one (readers of an ended job's persisted values
// are load that goes on); ok is false beyond the per-job figures kept, or
// from a node that reports none. History and per-job figures are kept for
// the same heartbeats (registry.go), so the k-th of each match.
func (c *Controller) endedTrafficLocked(n *node, k int) (rx, tx float64, ok bool) {
	l := &n.jobLoads
	if k > l.n || !l.reports {
		return 0, 0, false
	}
	latest := l.beat(1).figs
	for id, jl := range l.beat(k).figs {
		if j, live := c.jobs[id]; live && !j.revoked {
			continue
		}
		if now, seen := latest[id]; seen && max(now.RxMbps, now.TxMbps) > 0 {
			continue
		}
		rx += wire.ClampMbps(jl.RxMbps, wire.MaxNodeMbps)
		tx += wire.ClampMbps(jl.TxMbps, wire.MaxNodeMbps)
	}
	return rx, tx, true
}

// JobUtil is one job's utilization as the per-job policy sees it.
type JobUtil struct {
	Job   string
	Nodes int     // active members of its map
	Net   float64 // measured network share of its nodes (fraction)
	Cap   float64 // used share of its tier's capacity on its nodes
	Max   float64 // the binding one
	// Mbps is the job's own traffic on its nodes, summed: each node's
	// per-job figure for it (the larger of rx and tx, averaged like Net),
	// or, from a node that reports none (an older node), the node's
	// traffic split among its jobs by allotment.
	Mbps float64
	// Bytes is the job's own bytes on its nodes, summed: each node's
	// per-job figure, or from a node that reports none its tier's used
	// bytes split by allotment.
	Bytes float64
	// Settling is true while the job's map changes (a growth, a shrink, a
	// drain of one of its nodes) and until each of its nodes has sent the
	// heartbeats it is averaged over since: the values moved travel as
	// the job's puts, and are not its load. Meanwhile Mbps counts only
	// the heartbeats since the change ended (none while it runs), and the
	// per-job policy does not grow the job (jobload.go).
	Settling bool
}

// jobUtilLocked computes j's figures over the active members of its map,
// each node's network share averaged over its last smooth heartbeats.
func (c *Controller) jobUtilLocked(j *job, smooth int) JobUtil {
	return c.jobFiguresLocked(j, smooth, c.measuredLocked)
}

// jobPeakLocked is jobUtilLocked with each node's network share at its
// peak over its last smooth heartbeats (peakLocked), for shrinks.
func (c *Controller) jobPeakLocked(j *job, smooth int) JobUtil {
	return c.jobFiguresLocked(j, smooth, c.peakLocked)
}

// jobFiguresLocked computes j's figures, reading each node's network
// share over its last smooth heartbeats with net.
func (c *Controller) jobFiguresLocked(j *job, smooth int, net func(*node, int) float64) JobUtil {
	u := JobUtil{Job: j.id, Settling: c.changingLocked(j)}
	var bwSum, netSum, used, capacity float64
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		if !ok || n.state != wire.NodeActive {
			continue
		}
		u.Nodes++
		bw, meas := c.nodeMbps(n), net(n, smooth)
		bwSum += bw
		netSum += meas * bw
		own, settled := c.ownLocked(j, n, mn, smooth)
		u.Mbps += own
		u.Settling = u.Settling || !settled
		if t := n.tier(j.tier); t != nil {
			used += float64(t.UsedBytes)
			capacity += float64(t.CapacityBytes)
			u.Bytes += c.jobBytesLocked(j, n, mn, float64(t.UsedBytes))
		}
	}
	if bwSum > 0 {
		u.Net = netSum / bwSum
	}
	if capacity > 0 {
		u.Cap = used / capacity
	}
	u.Max = max(u.Net, u.Cap)
	return u
}

// shareLocked is j's share of the node mn's traffic: its allotment there
// over the allotments of every job on the node (equal shares when none
// has any).
func (c *Controller) shareLocked(j *job, mn wire.MapNode) float64 {
	l := c.loads[mn.Addr]
	if l == nil || len(l.jobs) == 0 {
		return 1
	}
	if l.mbps <= 0 {
		return 1 / float64(len(l.jobs))
	}
	return min(1, j.allocMbps*mn.Weight/l.mbps)
}

// jobStep is the per-job policy's evaluation (see the top of this file).
// It returns the decisions taken and whether a job needs a node that no
// active node can give (the caller starts one).
func (a *Autoscaler) jobStep(now time.Time) (ds []Decision, needNode bool) {
	c, p := a.c, &a.cfg
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, j := range c.jobs {
		if j.revoked {
			continue
		}
		if j.move != nil {
			continue
		}
		if c.changingLocked(j) || c.deadMemberLocked(j) != "" {
			// A node of its map drains from the cluster or is dead: its
			// map changes (or will, when the node leaves it). The
			// cool-downs run from the change, as from the job's own.
			j.lastChange = now
			continue
		}
		if now.Sub(j.lastChange) < p.JobCooldown || now.Sub(j.created) < p.JobCooldown {
			continue
		}
		u := c.jobUtilLocked(j, p.Smooth)
		// Growth waits for figures without a change's moves in them. A
		// shrink may go on: what it reads (its nodes' figures, its own
		// traffic with the moves, dropSafeLocked) a move only raises.
		why := ""
		if !u.Settling {
			why = c.pressedLocked(j, u, p)
		}
		switch {
		case why != "" && u.Nodes < p.MaxNodes && c.deadMemberLocked(j) == "":
			cands := c.growCandidatesLocked(j, p.Low)
			if len(cands) == 0 {
				needNode = true
				continue
			}
			c.growJobLocked(j, cands[0].addr, now)
			ds = append(ds, Decision{At: now, Action: ActionGrowJob, Job: j.id, Count: 1, Nodes: u.Nodes, Util: u.Max,
				Reason: fmt.Sprintf("job %s: its %d node(s) at %s (network %s, capacity %s), %s: adds %s",
					j.id, u.Nodes, pctBeside(u.Max, p.High), pctBeside(u.Net, p.High), pctBeside(u.Cap, p.High), why, cands[0].addr)})
		case why == "" && j.grown > 0 && u.Nodes > 1 && now.Sub(j.lastChange) >= 3*p.JobCooldown && c.hotMemberLocked(j, p) == "":
			// A change stalls the job's traffic for a while (its values
			// move, its clients fetch the new map): shrink on a load low
			// in each of the last Smooth heartbeats (their peak: one
			// heartbeat's dip is not a load that ended), well after the
			// change, never while a node of its map is over the band
			// (what grew it may still be there), and only when the node
			// shed leaves the others under the band's middle and its
			// hints held.
			now1 := c.jobPeakLocked(j, p.LowFor)
			if now1.Max >= p.Low {
				continue
			}
			victim := c.shrinkVictimLocked(j)
			middle := (p.High + p.Low) / 2
			if victim == "" || !c.otherActiveLocked(j, victim) || !c.holdsHintsLocked(j, victim) ||
				!c.dropSafeLocked(j, victim, middle, p.LowFor) || !c.dropFitsLocked(j, victim, middle) {
				continue
			}
			projected := now1.Max * float64(now1.Nodes) / float64(now1.Nodes-1)
			if projected > middle {
				continue
			}
			c.shrinkJobLocked(j, victim, now)
			ds = append(ds, Decision{At: now, Action: ActionShrinkJob, Job: j.id, Drain: []string{victim}, Nodes: now1.Nodes, Util: now1.Max,
				Reason: fmt.Sprintf("job %s: its %d node(s) at %s, under %s; %d will run at %s: sheds %s",
					j.id, now1.Nodes, pctBeside(now1.Max, p.Low), pct(p.Low), now1.Nodes-1, pctBeside(projected, middle), victim)})
		}
	}
	return ds, needNode
}

// pressedLocked says why j's map should grow ("" when it should not):
//
//   - its nodes over the band on the network while its own traffic on
//     them is more than AllotmentSlack times its allotment (hints answer
//     for the load they promised: a job sized to 80 % of its nodes that
//     runs at 85 % keeps them, a job idle beside a busy one keeps its
//     nodes);
//   - its nodes over the band on capacity while its own bytes on them are
//     more than AllotmentSlack times its capacity allotment (any bytes,
//     without a capacity hint): a job holding nothing there does not grow
//     for another's bytes;
//   - one node of its map over the band on the network (nodes that report
//     per-job figures) because of load that no growth answers: traffic
//     from no job whose map holds the node (a job's requests outside its
//     map, readers of a retired job's values) or a job's traffic beyond
//     its allotment there while within its whole allotment (a skewed job,
//     a hot key, which more nodes would not move); a job using the node
//     within its own allotment there grows once to move part of its keys
//     away (hotNodeLocked).
//
// A node that reports no per-job figures counts as before they existed:
// the job's traffic there is the node's split by allotment, and its bytes
// are the job's share of the tier's.
func (c *Controller) pressedLocked(j *job, u JobUtil, p *AutoscaleConfig) string {
	switch {
	case u.Net > p.High && u.Mbps > AllotmentSlack*j.allocMbps:
		return fmt.Sprintf("over %.0f%% with its own %.0f Mb/s beyond its allotment of %.0f", 100*p.High, u.Mbps, j.allocMbps)
	case u.Cap > p.High && u.Bytes > AllotmentSlack*float64(j.allocBytes):
		return fmt.Sprintf("capacity over %.0f%% with %d bytes of its own", 100*p.High, wire.SatBytes(u.Bytes))
	}
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		if !ok || n.state != wire.NodeActive || !n.jobLoads.reports {
			continue
		}
		if why := c.hotNodeLocked(j, n, mn.Weight, p); why != "" {
			return why
		}
	}
	return ""
}

// hotNodeLocked is pressedLocked's per-node test of j on its node n (weight
// w in j's map): j uses n within its allotment there, n is over the band,
// and the load that puts it there is neither its jobs' within their
// allotments nor a job's that grows for it (the traffic beyond its share
// there of a job within its whole allotment, or traffic from no job whose
// map holds n: more than 2 % of n's bandwidth). Such a job grows
// once to move part of its keys away (j.grown == 0): further growth would
// not take n out of its map, so it comes only from its own load. A job
// beyond its allotment on n is the cause, not a victim: its whole load
// decides (a hot key within the job's hints is the job's own).
func (c *Controller) hotNodeLocked(j *job, n *node, w float64, p *AutoscaleConfig) string {
	bw := c.nodeMbps(n)
	load := c.measuredLocked(n, p.Smooth) * bw
	own := n.jobLoads.mbps(j.id, p.Smooth)
	if j.grown > 0 || load <= p.High*bw || own <= 0 || own > AllotmentSlack*j.allocMbps*w {
		return ""
	}
	// The traffic there of the jobs whose maps hold n, and what of it is
	// beyond their allotments there from jobs that will not grow for it
	// (within their whole allotment: a skewed job, a hot key).
	var mapped, beyond float64
	if l := c.loads[n.addr]; l != nil {
		for k := range l.jobs {
			t := n.jobLoads.mbps(k.id, p.Smooth)
			mapped += t
			if k.id != j.id && !c.settledLocked(k, n, p.Smooth) {
				continue // k's map changes: its moves through n are not load j's growth would move away
			}
			if over := t - AllotmentSlack*k.allocMbps*weightOn(k, n.addr); over > 0 && c.jobUtilLocked(k, p.Smooth).Mbps <= AllotmentSlack*k.allocMbps {
				beyond += over
			}
		}
	}
	other := beyond + max(0, load-mapped)
	if other <= 0.02*bw {
		return ""
	}
	return fmt.Sprintf("node %s at %.0f%%, %.0f Mb/s of it beyond its jobs' allotments or from outside their maps: moves part of its keys away",
		n.addr, 100*load/bw, other)
}

// dropSafeLocked reports whether taking node x out of j's map leaves j's
// other active nodes within limit (a fraction of their bandwidth): j's
// traffic on x (moves included: rawMbpsLocked), spread over them by
// weight, takes none over limit, unless it adds next to nothing there (1 %
// of its bandwidth or less: dropping an idle partner does not make a busy
// node busier). A job with no other
// active node is safe: a drain moves it whole, and the cluster's own
// figure counts its load.
func (c *Controller) dropSafeLocked(j *job, x string, limit float64, smooth int) bool {
	others, wsum, nx, mx := c.splitMapLocked(j, x)
	var onX float64
	if nx != nil {
		onX = c.rawMbpsLocked(j, nx, mx, smooth)
	}
	if wsum <= 0 {
		return true
	}
	for _, mn := range others {
		n := c.nodes[mn.Addr]
		bw := c.nodeMbps(n)
		add := onX * mn.Weight / wsum
		load := c.peakLocked(n, smooth) * bw
		if add > 0.01*bw && load+add > limit*bw {
			return false
		}
	}
	return true
}

// splitMapLocked splits the active members of j's map around node x: the
// others and their weights' sum, and x's node and map entry (nx nil when x
// is not an active member).
func (c *Controller) splitMapLocked(j *job, x string) (others []wire.MapNode, wsum float64, nx *node, mx wire.MapNode) {
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		if !ok || n.state != wire.NodeActive {
			continue
		}
		if mn.Addr == x {
			nx, mx = n, mn
			continue
		}
		others = append(others, mn)
		wsum += mn.Weight
	}
	return others, wsum, nx, mx
}

// dropFitsLocked is dropSafeLocked for capacity: taking node x out of j's
// map moves j's bytes there to its other active nodes, by weight, and
// none may end over limit (a fraction of its tier's capacity). A hostile
// trial's job holding 215 MiB on two 256 MiB nodes at 55 % shed one ("1
// will run at 110%"): the other filled, another job's puts there failed
// "no space", and the move never ended.
func (c *Controller) dropFitsLocked(j *job, x string, limit float64) bool {
	others, wsum, nx, mx := c.splitMapLocked(j, x)
	var onX float64
	if nx != nil {
		if t := nx.tier(j.tier); t != nil {
			onX = c.jobBytesLocked(j, nx, mx, float64(t.UsedBytes))
		}
	}
	if wsum <= 0 || onX <= 0 {
		return true
	}
	for _, mn := range others {
		t := c.nodes[mn.Addr].tier(j.tier)
		if t == nil || float64(t.UsedBytes)+onX*mn.Weight/wsum > limit*float64(t.CapacityBytes) {
			return false
		}
	}
	return true
}

// holdsHintsLocked reports whether j's map without node x still holds what
// j's size hints asked for: its other active nodes' bandwidth on j's tier
// (Mb/s, NodeMbps for a tier that reports none) and capacity cover j's
// allotment, as they would for sizing on idle nodes. A job sized without
// hints (a profile, the default) has only its growth count (job.grown)
// for a floor.
//
// The growth count alone is not a floor: a node that leaves the map by a
// drain from the cluster or as lost does not lower it, so after one of
// the nodes a job was sized with drained, the count let the map shed the
// node that replaced it too (the nodes sized with: 2; grown to 4; one
// of the 2 drained; shed down to 1).
func (c *Controller) holdsHintsLocked(j *job, x string) bool {
	return !hinted(j.hints) || c.holdsAllotLocked(j, x)
}

// holdsAllotLocked reports whether j's map without node x (none: "")
// holds j's allotment: its other active nodes' bandwidth on j's tier
// (Mb/s, NodeMbps for a tier that reports none) and their capacity
// (bytes), as on idle nodes, cover j's allotted Mb/s and bytes.
func (c *Controller) holdsAllotLocked(j *job, x string) bool {
	var mbps float64
	var bytes int64
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		if mn.Addr == x || !ok || n.state != wire.NodeActive {
			continue
		}
		t := n.tier(j.tier)
		if t == nil {
			continue
		}
		mbps += c.tierMbps(*t)
		bytes = wire.SatAdd(bytes, t.CapacityBytes)
	}
	return mbps >= j.allocMbps && bytes >= j.allocBytes
}

// hotMemberLocked names a node of j's map over the band in any of its
// last LowFor heartbeats (peakLocked), "" when none is.
func (c *Controller) hotMemberLocked(j *job, p *AutoscaleConfig) string {
	for _, mn := range j.nodes {
		if n, ok := c.nodes[mn.Addr]; ok && n.state == wire.NodeActive && c.peakLocked(n, p.LowFor) > p.High {
			return mn.Addr
		}
	}
	return ""
}

// JobUtilization returns every live job's figures as the per-job policy
// sees them (smoothed over Smooth heartbeats), by job id.
func (a *Autoscaler) JobUtilization() []JobUtil {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]JobUtil, 0, len(c.jobs))
	for _, j := range c.jobs {
		if !j.revoked {
			out = append(out, c.jobUtilLocked(j, a.cfg.Smooth))
		}
	}
	sort.Slice(out, func(x, y int) bool { return out[x].Job < out[y].Job })
	return out
}
