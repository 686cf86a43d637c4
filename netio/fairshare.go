package netio

import (
	"net/netip"
	"slices"
	"time"
)

// Fair shares of proven slots. MaxProvenPerOwner bounds one owner (half
// of MaxConns by default), so two owners could hold every slot between
// them, each at its bound: a hostile re-check (2026-12-06) had one
// client register jobs from two addresses, open 5,000 connections for
// each, and another job's gets were refused 10 of 10, since a newcomer
// evicts only connections that proved nothing or are over their
// owner's bound. The fair share is the max-min fair share of MaxConns
// among the owners that hold proven connections and one owner more: two
// owners of 5,000 each have 3,333 each, an owner alone MaxConns/2, as
// its bound gives it.
//
// A newcomer at MaxConns that finds nothing to evict is opened on the
// reserve (Config.ReserveConns). There the handler may show what it
// proved (a storage node: a request with a valid token of a job whose
// owner is known) and promote it (Conn.Promote): when its owner holds
// fewer than its fair share and another holds more, that owner's newest
// proven connection is evicted, on whichever loop holds it, and the
// newcomer takes an ordinary slot, proven. Only a shown token moves a
// proven connection out, so floods of connections that show none
// cannot churn a job's proven ones. Two earlier forms let any newcomer
// at the limit evict one (6c30ed2, ca15060): a re-check's job of 150
// connections beside an owner holding 100 of 300 slots lost 8,001 to
// 13,251 of about 30,000 requests while 400 tokenless connections a
// second came, where it lost none with no other owner there.

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

// Promote moves c, a reserve connection (Reserved) whose peer has shown
// it may use the server on behalf of owner, into an ordinary slot, proven
// for owner (ProveFor), in place of the newest proven connection of the
// owner holding the most over its fair share (see the top of the file),
// evicted on the loop that holds most of them. It does so only when
// owner holds fewer than its fair share and its bound, and c's peer is
// within MaxConnsPerPeer; it reports whether it did. The victim's slot
// is freed when it closes: until then MaxConns is passed by one. Only
// with EvictUnproven and a MaxProvenPerOwner bound.
func (c *Conn) Promote(owner []byte) bool {
	l := c.loop
	if !c.reserved || c.closing || c.closed || !l.cfg.EvictUnproven || l.cfg.MaxProvenPerOwner < 0 {
		return false
	}
	peer := c.peer
	if l.cfg.MaxConnsPerPeer > 0 && !l.srv.peers.add(peer, l.cfg.MaxConnsPerPeer) {
		return false
	}
	victim, at, ok := l.srv.owners.displace(owner, l.cfg.MaxProvenPerOwner, l.idx)
	if ok && at != l.idx {
		o := l.srv.loops[at]
		if ok = o.tryEnqueue(task{f: func() { o.evictOwned(victim) }}); !ok {
			l.srv.owners.unclaim(victim, at) // its loop has stopped
			l.srv.owners.release(string(owner), l.idx)
		}
	} else if ok {
		l.evictOwned(victim)
	}
	if !ok {
		if l.cfg.MaxConnsPerPeer > 0 {
			l.srv.peers.remove(peer)
		}
		return false
	}
	l.uncount(c) // off the reserve
	c.reserved, c.expires = false, 0
	if l.cfg.MaxConnsPerPeer <= 0 {
		c.peer = netip.Addr{} // uncounted, as admit opens it
	}
	l.srv.open.Add(1)
	l.stats.promoted.Add(1)
	c.born = nanotime()
	c.owner, c.owned = string(owner), true // counted by displace
	l.own(c)
	return true
}

// evictOwned evicts the loop's newest proven connection of owner with
// nothing promised, else its newest. It reports whether the slot is free
// now (a victim with replies promised retires, its slot freed when it
// closes).
func (l *Loop) evictOwned(owner string) bool {
	q := l.owned[owner]
	if q == nil {
		// Its connections here closed since displace counted one: the
		// promotion stands, and MaxConns stays passed by one until a
		// connection closes.
		l.srv.owners.unclaim(owner, l.idx)
		return false
	}
	c := q.tail
	for v := q.tail; v != nil; v = v.oPrev {
		if v.expect <= 0 {
			c = v
			break
		}
	}
	c.owned = false // displace counted it gone (claimLocked)
	l.disown(c)
	l.stats.unprovenEvictions.Add(1)
	l.stats.fairShare.Add(1)
	return l.evict(c, ErrEvictedOverFairShare)
}

// The fair share is computed again when the counts have moved since (a
// sort of the owners' counts); with more than exactOwners owners, at most
// every shareEvery: a node's owners are its tenants, or its clients'
// addresses, and each promotion asks for it.
const (
	exactOwners = 256
	shareEvery  = time.Millisecond
)

// displace names the owner holding the most proven connections, if that
// is more than the fair share while owner holds fewer (and fewer than
// limit), and the loop to evict one on: prefer when the owner has
// connections there, else the loop with the most. It counts the
// promoted connection for owner on prefer at once, in the same hold of
// the lock as the check: a re-check's owners promoting 4 at a time each
// reached 26-30 connections against a share of 25, and left the job
// they displaced below its share (13-16).
func (t *ownerTable) displace(owner []byte, limit, prefer int) (victim string, loop int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	most := t.shareLocked()
	if n := t.n[string(owner)]; n >= most || n >= limit {
		return "", 0, false
	}
	for o, n := range t.n {
		if n > most {
			victim, most, ok = o, n, true
		}
	}
	if !ok {
		return "", 0, false
	}
	at := t.byLoop[victim]
	loop = indexOfMax(at)
	if prefer < len(at) && at[prefer] > 0 {
		loop = prefer
	}
	t.claimLocked(victim, loop)
	t.addLocked(string(owner), prefer)
	return victim, loop, true
}

// claimLocked counts one of owner's connections on loop gone now, for
// the eviction displace chose it for: promotions at once on both loops
// see the count it will have, and do not displace past the share (a
// re-check saw MaxConns passed by up to 6). evictOwned clears the
// victim's owned mark, so its close releases nothing more; a claim whose
// victim had closed meanwhile is given back (unclaim). mu is held.
func (t *ownerTable) claimLocked(owner string, loop int) {
	if t.n[owner]--; t.n[owner] <= 0 {
		delete(t.n, owner)
		delete(t.byLoop, owner)
	} else if at := t.byLoop[owner]; loop < len(at) {
		at[loop]--
	}
	t.moved = true
	t.released.Add(1)
}

// unclaim gives back a claim (claimLocked) whose victim was gone.
func (t *ownerTable) unclaim(owner string, loop int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addLocked(owner, loop)
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
