package controller

import (
	"time"

	"github.com/pocketstore/pocket/wire"
)

// settleGonePoll is how often a registration held by awaitRestored asks
// whether its client has left.
const settleGonePoll = 100 * time.Millisecond

// settle is the wait of a restarted controller's registrations for the
// nodes restored alive (awaitRestored): until by, or until done closes
// once every one of them has been heard from. A zero by: no wait.
type settle struct {
	by   time.Time
	done chan struct{}
}

// startSettleLocked begins the wait after a restore at now, when a node
// restored alive is unheard and Config.RestoreSettle is positive.
func (c *Controller) startSettleLocked(now time.Time) {
	if c.cfg.RestoreSettle > 0 && c.unheardAliveLocked() {
		c.settle = settle{by: now.Add(c.cfg.RestoreSettle), done: make(chan struct{})}
	}
}

// heardNodeLocked notes a registration or heartbeat of n at now. The
// first of a node restored from the state ends the registrations' wait
// (awaitRestored) when no other node restored alive is left unheard.
func (c *Controller) heardNodeLocked(n *node, now time.Time) {
	n.lastSeen = now
	if !n.unheard {
		return
	}
	n.unheard = false
	if c.settle.done != nil && !c.unheardAliveLocked() {
		close(c.settle.done)
		c.settle = settle{}
	}
}

// awaitRestored holds a job's registration while the controller is within
// Config.RestoreSettle of its restore and a node the state holds alive
// has not been heard from since (node.unheard): sizing cannot yet tell a
// node that is up, a heartbeat away, from one that died while no
// controller ran, and puts to a dead one fail "unavailable". Before, a
// hostile re-check's lone controller, restarted with two of its nodes
// dead, placed the jobs registered in its first 0.3 s over them, and 168
// of 300 puts failed. The wait ends early when every such node has been
// heard from, and with the error stillWanted gives when the controller
// closes or the client leaves. After it, sizing takes the heard nodes
// first (heardFor).
func (c *Controller) awaitRestored(who registrant) error {
	c.mu.Lock()
	s := c.settle
	c.mu.Unlock()
	if s.done == nil {
		return nil
	}
	end := time.NewTimer(time.Until(s.by))
	defer end.Stop()
	tick := time.NewTicker(settleGonePoll)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return nil
		case <-end.C:
			return nil
		case <-c.srv.done:
		case <-tick.C:
		}
		if err := c.stillWanted(who); err != nil {
			return err
		}
	}
}

// unheardAliveLocked reports whether a node restored alive from the state
// has not been heard from in this run.
func (c *Controller) unheardAliveLocked() bool {
	for _, n := range c.nodes {
		if n.unheard && n.state != wire.NodeDead {
			return true
		}
	}
	return false
}
