package netio

import (
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Fair shares of proven slots. MaxProvenPerOwner bounds one owner (half
// of MaxConns by default), so two owners could hold every slot between
// them, each at its bound: a hostile re-check (2026-12-06) had one
// client register jobs from two addresses, open 5,000 connections for
// each, and another job's gets were refused 10 of 10, since a newcomer
// evicts only connections that proved nothing or are over their
// owner's bound. The fair share is the max-min fair share of MaxConns
// among the owners that hold proven connections and one owner more (a
// newcomer's, unknown until it shows a token): two owners of 5,000 each
// have 3,333 each, and an owner alone MaxConns/2, as its bound gives it.
//
//   - A connection is proven for its owner only while the owner holds
//     fewer than its fair share (ProveFor): past it the connection is
//     over, like one past the bound, and gives its slot before any
//     proven one. Without that, a job over its share that reconnected
//     what it lost had its own oldest connections evicted in turn (a
//     hostile trial: 11,295 of 30,423 requests failed under a tokenless
//     flood, where the job was to be trimmed once).
//   - A newcomer at MaxConns that finds no connection that proved nothing
//     or is over, on any loop, takes the slot of the newest proven
//     connection of the owner holding the most over its share (an owner
//     that held its connections before others came): on its own loop
//     when the owner has connections there, else on the loop with the
//     most of them, which is handed the newcomer (as evictElsewhere
//     does). Before, only the newcomer's loop was looked at: a trial
//     kept an over-share owner's connections on one loop and owners at
//     their share on the other, and 7 of 7 newcomers landing there were
//     refused.

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

// evictFairShare frees a slot for a newcomer (nfd) at MaxConns by
// evicting the newest proven connection of the owner holding the most
// over its fair share, idle first: here, or on the loop holding the most
// of the owner's connections, which is then handed the newcomer. It
// reports whether it handed the newcomer over (it is the other loop's to
// open or refuse) and whether a slot is free here now. place calls it only
// once no connection that proved nothing, nor one over, can be evicted on
// any loop.
func (l *Loop) evictFairShare(nfd int, sa unix.Sockaddr, peer netip.Addr) (handed, freed bool) {
	if !l.cfg.EvictUnproven || l.cfg.MaxProvenPerOwner < 0 {
		return false, false
	}
	owner, at, ok := l.srv.owners.overFairShare(l.idx)
	if !ok {
		return false, false
	}
	if at == l.idx {
		return false, l.evictOwned(owner)
	}
	o := l.srv.loops[at]
	if !o.tryEnqueue(task{f: func() {
		if o.stopped { // shutting down: its connections are closed
			o.stats.refused.Add(1)
			unix.Close(nfd)
			return
		}
		o.evictOwned(owner)
		o.admit(nfd, sa, peer, o.count(peer))
	}}) {
		return false, false
	}
	return true, false
}

// evictOwned evicts the loop's newest proven connection of owner with
// nothing promised, else its newest. It reports whether the slot is free
// now (a victim with replies promised retires, its slot freed when it
// closes).
func (l *Loop) evictOwned(owner string) bool {
	q := l.owned[owner]
	if q == nil {
		return false
	}
	c := q.tail
	for v := q.tail; v != nil; v = v.oPrev {
		if v.expect <= 0 {
			c = v
			break
		}
	}
	l.stats.unprovenEvictions.Add(1)
	l.stats.fairShare.Add(1)
	return l.evict(c, ErrEvictedOverFairShare)
}

// The fair share is computed again when the counts have moved since (a
// sort of the owners' counts); with more than exactOwners owners, at most
// every shareEvery: a flood of newcomers at MaxConns asks for it at each
// accept, and a node's owners are its tenants, or its clients' addresses.
const (
	exactOwners = 256
	shareEvery  = time.Millisecond
)

// overFairShare names the owner holding the most proven connections, if
// that is more than the fair share, and the loop to evict one on: prefer
// when the owner has connections there, else the loop with the most.
func (t *ownerTable) overFairShare(prefer int) (owner string, loop int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	most := t.shareLocked()
	for o, n := range t.n {
		if n > most {
			owner, most, ok = o, n, true
		}
	}
	if !ok {
		return "", 0, false
	}
	at := t.byLoop[owner]
	if prefer < len(at) && at[prefer] > 0 {
		return owner, prefer, true
	}
	return owner, indexOfMax(at), true
}

// indexOfMax is the index of the largest of xs (0 when empty).
func indexOfMax(xs []int32) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

// shareLocked is the fair share (see exactOwners); mu is held.
func (t *ownerTable) shareLocked() int {
	if !t.moved && t.shareAt != 0 {
		return t.share
	}
	now := nanotime()
	if len(t.n) <= exactOwners || t.shareAt == 0 || now-t.shareAt >= int64(shareEvery) {
		t.share, t.shareAt, t.moved = t.fairShareLocked(t.slots), now, false
	}
	return t.share
}

// fairShareLocked is the max-min fair share of slots proven connections
// may hold, counting one owner more than those holding some: the largest
// s with sum over owners of min(n, s), plus s, at most slots; at least 1.
// An owner holding more than s holds more than its share.
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
			return max(s, 1)
		}
		left -= n
	}
	return max(left, 1)
}
