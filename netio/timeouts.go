package netio

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Timeouts, the accept back-off and the per-peer limit.
//
// The data path reads no clock. A timerfd per loop fires every
// sweepPeriod while the loop has connections; each firing advances the
// loop's coarse clock, Loop.tick, by one and sweeps the loop's connections
// once. A connection is stamped with the current tick when the handler
// takes input from it (Conn.rtick) and when its output becomes pending or
// the peer takes some of it (Conn.wtick): a store per pass, no syscall.
// A timeout of T is T/period ticks rounded up, plus one for the tick a
// stamp falls in, so a connection is closed between T and T plus one
// period (plus the timer's latency) after its last activity, never
// before. The same timerfd ends an accept pause. A loop with no
// connections and no pause has its timer disarmed, so an idle node is
// never woken.

// Accept back-off when the process or the system is out of descriptors
// or memory: the listener leaves the epoll set for acceptPauseMin, doubling
// on each failure in a row up to acceptPauseMax.
const (
	acceptPauseMin = 10 * time.Millisecond
	acceptPauseMax = time.Second
)

// noteEvery is the least time between two log lines about one limit.
const noteEvery = int64(time.Second)

// sweepPeriod is how often a loop checks its connections for the
// timeouts: a quarter of the shorter timeout, at most a second, so a
// connection is closed between its timeout and its timeout plus the
// period. 0 when both timeouts are off.
func sweepPeriod(cfg Config) time.Duration {
	p := time.Duration(0)
	for _, t := range []time.Duration{cfg.IdleTimeout, cfg.WriteTimeout} {
		if q := max(time.Millisecond, min(time.Second, t/4)); t > 0 && (p == 0 || q < p) {
			p = q
		}
	}
	return p
}

// setTimeouts derives the sweep period and the timeouts in ticks from the
// loop's Config.
func (l *Loop) setTimeouts() {
	p := sweepPeriod(l.cfg)
	l.sweepEvery = int64(p)
	ticks := func(t time.Duration) int64 {
		if t <= 0 || p == 0 {
			return 0
		}
		return int64((t+p-1)/p) + 1
	}
	l.idleTicks, l.writeTicks = ticks(l.cfg.IdleTimeout), ticks(l.cfg.WriteTimeout)
}

// limitNote rate-limits the log lines about one limit on one loop.
type limitNote struct {
	last  int64  // nanotime of the last line; 0 before the first
	count uint64 // occurrences not yet logged
}

// due records k occurrences at now and, when a line may be logged (none
// in the last noteEvery), returns how many occurred since the last line;
// otherwise 0.
func (n *limitNote) due(now int64, k int) uint64 {
	n.count += uint64(k)
	if n.count == 0 || (n.last != 0 && now-n.last < noteEvery) {
		return 0
	}
	c := n.count
	n.count, n.last = 0, now
	return c
}

// armTimer sets the loop's timerfd to the earliest of the next sweep, the
// end of the accept pause and the first reserve connection's expiry, or
// disarms it when none is due. It
// makes the syscall only when that expiry changes. now is a nanotime
// reading taken before the call.
func (l *Loop) armTimer(now int64) {
	next := l.sweepAt
	for _, t := range [...]int64{l.resumeAt, l.reserveAt()} {
		if t != 0 && (next == 0 || t < next) {
			next = t
		}
	}
	if next == l.timerAt {
		return
	}
	l.tspec = unix.ItimerSpec{}
	if next != 0 {
		// Relative to now, read before the timer is set: it fires no
		// earlier than next on the same (monotonic) clock. A deadline
		// already past fires at once, so none is lost.
		l.tspec.Value = unix.NsecToTimespec(max(next-now, int64(time.Microsecond)))
	}
	if err := unix.TimerfdSettime(l.tmfd, 0, &l.tspec, nil); err != nil {
		return // cannot happen with a valid timerfd; the next arm retries
	}
	l.timerAt = next
}

// onTimer ends an accept pause, closes expired reserve connections and
// runs a sweep, whichever is due.
func (l *Loop) onTimer() {
	unix.Read(l.tmfd, l.evbuf[:]) // resets the expiry count; EAGAIN is harmless
	armed := l.timerAt
	l.timerAt = 0
	now := nanotime()
	if armed != 0 {
		l.excuseStall(now, now-armed)
	}
	if l.resumeAt != 0 && now >= l.resumeAt {
		l.resumeAt = 0
		if l.lnOff {
			if err := l.ctl(unix.EPOLL_CTL_ADD, l.lnfd, 0, unix.EPOLLIN); err != nil {
				l.pauseAccept(now, err)
			} else {
				l.lnOff = false
			}
		}
	}
	l.expireReserve(now)
	if l.sweepAt != 0 && now >= l.sweepAt {
		l.tick++
		l.sweep(now)
		l.sweepAt = 0
		if l.nconns > 0 {
			l.sweepAt = now + l.sweepEvery
		}
	}
	l.armTimer(now)
}

