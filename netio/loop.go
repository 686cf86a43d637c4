package netio

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	maxEvents      = 256  // epoll events taken per pass
	maxIovecs      = 1024 // IOV_MAX on Linux
	acceptPerEvent = 128  // accepts per listener event, so conns get served too
)

// task is a function posted to a loop: f for Loop.Post, or cf with its
// connection for Conn.Post.
type task struct {
	f  func()
	cf func(*Conn)
	c  *Conn
}

// Loop is one event loop: a goroutine blocked in epoll_wait over its
// listener, its connections and an eventfd for wake-ups. Everything a loop
// owns (its connections, buffers and pool) is touched only by its goroutine,
// except the task queue, which Post fills from anywhere under mu.
type Loop struct {
	srv  *Server
	idx  int
	cfg  Config
	h    Handler
	epfd int
	epf  *os.File        // epfd registered with the Go netpoller, or nil
	eprc syscall.RawConn // epf's raw conn, for parking until epfd is ready
	park func(uintptr) bool
	pn   int   // park's result: events polled
	perr error // park's result: error
	evfd int
	lnfd int
	tmfd int // timerfd: timeout sweeps and the end of an accept pause

	// redeliverFn is l.redeliver, made once so posting it allocates no closure.
	redeliverFn func(*Conn)

	events  []unix.EpollEvent
	evLeft  int     // events of this pass still to dispatch after the current one
	conns   []*Conn // indexed by fd
	readBuf []byte  // shared by all connections for read(2)
	iov     []unix.Iovec
	pool    bufPool
	dirty   []*Conn // connections with output or a close pending this pass
	evbuf   [8]byte
	ctlEv   unix.EpollEvent
	tspec   unix.ItimerSpec

	// unproven lists the loop's connections the handler has not vouched
	// for (Conn.Prove), oldest first, when Config.EvictUnproven is set.
	unproven connList
	// overOwner lists, oldest opened first (insertByBorn), the
	// connections that showed a valid proof for an owner already at
	// MaxProvenPerOwner (Conn.ProveFor): evictable too, but only once no
	// connection that proved nothing is (evictUnproven).
	overOwner connList
	// byPeer lists the unproven connections by peer, oldest first
	// (peerevict.go).
	byPeer map[netip.Addr]*peerList
	// owned lists the proven connections by owner, oldest proven first
	// (fairshare.go).
	owned map[string]*ownedList

	// The coarse clock and the timers (see timeouts.go). tick and the
	// tick counts are in sweeps; the other times are nanotime readings.
	tick        int64 // sweeps done: the clock connections are stamped with
	idleTicks   int64 // IdleTimeout in sweeps, rounded up, plus one; 0: off
	writeTicks  int64 // WriteTimeout likewise
	nconns      int   // open connections of this loop
	sweepEvery  int64 // ns between timeout sweeps; 0: no timeouts
	sweepAt     int64 // next sweep, 0 when none is due (no connections)
	resumeAt    int64 // end of the accept pause, 0 when not paused
	timerAt     int64 // expiry tmfd is armed for, 0 when disarmed
	acceptPause int64 // current accept back-off in ns, 0 when none
	lnOff       bool  // listener removed from epoll for the pause
	busyPass    bool  // this pass has two events or more: its reads and writevs are raw
	log         *slog.Logger
	notes       struct{ maxConns, perPeer, idle, write, slow, drain, accept, reserve limitNote }
	rsv         []*Conn // open reserve connections, in accept (= expiry) order (reserve.go)

	// The watch on the other loops (nudge.go). The other loops read
	// parkedOpen and parkSeq; the rest is this loop's own.
	parkedOpen atomic.Bool        // parked in the netpoller with connections open
	parkSeq    atomic.Uint64      // parks so far with parkedOpen set
	peekAt     int64              // the next look at the other loops, at the earliest
	seen       []uint64           // per loop, its parkSeq at the last look if events waited then
	peekFn     func(fd uintptr)   // pending's callback,
	peekN      uintptr            // its result
	peekEv     [1]unix.EpollEvent // and its buffer

	mu      sync.Mutex
	tasks   []task // filled by Post, under mu
	stopped bool   // under mu: the loop has exited; Post drops
	running []task // the batch being run, loop goroutine only

	wakeArmed atomic.Bool // an eventfd write is outstanding
	stopReq   atomic.Bool
	stats     loopStats
}

