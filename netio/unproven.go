package netio

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

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
		c.loop.unlist(c)
	}
}

// listOf is the list of l that c is on (when c.onList).
func (l *Loop) listOf(c *Conn) *connList {
	if c.over {
		return &l.overOwner
	}
	return &l.unproven
}

// unlist takes c off whichever list of l it is on, its owner's (fairshare.go)
// included.
func (l *Loop) unlist(c *Conn) {
	l.disown(c)
	l.unpeer(c)
	if c.over {
		l.overOwner.remove(c)
		c.over = false
		return
	}
	l.unproven.remove(c)
}

// NeedsProof reports whether Prove or ProveFor would change anything:
// the connection is on the list of those that may give their slot
// (Config.EvictUnproven) and has not been proven.
func (c *Conn) NeedsProof() bool { return c.onList }

// ProveFor is Prove on behalf of owner (a storage node passes the job
// whose token the connection showed): the connection is proven only
// while owner has fewer than Config.MaxProvenPerOwner connections
// proven; past it, it stays unproven and is tried again, on a later
// call, once some owner's proven connection has closed. Cheap when
// already proven; the first owner that proves a connection keeps it.
func (c *Conn) ProveFor(owner []byte) {
	if !c.onList {
		return
	}
	o := &c.loop.srv.owners
	if c.ownerSeen == o.released.Load()+1 { // 0 (never refused) matches no count
		return
	}
	limit := c.loop.cfg.MaxProvenPerOwner
	// Read before add: a release between a refused add and this read
	// would otherwise be taken as seen, and the connection not tried
	// again until another release.
	rel := o.released.Load()
	if limit > 0 && !o.add(owner, limit, c.loop.idx) {
		if c.ownerSeen == 0 {
			c.loop.stats.overOwner.Add(1)
		}
		if !c.over {
			// It showed a valid proof: evicted only after every
			// connection that proved nothing (evictUnproven), so a
			// tokenless newcomer does not take a big job's slot.
			c.loop.unproven.remove(c)
			c.loop.unpeer(c)
			c.loop.overOwner.insertByBorn(c)
			c.over = true
		}
		c.ownerSeen = rel + 1
		return
	}
	c.loop.unlist(c)
	if limit > 0 {
		c.owner, c.owned = string(owner), true
		c.loop.own(c)
	}
}

// ownerTable counts proven connections by owner (Conn.ProveFor), over
// all loops and on each. Touched once when a connection is proven and
// once when it closes.
type ownerTable struct {
	mu       sync.Mutex
	n        map[string]int
	byLoop   map[string][]int32 // the owner's on each loop, by loop index
	released atomic.Uint64      // releases so far
	// slots is MaxConns, loops the number of loops (set by Listen).
	slots, loops int
	// The fair share of slots last computed (fairshare.go), when (nanotime;
	// 0: never), whether the counts moved since, and the counts it was
	// computed from.
	share   int
	shareAt int64
	moved   bool
	counts  []int
}

// add counts one more connection of owner on loop unless the owner has
// limit already.
func (t *ownerTable) add(owner []byte, limit, loop int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = make(map[string]int)
		t.byLoop = make(map[string][]int32)
	}
	if t.n[string(owner)] >= limit {
		return false
	}
	t.addLocked(string(owner), loop)
	return true
}

// addLocked counts one more connection of owner on loop; mu is held.
func (t *ownerTable) addLocked(owner string, loop int) {
	if t.n == nil {
		t.n = make(map[string]int)
		t.byLoop = make(map[string][]int32)
	}
	t.n[owner]++
	at := t.byLoop[owner]
	if at == nil {
		at = make([]int32, max(t.loops, loop+1))
		t.byLoop[owner] = at
	}
	at[loop]++
	t.moved = true
}

// release uncounts one connection of owner on loop.
func (t *ownerTable) release(owner string, loop int) {
	t.mu.Lock()
	if t.n[owner]--; t.n[owner] <= 0 {
		delete(t.n, owner)
		delete(t.byLoop, owner)
	} else if at := t.byLoop[owner]; loop < len(at) {
		at[loop]--
	}
	t.moved = true
	t.mu.Unlock()
	t.released.Add(1)
}

// connList is a doubly linked list of connections (the unproven ones).
// Only its loop changes it; n and headBorn publish its length and its
// oldest connection's open time (0: empty) to the other loops
// (evictElsewhere).
type connList struct {
	head, tail *Conn
	n          atomic.Int64
	headBorn   atomic.Int64
	claims     atomic.Int64 // evictions other loops have asked of this list, not done yet
	busy       atomic.Int64 // listed connections with replies promised (Expect)
}

func (q *connList) push(c *Conn) {
	c.unPrev, c.unNext, c.onList = q.tail, nil, true
	if q.tail != nil {
		q.tail.unNext = c
	} else {
		q.head = c
		q.headBorn.Store(max(c.born, 1))
	}
	q.tail = c
	q.n.Add(1)
	if c.expect > 0 {
		q.busy.Add(1)
	}
}