// pauseAccept stops polling the listener for the next back-off interval:
// accept failed in a way that leaves the connection queued (EMFILE, ENFILE,
// ENOBUFS, ENOMEM), so retrying at once would spin. Connections wait in
// the listen backlog meanwhile; the ones already open are served.
func (l *Loop) pauseAccept(now int64, err error) {
	d := min(max(2*l.acceptPause, int64(acceptPauseMin)), int64(acceptPauseMax))
	l.acceptPause = d
	if !l.lnOff && l.ctl(unix.EPOLL_CTL_DEL, l.lnfd, 0, 0) == nil {
		l.lnOff = true
	}
	l.resumeAt = now + d
	l.armTimer(now)
	l.stats.acceptBackoffs.Add(1)
	if n := l.notes.accept.due(now, 1); n > 0 {
		l.log.Error("netio: accept failed: out of descriptors or memory; pausing accept (raise RLIMIT_NOFILE or lower MaxConns)",
			"limit", "RLIMIT_NOFILE", "err", err, "pause", time.Duration(d), "count", n)
	}
}

// sweep closes the loop's connections that are past IdleTimeout or
// WriteTimeout. now is the time of the sweep, for the log lines.
func (l *Loop) sweep(now int64) {
	idle, write := l.idleTicks, l.writeTicks
	var nIdle, nWrite, nSlow, nDrain int
	var idlePeer, writePeer, slowPeer, drainPeer string
	for _, c := range l.conns {
		if c == nil || c.closed || c.closing {
			continue
		}
		if c.sink != nil && l.slowSink(c, now) {
			nSlow++
			slowPeer = c.RemoteAddr()
			l.stats.slowSinks.Add(1)
			l.retire(c, ErrSlowSink, false)
			continue
		}
		if l.slowDrain(c, now) {
			nDrain++
			drainPeer = c.RemoteAddr()
			l.stats.slowDrains.Add(1)
			l.retire(c, ErrSlowDrain, true)
			continue
		}
		switch {
		case c.out.has():
			if write > 0 && l.tick-c.wtick >= 2 && l.peerTook(c) {
				c.wtick = l.tick
			}
			if write > 0 && l.tick-c.wtick >= write {
				nWrite++
				writePeer = c.RemoteAddr()
				l.stats.writeTimeouts.Add(1)
				l.retire(c, ErrWriteTimeout, true)
			}
		case c.expect > 0 || c.hold != nil:
			// Not idle: replies are promised (a device read or write in
			// flight, a streamed get). Closing under them broke the fence
			// a client builds on the close (nothing of the connection
			// lands after it): with IdleTimeout 1 s a put whose commit
			// took 3 s was published 1.75 s after the close (a review).
		case idle > 0 && l.tick-max(c.rtick, c.wtick) >= idle:
			nIdle++
			idlePeer = c.RemoteAddr()
			l.stats.idleClosed.Add(1)
			l.closeConn(c, ErrIdleTimeout)
		}
	}
	if n := l.notes.write.due(now, nWrite); n > 0 {
		l.log.Warn("netio: closed connections whose peer took no queued output",
			"limit", "WriteTimeout", "timeout", l.cfg.WriteTimeout, "peer", writePeer, "count", n)
	}
	if n := l.notes.slow.due(now, nSlow); n > 0 {
		l.log.Warn("netio: closed connections sending an announced payload too slowly",
			"limit", "MinSinkRate", "rate", l.cfg.MinSinkRate, "grace", l.cfg.SinkGrace, "peer", slowPeer, "count", n)
	}
	if n := l.notes.drain.due(now, nDrain); n > 0 {
		l.log.Warn("netio: closed connections whose peer took queued output too slowly",
			"limit", "MinDrainRate", "rate", l.cfg.MinDrainRate, "grace", l.cfg.DrainGrace, "peer", drainPeer, "count", n)
	}
	if n := l.notes.idle.due(now, nIdle); n > 0 {
		l.log.Info("netio: closed idle connections",
			"limit", "IdleTimeout", "timeout", l.cfg.IdleTimeout, "peer", idlePeer, "count", n)
	}
}

// stallExcused is the least lateness of a sweep that excuseStall takes
// for the loop's own stall rather than the timer's latency.
const stallExcused = 10 * time.Millisecond

