package netio

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// Unproven connections of one peer (Config.EvictUnproven with
// MaxConnsPerPeer). A connection over its peer's MaxConnsPerPeer takes the
// place of that peer's oldest connection the handler has not vouched for
// (Conn.Prove) and that has been open for UnprovenGrace, as one over
// MaxConns takes the place of any peer's. Clients behind one address (one
// host's lambdas, a NAT) share its limit: before, a hostile trial held
// all 4,096 of its address's slots on a node with tokenless connections
// that pinged (or sent nothing and redialled when closed), and every
// other client from that address was refused for its whole run, while
// the same flood spread over four addresses was evicted at MaxConns.
// Connections that proved themselves, over their owner's share or not,
// are not taken: a peer whose own clients hold all its slots with valid
// tokens is still refused there.
//
// Each loop lists its own unproven connections by peer, oldest first
// (byPeer; touched only on the loop). A newcomer over its peer's limit
// evicts its peer's oldest idle one on its own loop, else hands itself to
// another loop that has an unproven connection past the grace (which
// evicts one of the peer's there, if it has one, and then opens the
// newcomer within the limits, on the reserve, or refuses it), else
// retires its own loop's oldest busy one of the peer, whose slot is free
// once its work ends (the newcomer is refused meanwhile).

// peerList is a loop's unproven connections of one peer, oldest first.
type peerList struct {
	head, tail *Conn
}

// listPeer puts c, just opened and unproven, last on its peer's list.
func (l *Loop) listPeer(c *Conn) {
	if !c.peer.IsValid() || c.reserved {
		return
	}
	if l.byPeer == nil {
		l.byPeer = make(map[netip.Addr]*peerList)
	}
	q := l.byPeer[c.peer]
	if q == nil {
		q = &peerList{}
		l.byPeer[c.peer] = q
	}
	c.pPrev, c.pNext, c.onPeer = q.tail, nil, true
	if q.tail != nil {
		q.tail.pNext = c
	} else {
		q.head = c
	}
	q.tail = c
}

// unpeer takes c off its peer's list (proven, over its owner's share, or
// closing); a no-op when it is not on it.
func (l *Loop) unpeer(c *Conn) {
	if !c.onPeer {
		return
	}
	q := l.byPeer[c.peer]
	if c.pPrev != nil {
		c.pPrev.pNext = c.pNext
	} else {
		q.head = c.pNext
	}
	if c.pNext != nil {
		c.pNext.pPrev = c.pPrev
	} else {
		q.tail = c.pPrev
	}
	c.pPrev, c.pNext, c.onPeer = nil, nil, false
	if q.head == nil {
		delete(l.byPeer, c.peer)
	}
}

// evictPeerUnproven evicts the loop's oldest unproven connection of peer
// open for UnprovenGrace, with idleOnly the oldest such with no replies
// promised, and reports whether its slot is free now (see evict).
func (l *Loop) evictPeerUnproven(peer netip.Addr, idleOnly bool) bool {
	q := l.byPeer[peer]
	if q == nil {
		return false
	}
	now := nanotime()
	l.excuseOverdue(now)
	for c := q.head; c != nil && now-c.born >= int64(UnprovenGrace); c = c.pNext {
		if (!idleOnly || c.expect <= 0) && !unread(c) {
			l.stats.unprovenEvictions.Add(1)
			return l.evict(c, ErrEvictedUnproven)
		}
	}
	return false
}

// evictPeerElsewhere hands a newcomer over its peer's limit (nfd) to
// another loop whose oldest unproven connection is past UnprovenGrace:
// that loop evicts its oldest idle one of the peer, if it has one, and
// opens the newcomer within the limits, or on the reserve, or refuses
// it. It reports whether it handed it over.
func (l *Loop) evictPeerElsewhere(nfd int, sa unix.Sockaddr, peer netip.Addr) bool {
	now := nanotime()
	for _, o := range l.srv.loops {
		hb := o.unproven.headBorn.Load()
		if o == l || hb == 0 || now-hb < int64(UnprovenGrace) {
			continue
		}
		if o.tryEnqueue(task{f: func() {
			if o.stopped {
				o.stats.refused.Add(1)
				unix.Close(nfd)
				return
			}
			o.evictPeerUnproven(peer, true)
			o.admit(nfd, sa, peer, o.count(peer))
		}}) {
			return true
		}
	}
	return false
}

// placeOverPeer tries, for a newcomer of peer over MaxConnsPerPeer, to
// free one of the peer's slots (see the top of the file). It returns the
// limit the newcomer is over now (nil: within them), or handed true when
// another loop took the newcomer.
func (l *Loop) placeOverPeer(nfd int, sa unix.Sockaddr, peer netip.Addr, limit *overLimit) (_ *overLimit, handed bool) {
	if !l.cfg.EvictUnproven || limit == nil || limit.name != "MaxConnsPerPeer" {
		return limit, false
	}
	if l.evictPeerUnproven(peer, true) {
		return l.count(peer), false
	}
	if l.evictPeerElsewhere(nfd, sa, peer) {
		return nil, true
	}
	if l.evictPeerUnproven(peer, false) {
		return l.count(peer), false
	}
	return limit, false
}