// loopStats are a loop's counters. They are atomics only so Stats can read
// them from other goroutines; each is written by its loop alone.
type loopStats struct {
	accepted, refused, closed      atomic.Uint64
	bytesIn, bytesOut, reads, wvs  atomic.Uint64
	passes, wakeups, tasks, paused atomic.Uint64
	pausedTotal                    atomic.Uint64
	refusedPeer, idleClosed        atomic.Uint64
	writeTimeouts, acceptBackoffs  atomic.Uint64
	slowSinks, slowDrains          atomic.Uint64
	reserved, reserveTimeouts      atomic.Uint64
	reserveEvictions               atomic.Uint64
	unprovenEvictions, overOwner   atomic.Uint64
	fairShare, promoted            atomic.Uint64
	_                              [64]byte // keep loops off each other's cache lines
}

func (s *loopStats) addTo(st *Stats) {
	st.Accepted += s.accepted.Load()
	st.Refused += s.refused.Load()
	st.Closed += s.closed.Load()
	st.BytesIn += s.bytesIn.Load()
	st.BytesOut += s.bytesOut.Load()
	st.Reads += s.reads.Load()
	st.Writevs += s.wvs.Load()
	st.Passes += s.passes.Load()
	st.Wakeups += s.wakeups.Load()
	st.Tasks += s.tasks.Load()
	st.Paused += s.paused.Load()
	st.PausedTotal += s.pausedTotal.Load()
	st.RefusedPerPeer += s.refusedPeer.Load()
	st.IdleClosed += s.idleClosed.Load()
	st.WriteTimeouts += s.writeTimeouts.Load()
	st.SlowSinks += s.slowSinks.Load()
	st.SlowDrains += s.slowDrains.Load()
	st.AcceptBackoffs += s.acceptBackoffs.Load()
	st.Reserved += s.reserved.Load()
	st.ReserveTimeouts += s.reserveTimeouts.Load()
	st.ReserveEvictions += s.reserveEvictions.Load()
	st.UnprovenEvictions += s.unprovenEvictions.Load()
	st.OverOwner += s.overOwner.Load()
	st.FairShareEvictions += s.fairShare.Load()
	st.Promoted += s.promoted.Load()
}

// newLoop creates the epoll instance, eventfd and timerfd of a loop and
// registers them and the listener lnfd with it.
func newLoop(s *Server, idx, lnfd int) (*Loop, error) {
	l := &Loop{srv: s, idx: idx, cfg: s.cfg, h: s.h, epfd: -1, evfd: -1, lnfd: lnfd, tmfd: -1,
		log: s.cfg.Logger}
	l.setTimeouts()
	l.redeliverFn = l.redeliver
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		unix.Close(l.epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	if l.tmfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		unix.Close(l.evfd)
		unix.Close(l.epfd)
		return nil, os.NewSyscallError("timerfd_create", err)
	}
	l.events = make([]unix.EpollEvent, maxEvents)
	l.readBuf = make([]byte, l.cfg.ReadBuffer)
	l.iov = make([]unix.Iovec, maxIovecs)
	if !l.cfg.WaitInSyscall {
		err = l.parkable()
	}
	for _, fd := range []int{l.evfd, l.tmfd, lnfd} {
		if err == nil {
			err = l.ctl(unix.EPOLL_CTL_ADD, fd, 0, unix.EPOLLIN)
		}
	}
	if err != nil {
		l.closeEpoll()
		unix.Close(l.evfd)
		unix.Close(l.tmfd)
		return nil, err
	}
	return l, nil
}

