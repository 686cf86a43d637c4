package controller

import (
	"net"
	"time"
)

// Fair shares of Config.MaxConns. The evictions at MaxConns take a
// connection that is idle (evictIdleLocked) or has said nothing yet
// (evictFreshLocked); a client whose connections all keep asking is
// neither. A hostile trial's tenant held 1,100 TLS connections from five
// addresses (each under MaxConnsPerPeer), each sending a cheap request
// every 400 ms, and another tenant's client was refused 62 times of 62
// over 32 s: it could neither register nor open its jobs. So a connection
// on probation that asks for more than a node's requests is admitted in
// place of a connection of the owner holding the most, when its own owner
// holds fewer even with it (admitFair). An owner is the client of
// the limits (limitKey): the tenant a certificate names, else the peer
// key. A flooder then keeps at most the slots no other owner wants.
//
// The same holds within one peer's MaxConnsPerPeer: a connection on
// probation because its peer (an address: lambdas behind one NAT) is at
// the bound takes the place of a connection of the owner holding the most
// of that peer's. Before, it was never admitted: a hostile trial's tenant
// held 256 TLS connections from 127.0.0.1, each asking every 5 s, and
// another tenant from that address was refused 10 registrations of 10.

// setOwner records the owner of conn once its peer is known (the TLS
// handshake done): the tenant its certificate names, else its peer key.
func (s *server) setOwner(conn net.Conn, owner string) {
	s.mu.Lock()
	if ci, ok := s.conns[conn]; ok {
		ci.owner = owner
	}
	s.mu.Unlock()
}

// admitFair takes conn off probation in place of a connection of the
// owner holding the most of those MaxConns counts, when conn's owner
// holds fewer by two or more (so it holds no more than that owner after
// the swap), and reports whether it did. The one closed is the longest
// unasked of that owner's connections that no request is being served
// on. A connection over its peer's MaxConnsPerPeer counts and takes among
// that peer's connections only.
func (c *Controller) admitFair(conn net.Conn) bool {
	s := &c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	ci, ok := s.conns[conn]
	if !ok || !ci.prob {
		return false
	}
	scope := "" // every peer's
	if lim := c.cfg.MaxConnsPerPeer; lim > 0 && s.peers[ci.peer] > lim {
		scope = ci.peer
	}
	held := map[string]int{}
	for _, o := range s.conns {
		if !o.node && !o.prob && (scope == "" || o.peer == scope) {
			held[o.owner]++
		}
	}
	top, most := "", 0
	for owner, n := range held {
		if n > most || n == most && owner < top {
			top, most = owner, n
		}
	}
	if held[ci.owner]+1 >= most {
		return false
	}
	victim := s.oldestOfLocked(top, scope)
	if victim == nil {
		return false
	}
	now := time.Now()
	s.noteRefusal(now)
	s.forgetLocked(victim)
	closeAside(victim)
	s.onProb--
	s.plain++
	// Its first request is being served: busy, as touch would have
	// marked it had it not been on probation, so no eviction takes it
	// before its reply (a registration can take seconds).
	ci.prob, ci.last, ci.busy = false, now, true
	return true
}

// oldestOfLocked is owner's connection MaxConns counts, from peer (""
// any), with no request being served on it, that has waited longest since
// its latest request; nil if there is none.
func (s *server) oldestOfLocked(owner, peer string) net.Conn {
	var victim net.Conn
	var vi *connInfo
	for conn, o := range s.conns {
		if o.owner != owner || o.busy || o.node || o.prob || peer != "" && o.peer != peer {
			continue
		}
		if vi == nil || o.last.Before(vi.last) {
			victim, vi = conn, o
		}
	}
	return victim
}
