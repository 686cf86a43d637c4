package netio

import (
	"slices"
	"time"
)

// Fair shares of proven slots. MaxProvenPerOwner bounds one owner (half
// of MaxConns by default), so two owners could hold every slot between
// them, each at its bound: a hostile re-check (2026-12-06) had one
// client register jobs from two addresses, open 5,000 connections for
// each, and another job's gets were refused 10 of 10, since a newcomer
// evicts only connections that proved nothing or are over their
// owner's bound. Now a newcomer at MaxConns that finds neither also
// takes the slot of a proven connection whose owner holds more than its
// fair share: the max-min fair share of MaxConns among the owners that
// hold proven connections and one owner more (the newcomer's, unknown
// until it shows a token). Two owners of 5,000 each then keep 3,333 each,
// and a third gets the rest; an owner alone keeps MaxConns/2, as its
// bound gives it already. The victim is the oldest connection, on the
// newcomer's loop, of the owner there that holds the most over all
// loops; a loop where no such owner has a connection evicts none
// (evictElsewhere looks at the other loops' unproven ones only).

// ownedList is one owner's proven connections on one loop, oldest proven
// first. Only its loop changes it.
type ownedList struct {
	owner      string
	head, tail *Conn
}

// own puts c, just proven for c.owner, on its loop's list of the owner.
func (l *Loop) own(c *Conn) {
	if l.owned == nil {
		l.owned = make(map[string]*ownedList)
	}
	q := l.owned[c.owner]
	if q == nil {
		q = &ownedList{owner: c.owner}
		l.owned[c.owner] = q
	}
	c.oPrev, c.oNext, c.ownList = q.tail, nil, q
	if q.tail != nil {
		q.tail.oNext = c
	} else {
		q.head = c
	}
	q.tail = c
}

// disown takes c off its owner's list (own), if it is on one.
func (l *Loop) disown(c *Conn) {
	q := c.ownList
	if q == nil {
		return
	}
	if c.oPrev != nil {
		c.oPrev.oNext = c.oNext
	} else {
		q.head = c.oNext
	}
	if c.oNext != nil {
		c.oNext.oPrev = c.oPrev
	} else {
		q.tail = c.oPrev
	}
	c.oPrev, c.oNext, c.ownList = nil, nil, nil
	if q.head == nil {
		delete(l.owned, q.owner)
	}
}

// evictFairShare evicts the loop's oldest proven connection of the owner
// holding the most over its fair share (overFairShare), with idleOnly
// the oldest with nothing promised. It reports whether the slot is free
// now (a victim with replies promised retires, its slot freed when it
// closes). place calls it only once no connection that proved nothing,
// nor one over its owner's bound, can be evicted on any loop.
func (l *Loop) evictFairShare(idleOnly bool) bool {
	if !l.cfg.EvictUnproven {
		return false
	}
	c := l.overFairShare(idleOnly)
	if c == nil {
		return false
	}
	l.stats.unprovenEvictions.Add(1)
	l.stats.fairShare.Add(1)
	return l.evict(c, ErrEvictedOverFairShare)
}

// overFairShare is the loop's oldest proven connection (with idleOnly, the
// oldest with nothing promised) of the owner, among those with proven
// connections on the loop, that holds the most over all loops, when it
// holds more than the fair share (fairShare); nil when none does.
func (l *Loop) overFairShare(idleOnly bool) *Conn {
	if len(l.owned) == 0 {
		return nil
	}
	q := l.srv.owners.largestOver(l.owned, l.cfg.MaxConns)
	if q == nil {
		return nil
	}
	for c := q.head; c != nil; c = c.oNext {
		if !idleOnly || c.expect <= 0 {
			return c
		}
	}
	return nil
}

// shareEvery is how long a computed fair share is used before it is
// computed again from the counts: a flood of newcomers at MaxConns asks
// for it at each accept.
const shareEvery = time.Millisecond

// largestOver is, of the lists in owned, the one whose owner holds the
// most proven connections, if that is more than the fair share of
// maxConns; nil otherwise.
func (t *ownerTable) largestOver(owned map[string]*ownedList, maxConns int) *ownedList {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := nanotime()
	if t.shareAt == 0 || now-t.shareAt >= int64(shareEvery) {
		t.share, t.shareAt = t.fairShareLocked(maxConns), now
	}
	var best *ownedList
	most := t.share
	for o, q := range owned {
		if n := t.n[o]; n > most {
			best, most = q, n
		}
	}
	return best
}

// fairShareLocked is the max-min fair share of slots proven
// connections may hold, counting one owner more than those holding some:
// the largest s with sum over owners of min(n, s), plus s, at most
// slots. An owner holding more than s holds more than its share.
func (t *ownerTable) fairShareLocked(slots int) int {
	t.counts = t.counts[:0]
	for _, n := range t.n {
		t.counts = append(t.counts, n)
	}
	slices.Sort(t.counts)
	left := slots
	for i, n := range t.counts {
		s := left / (len(t.counts) - i + 1) // the owners from i on, and one more
		if n > s {
			return s
		}
		left -= n
	}
	return left
}
