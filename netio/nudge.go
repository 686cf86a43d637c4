package netio

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A loop parked in Go's netpoller (the default, Config.WaitInSyscall off)
// is woken by whichever thread next polls the network. The runtime polls
// in two places: a thread with nothing to run blocks in the netpoller
// while a P is idle, and sysmon polls if nobody has for 10 ms. A thread
// that comes out of that blocking poll with one goroutine to run takes a
// P and runs it without waking another thread to take over the poll
// (runtime/proc.go, findRunnable, after netpoll(delay); golang/go pull
// request 51651 describes the gap). So when both loops park, the poller
// wakes for the first loop's event and runs that loop, the other P stays
// idle with no thread polling, and the second loop's connections wait for
// sysmon: 10 to 20 ms.
//
// Measured (1 MiB GETs, 8 conns, 2 loops on the 2-core VM, Go execution
// traces of the node and of the generator over the same 2 s): the loop
// with fewer connections parked for over 15 ms 19 times, and 37 of its 45
// parks over 8 ms were ended by sysmon (a thread with no P); generator
// connections waited over 10 ms for a reply's header 42 times, while that
// loop was parked and the node's other P idle. The GETs' p999 was 18-20
// ms, memcached's 4-6 ms in the same run.
//
// The watch: a loop that ends a pass while another loop is parked with
// connections open looks, at most every parkedPeekEvery, whether that
// loop's epoll descriptor has events waiting (a zero-timeout epoll_wait:
// the loops register their descriptors level-triggered, so looking takes
// nothing away). If it had them at the last look too, in the same park,
// they have waited parkedPeekEvery or more (a poll hands them over within
// microseconds), and the loop readies a goroutine that does nothing (the
// nudger). Readying a goroutine while a P is idle wakes a thread for it
// (runtime.wakep); that thread runs the nudger, finds no more work and
// blocks in the netpoller, which then hands the parked loop its events.
// It also writes the parked loop's eventfd, as Post does: the netpoller
// waits for a new edge on the loop's epoll descriptor, and a loop whose
// own zero-timeout epoll_wait missed its events (the kernel checks for
// them without a lock, and another thread's scan of the same descriptor,
// the netpoller's or a look from here, can hide them for an instant)
// would otherwise wait for its next event, however late. Nudging at the
// first look instead woke threads for events about to be polled anyway:
// 1 KiB PUTs from 50 conns then cost 0.03 more futex calls and 4 % more
// node CPU per PUT. A loop without connections is not watched (its
// listener's and timers' events can wait for sysmon), so a node serving
// one connection costs nothing more.

// parkedPeekEvery is how often at most a loop looks at the parked loops.
const parkedPeekEvery = 200 * time.Microsecond

// startNudger starts the goroutine nudge readies, when the server has two
// or more loops that park.
func (s *Server) startNudger() {
	if s.cfg.Loops < 2 || s.cfg.WaitInSyscall {
		return
	}
	s.nudges = make(chan struct{}, 1)
	go func() {
		for range s.nudges {
		}
	}()
}

// stopNudger ends the nudger, once every loop has exited.
func (s *Server) stopNudger() {
	if s.nudges != nil {
		close(s.nudges)
	}
}

// nudge readies the nudger unless it is ready already.
func (s *Server) nudge() {
	select {
	case s.nudges <- struct{}{}:
		s.nudged.Add(1)
	default:
	}
}

// parkWait parks the loop in the netpoller until its epoll descriptor is
// readable, then polls it (l.park). While parked with connections open the
// loop is marked for the other loops to watch (watchParked).
func (l *Loop) parkWait() error {
	watched := l.nconns > 0 && l.srv.nudges != nil
	if watched {
		l.parkSeq.Add(1)
		l.parkedOpen.Store(true)
		l.srv.parked.Add(1)
	}
	err := l.eprc.Read(l.park)
	if watched {
		l.srv.parked.Add(-1)
		l.parkedOpen.Store(false)
	}
	return err
}

// watchParked kicks a loop that has been parked with connections open and
// events waiting at two looks in a row, and nudges the runtime's poller
// (see the top of the file). It runs at the end of a pass; the look is
// skipped unless some loop is parked so and parkedPeekEvery has passed
// since the last one.
func (l *Loop) watchParked() {
	if l.srv.parked.Load() == 0 {
		return
	}
	now := nanotime()
	if now < l.peekAt {
		return
	}
	l.peekAt = now + int64(parkedPeekEvery)
	if l.seen == nil {
		l.seen = make([]uint64, len(l.srv.loops))
	}
	for i, o := range l.srv.loops {
		if o == l {
			continue
		}
		// The same park before and after the look, or it does not count.
		seq := o.parkSeq.Load()
		if !o.parkedOpen.Load() || !l.pending(o) || o.parkSeq.Load() != seq {
			l.seen[i] = 0
			continue
		}
		if l.seen[i] == seq {
			l.seen[i] = 0
			o.kick()
			l.srv.nudge()
			return
		}
		l.seen[i] = seq
	}
}

// pending reports whether o's epoll descriptor has an event waiting. It
// looks through the descriptor's os.File, so a loop closing concurrently
// cannot have the number reused under it (false then), with l's own
// callback and buffer, so a look allocates nothing.
func (l *Loop) pending(o *Loop) bool {
	if l.peekFn == nil {
		l.peekFn = func(fd uintptr) {
			l.peekN, _, _ = unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&l.peekEv[0])), 1, 0, 0, 0)
		}
	}
	l.peekN = 0
	err := o.eprc.Control(l.peekFn)
	return err == nil && int(l.peekN) > 0
}

// kick writes l's eventfd, whatever wakeArmed says, so that its epoll
// descriptor gets a new event and the netpoller a new edge. Under mu, as
// Post's writes are, so it cannot race with the loop closing the eventfd.
func (l *Loop) kick() {
	l.mu.Lock()
	if !l.stopped {
		l.wakeArmed.Store(true)
		unix.Write(l.evfd, wakeOne[:])
	}
	l.mu.Unlock()
}