// excuseStall starts the pace of every sink (MinSinkRate) and of every
// connection's waiting output (MinDrainRate) late nanoseconds later, counts every connection opened late later (the age UnprovenGrace
// weighs), both at most at now, and ends every reserve connection's time
// (ReserveTimeout) late later: late is how long after its due time the
// loop's timer was served, time the loop itself did not run (its process
// stopped or not scheduled, a handler that took that long), which no peer
// is to blame for. The idle and write timeouts count sweeps, not time,
// and need no such excuse. Before, a node stopped 30 s (SIGSTOP) closed,
// on resuming, a put's connection as sending its payload too slowly, and
// the client's put failed (a hostile re-check); and a newcomer at
// MaxConns could evict a client's connection opened just before the
// stall (a review). The same shift for every connection keeps the
// unproven lists in the order they opened in. A stall is seen from the
// time the timer was due: up to a sweep period of it (at most 1 s) is
// not excused. A connection whose first request waits unread is spared
// anyway (unread).
func (l *Loop) excuseStall(now, late int64) {
	if late < int64(stallExcused) {
		return
	}
	for _, c := range l.conns {
		if c == nil {
			continue
		}
		c.born = min(c.born+late, now)
		if c.sink != nil {
			c.sinkAt = min(c.sinkAt+late, now)
			if c.winAt != 0 {
				c.winAt = min(c.winAt+late, now)
			}
		}
		if c.drainAt != 0 {
			c.drainAt = min(c.drainAt+late, now)
		}
	}
	for _, q := range [...]*connList{&l.unproven, &l.overOwner} {
		if q.head != nil {
			q.headBorn.Store(max(q.head.born, 1))
		}
	}
	for _, c := range l.rsv { // the same shift keeps them in order of expiry
		c.expires += late
	}
}

// excuseOverdue excuses (excuseStall) the lateness of a timer due more
// than stallExcused ago whose event the loop has not served yet, before
// it judges a connection's age: after a stall, the listener's event may
// come before the timer's in the loop's first pass. The timer's event,
// served later, counts its lateness from now.
func (l *Loop) excuseOverdue(now int64) {
	if l.timerAt != 0 && now-l.timerAt >= int64(stallExcused) {
		l.excuseStall(now, now-l.timerAt)
		l.timerAt = now
	}
}

// slowSink reports whether c's sink has taken fewer bytes than
// Config.MinSinkRate allows since its grace ended. Time while c's reading
// is paused counts too: the loop pauses a connection whose peer leaves
// more than MaxOutbound of replies unread (or more than OutboundFloor while
// the server's total is over MaxOutboundTotal), so the peer holds the
// pause.
// A hostile trial paused its connections on purpose (a GET of its own
// 8 MiB value before each put header, read 64 KiB every 5 s, within
// WriteTimeout) while the pace started over at every pause, and held 249
// MiB of a 256 MiB node's space for a minute.
//
// Past the grace the pace is also kept window by window (sinkWindow):
// each window must bring its own share, so bytes sent early are no credit
// for a trickle after them. Before, a hostile re-check sent 16 MiB less
// 1 KiB of a 16 MiB NVMe put at once and then 4 bytes a second: its pace
// since the start stayed above 256 KiB/s for 64 s, and it held the tier's
// whole staging memory, every other tenant's NVMe puts and gets failing
// busy, for as long as it went on (70 s, not cut).
func (l *Loop) slowSink(c *Conn, now int64) bool {
	rate, grace := l.cfg.MinSinkRate, int64(l.cfg.SinkGrace)
	if rate < 0 {
		return false
	}
	if behindPace(rate, now-c.sinkAt-grace, c.sinkGot) {
		return true
	}
	switch {
	case now-c.sinkAt < grace:
	case c.winAt == 0:
		c.winAt, c.winGot = now, c.sinkGot
	case now-c.winAt >= sinkWindow(grace):
		if behindPace(rate, now-c.winAt, c.sinkGot-c.winGot) {
			return true
		}
		c.winAt, c.winGot = now, c.sinkGot
	}
	return false
}

// sinkWindow is the window over which a sink's pace is kept past its
// grace: half the grace, at least a millisecond.
func sinkWindow(grace int64) int64 { return max(grace/2, int64(time.Millisecond)) }

// behindPace reports whether got bytes are fewer than rate bytes a second
// allows over late nanoseconds (none while late <= 0). The bytes due are
// a float64: an int64 product overflows past 2^63 / rate nanoseconds
// (about 10 hours at 256 KiB/s).
func behindPace(rate, late, got int64) bool {
	if late <= 0 {
		return false
	}
	return float64(got) < float64(rate)*float64(late)/float64(time.Second)
}