// insertByBorn inserts c keeping the list ordered by open time (born),
// oldest first, as push keeps the unproven list: evictUnproven and
// evictElsewhere look only at the head. The overOwner list gets its
// connections when they are found over their owner's share, which is
// not the order they opened in; the walk starts at the tail, where a
// connection found over at its first request belongs.
func (q *connList) insertByBorn(c *Conn) {
	after := q.tail
	for after != nil && after.born > c.born {
		after = after.unPrev
	}
	if after == q.tail {
		q.push(c)
		return
	}
	c.onList = true
	c.unPrev = after
	if after == nil {
		c.unNext = q.head
		q.head.unPrev = c
		q.head = c
		q.headBorn.Store(max(c.born, 1))
	} else {
		c.unNext = after.unNext
		after.unNext.unPrev = c
		after.unNext = c
	}
	q.n.Add(1)
	if c.expect > 0 {
		q.busy.Add(1)
	}
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
	q.n.Add(-1)
	if c.expect > 0 {
		q.busy.Add(-1)
	}
	if q.head == nil {
		q.headBorn.Store(0)
	} else {
		q.headBorn.Store(max(q.head.born, 1))
	}
}

// evictUnproven evicts the loop's oldest unproven connection open for
// UnprovenGrace (or, when it has none, the oldest over its owner's
// share), or with idleOnly the oldest such with no replies promised. It
// reports whether the slot is free now (a victim with replies promised
// retires, its slot freed when it closes).
func (l *Loop) evictUnproven(idleOnly bool) bool {
	if !l.cfg.EvictUnproven {
		return false
	}
	now := nanotime()
	l.excuseOverdue(now)
	c := oldestEvictable(&l.unproven, now, idleOnly)
	if c == nil {
		// Only then a connection over its owner's bound.
		c = oldestEvictable(&l.overOwner, now, idleOnly)
	}
	if c == nil {
		return false
	}
	l.stats.unprovenEvictions.Add(1)
	return l.evict(c, ErrEvictedUnproven)
}

// oldestEvictable is q's oldest connection open for UnprovenGrace, with
// idleOnly its oldest such with nothing promised; nil when none. A
// connection with input unread (unread) is spared.
func oldestEvictable(q *connList, now int64, idleOnly bool) *Conn {
	for c := q.head; c != nil && now-c.born >= int64(UnprovenGrace); c = c.unNext {
		if (!idleOnly || c.expect <= 0) && !unread(c) {
			return c
		}
	}
	return nil
}

// unread reports whether c's socket holds input the loop has not read
// though it reads c (not paused by its unread replies, not at its end):
// the loop has yet to serve c's event in this pass, or was stalled, and
// the input may be c's proof. Such a connection is not evicted: before,
// after a stall shorter than a sweep period (which excuseStall cannot
// see), a newcomer whose event came first in the pass evicted a client
// whose first request waited unread. A paused connection is not spared,
// so a peer cannot hold its slot by leaving its replies unread.
func unread(c *Conn) bool {
	return !c.paused && !c.stalled && !c.eof && pending(c.fd)
}

// evictElsewhere is evictUnproven for a newcomer over MaxConns whose own
// loop has no connection to evict: MaxConns counts the connections of
// every loop, and each loop lists only its own unproven ones, so a
// newcomer the kernel handed to a loop whose unproven connections had run
// out was refused while other loops' held slots (a trial: 4 of 40 clients
// with a valid token refused at MaxConns while 9 to 12 tokenless
// connections older than UnprovenGrace were open on the other loop). It
// claims an eviction of another loop whose oldest unproven connection is
// past UnprovenGrace (no more claims than that loop lists idle), and
// hands it the newcomer (nfd): that loop evicts its oldest idle victim
// past the grace, then opens the newcomer within the limits, or on the
// reserve, or refuses it. It reports whether it did; the newcomer is
// never opened over MaxConns.
func (l *Loop) evictElsewhere(nfd int, sa unix.Sockaddr, peer netip.Addr) bool {
	if !l.cfg.EvictUnproven {
		return false
	}
	now := nanotime()
	old := func(q *connList) bool {
		hb := q.headBorn.Load()
		return hb != 0 && now-hb >= int64(UnprovenGrace)
	}
	for _, o := range l.srv.loops {
		q := &o.unproven
		if o == l || !old(q) && !old(&o.overOwner) {
			continue
		}
		// Only victims with nothing promised, whose slot is free once
		// evicted. The count is a hint (it counts connections within
		// UnprovenGrace too, and a victim may go busy, prove itself or
		// close before o runs the task): the newcomer is counted and
		// opened by o after its eviction, within the limits then, never
		// over them.
		idle := q.n.Load() - q.busy.Load() + o.overOwner.n.Load() - o.overOwner.busy.Load()
		if q.claims.Add(1) > idle {
			q.claims.Add(-1)
			continue
		}
		if !o.tryEnqueue(task{f: func() {
			q.claims.Add(-1)
			if o.stopped { // shutting down: its connections are closed
				o.stats.refused.Add(1)
				unix.Close(nfd)
				return
			}
			freed := o.evictUnproven(true)
			limit := o.count(peer)
			if !freed && limit != nil && limit.name == "MaxConns" {
				// The claim was on a hint (young or gone busy): no idle
				// victim after all, so the newcomer's own loop retires
				// its oldest busy one, as with none anywhere.
				l.Post(func() { l.evictUnproven(false) })
			}
			o.admit(nfd, sa, peer, limit)
		}}) {
			q.claims.Add(-1)
			return false
		}
		return true
	}
	return false
}