// parkable registers the epoll descriptor itself with the Go runtime's
// netpoller, so an idle loop parks its goroutine like any blocked network
// read instead of holding an OS thread in epoll_wait: no thread hand-off
// when it blocks, no wait for a P when it wakes. The park function is made
// once so waiting allocates nothing.
func (l *Loop) parkable() error {
	if err := unix.SetNonblock(l.epfd, true); err != nil {
		return os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	l.epf = os.NewFile(uintptr(l.epfd), "epoll")
	rc, err := l.epf.SyscallConn()
	if err != nil {
		return fmt.Errorf("netio: epoll fd not pollable: %w", err)
	}
	l.eprc = rc
	l.park = func(uintptr) bool {
		l.pn, l.perr = epollPoll(l.epfd, l.events)
		return l.pn != 0 || l.perr != nil
	}
	return nil
}

// ctl is epoll_ctl with fd and tag as the event data: tag is a
// connection's (Conn.tag) or 0 for the loop's own descriptors.
func (l *Loop) ctl(op, fd int, tag uint32, events uint32) error {
	l.ctlEv = unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(tag)}
	if err := unix.EpollCtl(l.epfd, op, fd, &l.ctlEv); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// closeFDs closes the loop's descriptors (listener included).
func (l *Loop) closeFDs() {
	unix.Close(l.lnfd)
	unix.Close(l.evfd)
	unix.Close(l.tmfd)
	l.closeEpoll()
}

// closeEpoll closes the epoll descriptor, through its os.File when the
// netpoller knows it.
func (l *Loop) closeEpoll() {
	if l.epf != nil {
		l.epf.Close()
		return
	}
	unix.Close(l.epfd)
}

// run is the loop goroutine: wait, dispatch every event, then flush all
// output queued during the pass with one writev per connection.
func (l *Loop) run() {
	defer l.srv.wg.Done()
	if l.cfg.LockOSThread {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	var spinUntil int64
	for !l.stopReq.Load() {
		n, err := l.wait(&spinUntil)
		if err != nil {
			// epoll_wait on a valid epfd only fails on programming errors;
			// panicking beats spinning on an error forever.
			panic(err)
		}
		l.busyPass = n >= 2
		for i := 0; i < n; i++ {
			l.evLeft = n - 1 - i
			l.dispatch(&l.events[i])
		}
		l.evLeft = 0
		l.flushDirty()
		l.busyPass = false
		if n > 0 {
			l.stats.passes.Add(1)
		}
		l.watchParked()
	}
	l.shutdown()
}

// wait returns the next batch of events. With BusyPoll it polls with a zero
// timeout until BusyPoll has passed since the last event, then blocks.
func (l *Loop) wait(spinUntil *int64) (int, error) {
	if l.cfg.BusyPoll > 0 && nanotime() < *spinUntil && l.maySpin() {
		n, err := epollPoll(l.epfd, l.events)
		if n > 0 {
			*spinUntil = nanotime() + int64(l.cfg.BusyPoll)
		}
		return n, err
	}
	if l.eprc != nil {
		if err := l.parkWait(); err != nil {
			return 0, fmt.Errorf("netio: park on epoll: %w", err)
		}
		if l.cfg.BusyPoll > 0 {
			*spinUntil = nanotime() + int64(l.cfg.BusyPoll)
		}
		return l.pn, l.perr
	}
	for {
		n, err := unix.EpollWait(l.epfd, l.events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, os.NewSyscallError("epoll_wait", err)
		}
		if l.cfg.BusyPoll > 0 {
			*spinUntil = nanotime() + int64(l.cfg.BusyPoll)
		}
		return n, nil
	}
}

// maySpin reports whether Config.MaySpin lets the loop busy poll now.
func (l *Loop) maySpin() bool {
	return l.cfg.MaySpin == nil || l.cfg.MaySpin()
}

// epollPoll is epoll_wait with a zero timeout. It never blocks, so it uses
// the raw syscall and skips the scheduler hand-off a blocking call needs.
// It is made as epoll_pwait with no signal mask, the same call, because
// arm64 and riscv64 have no epoll_wait syscall.
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		if e == unix.EINTR {
			return 0, nil
		}
		return 0, os.NewSyscallError("epoll_wait", e)
	}
	return int(r), nil
}

