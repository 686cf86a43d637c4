package netio

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// The reserve (Config.ReserveConns): a few connection slots beyond
// MaxConns and MaxConnsPerPeer, so that a server whose slots are all taken
// (thousands of clients reconnecting to a restarted storage node) can
// still be asked a small question (the controller asking the node which
// process it is before it believes its restart). netio only bounds the
// reserve; what is served there is the handler's choice (Conn.Reserved).
//
// A flood of ordinary clients cannot hold it: each reserve connection is
// closed ReserveTimeout after its accept whatever it does, one peer holds
// at most a quarter of the slots (reservePerPeer), and the storage node
// answers the first request on a reserve connection and closes it,
// refusing every data request. A client whose request is refused there
// holds the slot for one round trip. A client that connects and sends
// nothing would hold its slot until ReserveTimeout, and four addresses
// redialling at once would hold them all, so a connection that finds no
// slot free takes the one of the loop's oldest reserve connection that
// has sent nothing (of its own peer when its peer's share is full) instead
// of being refused (reserveOrEvict): such a connection is the likeliest
// squatter, while one that was answered (closing) or whose question waits
// in its socket is spared (oldestReserve), so a question sent as soon as
// its connection opens (the controller's) is answered.
//
// Reserve connections of a loop are kept in accept order, which is
// expiry order (the timeout is the same for all), so the loop's timer is
// armed for the first one's expiry and a firing closes a prefix of the
// list. They are few, so removal scans the list.

// reservePerPeer is how many reserve connections one peer may hold.
func reservePerPeer(cfg Config) int { return max(1, cfg.ReserveConns/4) }

// reserve counts a reserve connection of peer and reports whether one was
// free (Config.ReserveConns over the server, reservePerPeer for peer).
func (l *Loop) reserve(peer netip.Addr) bool {
	if l.cfg.ReserveConns <= 0 {
		return false
	}
	if l.srv.reserved.Add(1) > int64(l.cfg.ReserveConns) {
		l.srv.reserved.Add(-1)
		return false
	}
	if !l.srv.rpeers.add(peer, reservePerPeer(l.cfg)) {
		l.srv.reserved.Add(-1)
		return false
	}
	return true
}

// reserveOrEvict is reserve that, when no slot is free, closes the loop's
// oldest reserve connection (of peer, when peer holds its share) with
// ErrReserveEvicted and takes its slot (see the top of the file). Another
// loop's reserve connections are not touched: a connection that finds
// them all there is refused, and its client's next try may land here.
func (l *Loop) reserveOrEvict(peer netip.Addr) bool {
	if l.reserve(peer) {
		return true
	}
	if l.cfg.ReserveConns <= 0 {
		return false
	}
	victim := l.oldestReserve(peer)
	if victim == nil {
		return false
	}
	l.stats.reserveEvictions.Add(1)
	// Removes it from l.rsv and frees its slot, unless it has replies
	// promised: then when it closes (evict).
	return l.evict(victim, ErrReserveEvicted) && l.reserve(peer)
}

// oldestReserve is the loop's oldest reserve connection that may be
// evicted, of peer when peer holds its share of the reserve; nil when it
// has none that would free the slot peer needs. A connection is spared
// when it is closing (it was answered: its reply goes out at the end of
// the pass, and its slot with it) or has bytes waiting in its socket (a
// question not read yet, such as the controller's when the listener's
// event came first in the pass): only a connection that has sent nothing
// is taken for a squatter.
func (l *Loop) oldestReserve(peer netip.Addr) *Conn {
	own := l.srv.rpeers.count(peer) >= reservePerPeer(l.cfg)
	for _, c := range l.rsv {
		if own && c.peer != peer || c.closing || c.closed || pending(c.fd) {
			continue
		}
		return c
	}
	return nil
}

// pending reports whether fd's socket has received bytes not read yet
// (SIOCINQ); an error counts as pending, so a connection in doubt is not
// evicted.
func pending(fd int) bool {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	return err != nil || n > 0
}

// holdReserve starts the clock of a reserve connection just opened.
func (l *Loop) holdReserve(c *Conn) {
	now := nanotime()
	c.expires = now + int64(l.cfg.ReserveTimeout)
	l.rsv = append(l.rsv, c)
	l.armTimer(now)
}

// uncount releases the slot c took: in MaxConns and MaxConnsPerPeer, or
// on the reserve.
func (l *Loop) uncount(c *Conn) {
	if !c.reserved {
		l.srv.open.Add(-1)
		l.srv.peers.remove(c.peer)
		return
	}
	l.srv.reserved.Add(-1)
	l.srv.rpeers.remove(c.peer)
	for i, r := range l.rsv {
		if r == c {
			copy(l.rsv[i:], l.rsv[i+1:])
			l.rsv[len(l.rsv)-1] = nil
			l.rsv = l.rsv[:len(l.rsv)-1]
			break
		}
	}
}

// reserveAt is when the loop's first reserve connection expires, 0 when
// it has none.
func (l *Loop) reserveAt() int64 {
	if len(l.rsv) == 0 {
		return 0
	}
	return l.rsv[0].expires
}

// expireReserve closes the reserve connections whose ReserveTimeout has
// passed at now.
func (l *Loop) expireReserve(now int64) {
	n := 0
	for len(l.rsv) > 0 && l.rsv[0].expires <= now {
		n++
		l.stats.reserveTimeouts.Add(1)
		l.abort(l.rsv[0], ErrReserveTimeout) // removes it from l.rsv
	}
	if k := l.notes.reserve.due(now, n); k > 0 {
		l.log.Info("netio: closed reserve connections open too long",
			"limit", "ReserveTimeout", "timeout", l.cfg.ReserveTimeout, "count", k)
	}
}