// slowDrain reports whether c's peer has taken its queued output slower
// than Config.MinDrainRate allows over the window of Config.DrainGrace
// now ending (see MinDrainRate); a window the peer kept pace over starts
// the next. Bytes taken are those the socket accepted: its buffer (a few
// MiB at most) is taken at once in the first window, and then only what
// the peer reads makes room. The pace runs while c's reading is paused
// (the peer holds the pause). A stall of the loop itself moves the
// window (excuseStall).
func (l *Loop) slowDrain(c *Conn, now int64) bool {
	if l.cfg.MinDrainRate < 0 || c.drainAt == 0 || c.out.pending == 0 || now-c.drainAt < int64(l.cfg.DrainGrace) {
		return false
	}
	if behindPace(l.cfg.MinDrainRate, now-c.drainAt, c.drainGot) {
		return true
	}
	c.drainAt, c.drainGot = now, 0
	return false
}

// peerTook reports whether the peer has taken bytes from c's socket send
// queue since the last sweep looked. writev makes progress only once the
// kernel frees a good part of a large send buffer, which a slow but steady
// reader can take longer than WriteTimeout to drain; the queue's length
// (unsent plus unacknowledged bytes) moves with every byte the peer takes.
// It costs one ioctl per sweep for a connection whose writes have been
// blocked for a sweep period or more, and nothing otherwise.
func (l *Loop) peerTook(c *Conn) bool {
	q, err := unix.IoctlGetInt(c.fd, unix.SIOCOUTQ)
	if err != nil {
		return false
	}
	took := c.sndq >= 0 && q != c.sndq
	c.sndq = q
	return took
}

// evict resets c to free its slot for a newcomer (abort) and reports
// whether the slot is free now. A c with replies promised (a proven
// connection over its owner's share, with a device write under way) is
// retired with a reset instead, off the lists at once (so the next
// newcomer evicts another) and its slot freed when it closes, once the
// work ends: until then the newcomer is refused (or opened on the
// reserve), so MaxConns still bounds the descriptors held. Reviews of
// retire found both alternatives wrong: a victim left listed kept every
// later newcomer out, or was claimed by each newcomer of another loop,
// which then opened past MaxConns; a victim whose slot was given away at
// once let a peer dialling newcomers against its own busy connections
// hold descriptors without bound (50 with MaxConns 8 after 2 s).
func (l *Loop) evict(c *Conn, err error) bool {
	l.retire(c, err, true) // with nothing promised, abort
	return c.closed
}

// abort closes c without trying to flush and with a reset (SO_LINGER 0),
// so the kernel drops the unsent bytes of its send buffer too instead of
// retrying them to a peer that does not read.
func (l *Loop) abort(c *Conn, err error) {
	l.resetOnClose(c)
	l.closeConn(c, err)
}

// resetOnClose makes c's close a reset without a flush (abort).
func (l *Loop) resetOnClose(c *Conn) {
	if !c.noFlush {
		_ = unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		c.noFlush = true
	}
}

// peerTable counts open connections by peer over all loops of a server,
// for MaxConnsPerPeer. It is touched only at accept and close.
type peerTable struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

// add counts one more connection of peer unless it has max already.
func (t *peerTable) add(peer netip.Addr, max int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = make(map[netip.Addr]int)
	}
	if t.n[peer] >= max {
		return false
	}
	t.n[peer]++
	return true
}

// count is how many connections of peer are counted.
func (t *peerTable) count(peer netip.Addr) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n[peer]
}

// remove uncounts a connection counted by add; an invalid peer is a no-op.
func (t *peerTable) remove(peer netip.Addr) {
	if !peer.IsValid() {
		return
	}
	t.mu.Lock()
	if t.n[peer] <= 1 {
		delete(t.n, peer)
	} else {
		t.n[peer]--
	}
	t.mu.Unlock()
}

// peerKey is the per-peer limit's key for a socket address: the IPv4
// address (also for IPv4-mapped IPv6), or the /64 prefix of an IPv6
// address, since one IPv6 host commonly holds a whole /64.
func peerKey(sa unix.Sockaddr) netip.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr)
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr).Unmap()
		if ip.Is6() {
			ip = netip.PrefixFrom(ip, 64).Masked().Addr()
		}
		return ip
	}
	return netip.IPv4Unspecified()
}

// sockaddrString formats a TCP socket address as "ip:port".
func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return ""
}