var clockBase = time.Now()

// nanotime is a monotonic clock reading in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockBase)) }

// dispatch handles one epoll event.
func (l *Loop) dispatch(ev *unix.EpollEvent) {
	fd := int(ev.Fd)
	switch fd {
	case l.evfd:
		l.runTasks()
		return
	case l.lnfd:
		l.accept()
		return
	case l.tmfd:
		l.onTimer()
		return
	}
	if fd >= len(l.conns) || l.conns[fd] == nil {
		return
	}
	c := l.conns[fd]
	if c.tag() != uint32(ev.Pad) {
		// An event for a socket closed earlier in this pass whose
		// descriptor number a newer connection took since: not its.
		return
	}
	switch {
	case ev.Events&unix.EPOLLIN != 0 && !c.paused:
		l.onReadable(c)
	case ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0:
		l.closeConn(c, sockError(fd))
		return
	}
	if ev.Events&unix.EPOLLOUT != 0 && !c.closed {
		l.markDirty(c)
	}
}

// sockError returns the pending error of a socket, or io.EOF when it has
// none (the peer hung up).
func sockError(fd int) error {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return os.NewSyscallError("getsockopt SO_ERROR", err)
	}
	if v != 0 {
		return os.NewSyscallError("socket", unix.Errno(v))
	}
	return io.EOF
}

// wake makes the loop's epoll_wait return. Many calls before the loop runs
// cost one eventfd write: the flag stays set until the loop has read it.
func (l *Loop) wake() {
	if l.wakeArmed.CompareAndSwap(false, true) {
		if _, err := unix.Write(l.evfd, wakeOne[:]); err != nil && err != unix.EAGAIN {
			l.wakeArmed.Store(false)
		}
	}
}

// wakeOne is the eventfd increment; read-only.
var wakeOne = [8]byte{1}

// stop asks the loop to shut down and wakes it.
func (l *Loop) stop() {
	l.mu.Lock()
	l.stopReq.Store(true)
	if !l.stopped {
		l.wake()
	}
	l.mu.Unlock()
}

// Idle reports, during a handler call, whether the loop has no other
// ready events left in this pass: a handler may then afford to block
// briefly (a device read) without holding up other connections.
func (l *Loop) Idle() bool { return l.evLeft == 0 }

// Index is the loop's number, 0 to Loops-1: handlers use it to keep
// per-loop state (counters) that no other loop writes.
func (l *Loop) Index() int { return l.idx }

// Post runs f on the loop goroutine soon, after the events of the current
// pass. It may be called from any goroutine, the loop's own included. After
// the server has closed, f is dropped.
func (l *Loop) Post(f func()) { l.enqueue(task{f: f}) }

// enqueue adds t to the task queue and wakes the loop. The eventfd write
// happens under mu so it cannot race with the loop closing the eventfd.
func (l *Loop) enqueue(t task) { l.tryEnqueue(t) }

// tryEnqueue is enqueue reporting whether t was queued (false: the loop
// has stopped).
func (l *Loop) tryEnqueue(t task) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.tasks = append(l.tasks, t)
	l.wake()
	return true
}

// runTasks runs the batch of posted tasks queued so far. Tasks posted while
// it runs go to the next batch (the eventfd is readable again by then).
func (l *Loop) runTasks() {
	unix.Read(l.evfd, l.evbuf[:]) // resets the counter; EAGAIN is harmless
	l.wakeArmed.Store(false)
	l.stats.wakeups.Add(1)
	l.mu.Lock()
	l.tasks, l.running = l.running[:0], l.tasks
	l.mu.Unlock()
	for i := range l.running {
		t := &l.running[i]
		switch {
		case t.f != nil:
			t.f()
		case !t.c.closed:
			t.cf(t.c)
		}
		*t = task{}
	}
	l.stats.tasks.Add(uint64(len(l.running)))
}

