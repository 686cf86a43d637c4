package controller

import (
	"slices"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Undoing a change that cannot end
//
// A change of a job's map (elastic.go) ends only once every node has
// moved the values whose owner changed. A node that cannot take them
// (its tier full: another tenant filled it, or the DRAM tier's slab
// classes hold less than its byte count shows) refuses every try, and
// the movers retry for ever: before, such a change never ended, and the
// job neither grew nor shrank again (a hostile trial, 2026-12-06: 418
// retries in 110 s). Now a change whose movers have made no progress for
// Config.StuckMove (no node's count of values left went down, none finished) is
// undone once: a joining node is marked leaving, the values moved to it
// so far go back to their owners under the map before, which held them
// a moment ago; a leaving node is marked joining again, and the values
// it gave away come back to it. Each is an ordinary change of the map
// (a new epoch, the same end), so clients and nodes need nothing new.
// The node is then passed over for that job's growth or shrink for
// undoneHold StuckMoves. An undone change that is stuck too is not undone again: it
// waits, as before, and the controller warns.
//
// A change is not undone while a node of the map is dead (the dead-node
// rules hold it: dead.go) or drains from the cluster (the drain's rules
// hold it: drain.go, drain_grow.go).

// DefaultStuckMove is Config.StuckMove's default: the time a change
// runs before the controller warns that it waits (slowMove).
const DefaultStuckMove = slowMove

// undoneHold is how long, in StuckMoves, a node whose change was undone
// is not chosen again to grow or shrink that job's map.
const undoneHold = 5

// progressLocked records a node's report of the values it has left to
// move in the change, and when it is progress (its first report at the
// change's epoch, or fewer left than its last) the time of it.
func (mv *move) progressLocked(addr string, left int64, now time.Time) {
	if mv.left == nil {
		mv.left = map[string]int64{}
	}
	if prev, ok := mv.left[addr]; !ok || left < prev {
		mv.progress = now
	}
	mv.left[addr] = left
}

// bytesProgressLocked counts as progress of j's change its changed
// node's bytes of j moving the change's way in that node's latest
// heartbeat: above the most seen while it joins, below the least while
// it leaves. The nodes report their counts of values left only at the
// end of a pass over the job (dataplane/agent/move.go), and a first pass
// may run longer than StuckMove: a hostile re-check's join through a
// slow link took 303 values in 2 minutes and was undone as making no
// progress. A full node's bytes do not grow, however the job writes.
func (c *Controller) bytesProgressLocked(j *job, now time.Time) {
	mv := j.move
	n, ok := c.nodes[mv.addr]
	if !ok {
		return
	}
	b, listed := n.jobLoads.held(j.id)
	if !listed {
		return
	}
	switch {
	case !mv.bytesSeen:
		mv.bytesSeen, mv.bytesBest = true, b
	case mv.role == wire.NodeJoining && b > mv.bytesBest, mv.role == wire.NodeDraining && b < mv.bytesBest:
		mv.bytesBest, mv.progress = b, now
	}
}

// stuckLocked reports whether j's change has made no progress for
// Config.StuckMove and may be undone (see the top of the file).
func (c *Controller) stuckLocked(j *job, now time.Time) bool {
	mv := j.move
	if mv == nil || mv.undone || now.Sub(later(mv.start, mv.progress)) < c.cfg.StuckMove {
		return false
	}
	for _, mn := range j.nodes {
		n, ok := c.nodes[mn.Addr]
		if ok && (n.state == wire.NodeDead || n.state == wire.NodeDraining) {
			return false
		}
	}
	return j.has(mv.addr)
}

// undoMoveLocked reverses j's change in progress (see the top of the
// file): the changed node takes the opposite role at a new epoch.
func (c *Controller) undoMoveLocked(j *job, now time.Time) {
	mv := j.move
	waiting := c.waitingOnLocked(j) // the stuck change's, before it turns
	role := wire.NodeDraining
	if mv.role == wire.NodeDraining {
		role = wire.NodeJoining
	}
	nodes := slices.Clone(j.nodes)
	for i := range nodes {
		if nodes[i].Addr != mv.addr {
			continue
		}
		nodes[i].State = role
		if role == wire.NodeJoining {
			// It does not hold its share until the values come back.
			nodes[i].Since = wire.SinceNotYet
		} else {
			// Clients look for the values moved to it so far there
			// (pocket/drain.go: priorSet leaves out a SinceNotYet node).
			nodes[i].Since = j.epoch + 1 // the epoch bumpLocked publishes below
		}
	}
	c.placeLocked(j, nodes)
	c.bumpLocked(j)
	c.startMoveLocked(j, &move{epoch: j.epoch, addr: mv.addr, role: role, start: now, done: map[string]uint64{}, undone: true})
	j.lastChange = now
	if j.undone == nil {
		j.undone = map[string]time.Time{}
	}
	for addr, at := range j.undone { // saved with the job: keep what holds
		if now.Sub(at) >= undoneHold*c.cfg.StuckMove {
			delete(j.undone, addr)
		}
	}
	j.undone[mv.addr] = now
	c.cfg.Logger.Warn("controller: a job's map change made no progress; undoing it", "job", j.id, "node", mv.addr,
		"change", map[wire.NodeState]string{wire.NodeJoining: "join", wire.NodeDraining: "leave"}[mv.role],
		"ran", now.Sub(mv.start).Round(time.Second), "waiting_on", waiting, "epoch", j.epoch)
}

// moveAddr is mv's changed node ("" for no change).
func moveAddr(mv *move) string {
	if mv == nil {
		return ""
	}
	return mv.addr
}

// heldBackLocked reports whether addr's change of j's map was undone
// within undoneHold StuckMoves (by the clock now): the choices of a node
// to add or shed (growCandidatesLocked, shrinkVictimLocked) pass it
// over. A node the operator names is not.
func (c *Controller) heldBackLocked(j *job, addr string) bool {
	at, ok := j.undone[addr]
	return ok && time.Since(at) < undoneHold*c.cfg.StuckMove
}
