package netio

// Unproven connections (Config.EvictUnproven). A handler vouches for a
// connection with Conn.Prove once its peer has shown it may use the
// server (a storage node: a request with a valid token, or an order
// with a valid proof). Until then the connection is on its loop's list,
// oldest first, and a connection arriving over MaxConns on that loop
// takes the place of the oldest one open for UnprovenGrace or longer.
// So peers that prove nothing, however many and however busy, cannot
// keep a client that can prove itself out: a hostile trial held all
// 10,000 slots of a node with connections that sent a ping (which needs
// no token) every 2 s, past the idle timeout, and every put with a
// valid token was refused at the limit.

// Prove marks c as vouched for by the handler: it is no longer evicted
// for a new connection at MaxConns. Cheap when already proven.
func (c *Conn) Prove() {
	if c.onList {
		c.loop.unproven.remove(c)
	}
}

// connList is a doubly linked list of connections (the unproven ones).
type connList struct{ head, tail *Conn }

func (q *connList) push(c *Conn) {
	c.unPrev, c.unNext, c.onList = q.tail, nil, true
	if q.tail != nil {
		q.tail.unNext = c
	} else {
		q.head = c
	}
	q.tail = c
}

func (q *connList) remove(c *Conn) {
	if !c.onList {
		return
	}
	if c.unPrev != nil {
		c.unPrev.unNext = c.unNext
	} else {
		q.head = c.unNext
	}
	if c.unNext != nil {
		c.unNext.unPrev = c.unPrev
	} else {
		q.tail = c.unPrev
	}
	c.unPrev, c.unNext, c.onList = nil, nil, false
}

// evictUnproven resets the loop's oldest unproven connection when it has
// been open for UnprovenGrace, freeing its slot; it reports whether it
// did.
func (l *Loop) evictUnproven() bool {
	c := l.unproven.head
	if !l.cfg.EvictUnproven || c == nil || nanotime()-c.born < int64(UnprovenGrace) {
		return false
	}
	l.stats.unprovenEvictions.Add(1)
	l.abort(c, ErrEvictedUnproven)
	return true
}