// accept takes pending connections from the listener.
func (l *Loop) accept() {
	for i := 0; i < acceptPerEvent; i++ {
		nfd, sa, err := unix.Accept4(l.lnfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch err {
		case nil:
		case unix.EAGAIN:
			l.acceptPause = 0 // drained: the next exhaustion starts over
			return
		case unix.EINTR, unix.ECONNABORTED, unix.EPERM, unix.EPROTO,
			unix.ENETDOWN, unix.ENETUNREACH, unix.EHOSTDOWN, unix.EHOSTUNREACH,
			unix.ENONET, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
			// This connection failed (accept(2) lists these network
			// errors as ones to retry); it has left the queue.
			continue
		default:
			// EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays
			// queued and the listener readable, so retrying now would
			// spin. Stop polling the listener for a while instead.
			l.pauseAccept(nanotime(), err)
			return
		}
		l.acceptPause = 0
		l.place(nfd, sa)
	}
}

// place opens an accepted socket within the limits, or on the reserve
// when it is over them (reserve.go), or closes it.
func (l *Loop) place(nfd int, sa unix.Sockaddr) {
	var peer netip.Addr
	if l.cfg.MaxConnsPerPeer > 0 || l.cfg.ReserveConns > 0 {
		peer = peerKey(sa)
	}
	limit := l.count(peer)
	limit, handed := l.placeOverPeer(nfd, sa, peer, limit)
	if handed {
		return // another loop opens it, or refuses it (peerevict.go)
	}
	// A newcomer whose peer is at MaxConnsPerPeer evicts nothing here: it
	// would be refused for its peer once the slot was free (a review).
	// Its peer's own unproven connections were tried above.
	evictable := limit != nil && limit.name == "MaxConns" &&
		(l.cfg.MaxConnsPerPeer <= 0 || l.srv.peers.count(peer) < l.cfg.MaxConnsPerPeer)
	if evictable {
		// An idle victim first, here or on another loop: its slot is
		// free at once, and no work under way is cut for the newcomer.
		if l.evictUnproven(true) {
			limit = l.count(peer)
		}
		if limit != nil && limit.name == "MaxConns" && l.evictElsewhere(nfd, sa, peer) {
			return // handed to the other loop, which opens it once its victim is gone
		}
		// None idle anywhere: the oldest here, busy, retires; its slot
		// is freed when its work ends, this newcomer refused meanwhile
		// (or opened on the reserve, where a valid token may take the
		// slot of an owner over its fair share: Conn.Promote).
		if limit != nil && limit.name == "MaxConns" && l.evictUnproven(false) {
			limit = l.count(peer)
		}
	}
	l.admit(nfd, sa, peer, limit)
}

// admit opens an accepted socket that limit (nil: within the limits)
// was found for, on the reserve when over a limit, or closes it.
func (l *Loop) admit(nfd int, sa unix.Sockaddr, peer netip.Addr, limit *overLimit) {
	switch {
	case limit == nil:
		if l.cfg.MaxConnsPerPeer <= 0 {
			peer = netip.Addr{} // uncounted
		}
		l.open(nfd, sa, peer, false)
	case l.reserveOrEvict(peer):
		l.stats.reserved.Add(1)
		if n := limit.note.due(nanotime(), 1); n > 0 {
			l.log.Warn("netio: connection over a limit opened on the reserve",
				"limit", limit.name, "max", limit.max, "peer", sockaddrString(sa), "count", n)
		}
		l.open(nfd, sa, peer, true)
	default:
		// Counted before the close, so a client that sees the close
		// also sees the count.
		limit.refused.Add(1)
		unix.Close(nfd)
		if n := limit.note.due(nanotime(), 1); n > 0 {
			l.log.Warn("netio: connection refused: "+limit.why,
				"limit", limit.name, "max", limit.max, "peer", sockaddrString(sa), "count", n)
		}
	}
}

// overLimit names the limit a new connection is over, for place.
type overLimit struct {
	name, why string
	max       int
	refused   *atomic.Uint64
	note      *limitNote
}

// count counts a new connection of peer against MaxConns and
// MaxConnsPerPeer, or counts nothing and returns the limit it is over.
func (l *Loop) count(peer netip.Addr) *overLimit {
	if l.srv.open.Add(1) > int64(l.cfg.MaxConns) {
		l.srv.open.Add(-1)
		return &overLimit{name: "MaxConns", why: "open connections at limit", max: l.cfg.MaxConns,
			refused: &l.stats.refused, note: &l.notes.maxConns}
	}
	if l.cfg.MaxConnsPerPeer > 0 && !l.srv.peers.add(peer, l.cfg.MaxConnsPerPeer) {
		l.srv.open.Add(-1)
		return &overLimit{name: "MaxConnsPerPeer", why: "peer at its connection limit", max: l.cfg.MaxConnsPerPeer,
			refused: &l.stats.refusedPeer, note: &l.notes.perPeer}
	}
	return nil
}

// open registers an accepted socket and hands it to the handler. peer is
// the connection's key in the per-peer counts (the reserve's when
// reserved), or invalid when uncounted.
func (l *Loop) open(fd int, sa unix.Sockaddr, peer netip.Addr, reserved bool) {
	// Requests and responses are small and latency-bound: no Nagle.
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	c := &Conn{loop: l, fd: fd, sa: sa, id: l.srv.nextID.Add(1), events: unix.EPOLLIN,
		peer: peer, reserved: reserved, rtick: l.tick, wtick: l.tick, sndq: -1}
	if err := l.ctl(unix.EPOLL_CTL_ADD, fd, c.tag(), unix.EPOLLIN); err != nil {
		unix.Close(fd)
		l.uncount(c)
		l.stats.refused.Add(1)
		return
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns, nil)
	}
	l.conns[fd] = c
	l.nconns++
	if l.cfg.EvictUnproven && !reserved {
		c.born = nanotime()
		l.unproven.push(c)
		l.listPeer(c)
	}
	if l.sweepAt == 0 && l.sweepEvery > 0 {
		now := nanotime()
		l.sweepAt = now + l.sweepEvery
		l.armTimer(now)
	}
	if reserved {
		l.holdReserve(c)
	}
	l.stats.accepted.Add(1)
	l.h.OnOpen(c)
}

// markDirty puts c on the list flushed at the end of the pass.
func (l *Loop) markDirty(c *Conn) {
	if !c.dirty {
		c.dirty = true
		l.dirty = append(l.dirty, c)
	}
}

// flushDirty writes out, or closes, every connection marked this pass.
// OnClose may mark more connections; they are handled in the same call.
func (l *Loop) flushDirty() {
	for i := 0; i < len(l.dirty); i++ {
		c := l.dirty[i]
		l.dirty[i] = nil
		c.dirty = false
		switch {
		case c.closed:
		case c.closing:
			l.retire(c, c.closeErr, false)
		default:
			l.flush(c)
		}
	}
	l.dirty = l.dirty[:0]
}

// shutdown closes every connection and the loop's descriptors, runs the
// tasks already posted, and marks the loop stopped so later Posts drop.
func (l *Loop) shutdown() {
	unix.Close(l.lnfd)
	for _, c := range l.conns {
		if c != nil {
			l.closeConn(c, ErrServerClosed)
		}
	}
	l.flushDirty()
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	l.runTasks()
	l.flushDirty() // tasks may have queued output on closed conns: dropped
	unix.Close(l.evfd)
	unix.Close(l.tmfd)
	l.closeEpoll()
}
