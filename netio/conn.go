package netio

import (
	"io"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Handler receives a connection's events. All calls for one connection are
// made on its loop goroutine, one at a time.
type Handler interface {
	// OnOpen is called after accept, before any OnData.
	OnOpen(c *Conn)
	// OnData gets in, all bytes received and not yet consumed, and returns
	// how many it consumed from the front. It should consume every complete
	// frame in one call (many pipelined requests arrive in one read),
	// except that it may stop before a frame while Conn.Backlogged: the
	// rest is presented again once the connection's output has drained,
	// whether or not more bytes arrive.
	//
	// in is valid only during the call: it may be the loop's shared read
	// buffer. Unconsumed bytes are moved to a per-connection buffer and
	// presented again, with new bytes appended, on the next call. To keep
	// bytes past the call, copy them or use SetSink.
	//
	// A non-nil err closes the connection after a best-effort flush of its
	// queued output; OnClose then gets err.
	OnData(c *Conn, in []byte) (consumed int, err error)
	// OnClose is called exactly once per opened connection, on its loop,
	// after its socket is closed and its queued output released. err is nil
	// after Conn.Close, io.EOF when the peer closed, ErrServerClosed at
	// shutdown, the error OnData returned, or a wrapped syscall error.
	OnClose(c *Conn, err error)
}

// EOFHandler is a Handler told of the end of a connection's input: the
// peer shut its writing side, or closed (see peerEOF), or the server is
// closing c with replies promised and reads it no more (c.Closed() is
// true; see retire). OnEOF runs on c's loop before the loop looks at what
// c still owes, so the handler can drop, and take back the promises of,
// requests it has not started. It may come twice for one connection: at
// the end of its input, then with c.Closed() true if the server closes c
// (WriteTimeout, an eviction, Close) before it owes nothing.
type EOFHandler interface {
	OnEOF(c *Conn)
}

// Releaser is told when memory passed to Conn.WriteRef is no longer used.
type Releaser interface{ Release() }

// Sink receives a run of inbound bytes straight into caller memory, such as
// a PUT payload into slab memory, without passing through OnData.
type Sink interface {
	// Next returns the next region to fill; an empty one means complete.
	Next() []byte
	// Advance records that the first n bytes of Next() were filled.
	Advance(n int)
	// Done is called once on the loop goroutine when Next() is empty.
	// Bytes after the sink's end go to OnData again. If the connection
	// closes first, Done is not called: OnClose must free the sink.
	Done()
}

// Conn is one accepted connection. Except Post, its methods must be called
// on its loop goroutine: from Handler callbacks or functions given to Post.
type Conn struct {
	loop *Loop
	fd   int
	id   uint64
	sa   unix.Sockaddr
	ctx  any
	peer netip.Addr // key in the per-peer counts (the reserve's when reserved); invalid when uncounted

	reserved bool  // opened on the reserve (Config.ReserveConns)
	expires  int64 // reserved: nanotime when ReserveTimeout closes it

	// On the loop's unproven list (Config.EvictUnproven) until Prove:
	// its neighbours there, and when it was opened (nanotime).
	unPrev, unNext *Conn
	onList         bool
	over           bool // on the loop's overOwner list, not its unproven one
	born           int64
	// On its loop's list of its peer's unproven connections (byPeer,
	// peerevict.go): its neighbours there.
	pPrev, pNext *Conn
	onPeer       bool
	// The owner it is proven for (Conn.ProveFor), counted in the
	// server's owners; or, when owned is false and ownerSeen is not 0,
	// one more than the owners' release count when it was last found
	// over MaxProvenPerOwner.
	owner     string
	owned     bool
	ownerSeen uint64
	// On its loop's list of its owner's proven connections (fairshare.go):
	// the list and its neighbours there.
	ownList      *ownedList
	oPrev, oNext *Conn

	// Stamps on the loop's coarse clock (Loop.tick), for the timeouts.
	rtick int64 // the handler last took input (OnData consumed, or a sink)
	wtick int64 // the peer last took output, or output became pending
	sndq  int   // the socket's send queue (SIOCOUTQ) at the last sweep; -1: not looked
	// The sink's pace (Config.MinSinkRate): since sinkAt (nanotime), it
	// has taken sinkGot bytes; the pace window now running began at winAt
	// (0: none yet), when it had taken winGot (Loop.slowSink).
	sinkAt  int64
	sinkGot int64
	winAt   int64
	winGot  int64

	in   []byte // unconsumed input in a pooled buffer, or nil when none
	out  outQueue
	sink Sink
	hold *Hold    // the active hold, or nil (Conn.Hold)
	side outQueue // output written while hold is active, sent after it

	events   uint32 // the epoll interest set registered for fd
	dirty    bool   // on loop.dirty for this pass
	closing  bool   // Close was called or OnData failed; closes at flush
	closed   bool
	paused   bool // not reading: queued output is over MaxOutbound, or over OutboundFloor with the server's total over MaxOutboundTotal
	stalled  bool // OnData left input while Backlogged: present it again once the output drains
	counted  int  // owed() as last added to the server's total
	expect   int  // reply bytes the handler promised and has not written (Expect)
	eof      bool // the peer shut its writing side: read no more, close once nothing is owed (peerEOF)
	retiring bool // closing with replies promised: out of the epoll set until they are kept (retire)
	noFlush  bool // the socket failed: do not try to flush on close
	closeErr error

	// The output's pace (Config.MinDrainRate): since drainAt (nanotime;
	// 0 while none waits), the peer has taken drainGot bytes. Last, so
	// the fields the data path reads keep their places.
	drainAt  int64
	drainGot int64
}

// ID returns the connection's id, unique within its server, from 1 up.
func (c *Conn) ID() uint64 { return c.id }

// tag is the connection's part of its epoll events' data (the low 32
// bits of its id): an event is c's only if it carries both c's
// descriptor and c's tag, since a descriptor closed in one pass of the
// loop can be reused by a connection opened later in that pass.
func (c *Conn) tag() uint32 { return uint32(c.id) }

// Loop returns the loop serving c.
func (c *Conn) Loop() *Loop { return c.loop }

// Context returns the value set by SetContext.
func (c *Conn) Context() any { return c.ctx }

// SetContext attaches per-connection handler state to c.
func (c *Conn) SetContext(v any) { c.ctx = v }

// Closed reports whether c is closed or closing (Close was called, or
// OnData failed): output written now may never be sent.
func (c *Conn) Closed() bool { return c.closed || c.closing }

// Pending returns the bytes queued for output and not yet sent.
func (c *Conn) Pending() int { return c.out.pending + c.side.pending }

// Expect adds n bytes (negative: takes them back) to the output c is
// promised: replies the handler will write later, such as those of reads
// from a device still in flight. They count with the queued output in
// Backlogged, the pause and the server's total, so requests answered
// later cannot pass the bounds that requests answered at once keep. The
// handler takes back exactly what it added, when it writes the reply or
// drops it; after c closes it may still do so (it changes nothing).
func (c *Conn) Expect(n int) {
	if c.closed || n == 0 {
		return
	}
	was := c.expect > 0
	c.expect += n
	if c.onList && was != (c.expect > 0) {
		// Listed (evictable): another loop claims only victims with
		// nothing promised (evictElsewhere), so the list counts them.
		d := int64(1)
		if was {
			d = -1
		}
		c.loop.listOf(c).busy.Add(d)
	}
	if n < 0 {
		c.loop.markDirty(c) // the flush may resume reading c
	}
}

// discards reports whether output written to c is dropped at once: c is
// closed, or retiring with a reset (nothing of it will be sent).
func (c *Conn) discards() bool { return c.closed || c.retiring && c.noFlush }

// owed is c's output queued and promised (Expect), in bytes.
func (c *Conn) owed() int { return c.Pending() + c.expect }

// Backlogged reports whether c's queued output is over the outbound
// bounds (Config.MaxOutbound, or OutboundFloor while the server's total is
// over Config.MaxOutboundTotal): a handler should answer no more of c's
// requests now. OnData may return before its next frame; the loop stops
// reading c and presents the unconsumed bytes again once c's output has
// drained (see updateInterest). Checked before each frame, it bounds what
// a connection queues to the bounds plus one reply, where checking after
// each read let one read of small requests for 16 KiB values queue tens
// of megabytes.
//
// When it reports true it also marks c to have its unconsumed input
// presented again, whether or not the handler stops: the loop's own look
// after OnData could differ, since the server's total moves with the
// other loops' connections (it did: a node with a 8 MiB total left
// requests it had read unanswered for good).
func (c *Conn) Backlogged() bool {
	if !c.loop.overOutbound(c) {
		return false
	}
	c.stalled = true
	c.loop.markDirty(c)
	return true
}

// Reserved reports whether c was opened on the reserve: over MaxConns or
// MaxConnsPerPeer, within Config.ReserveConns. It lives at most
// Config.ReserveTimeout; the handler should answer only what the reserve
// is for and close it.
func (c *Conn) Reserved() bool { return c.reserved }

// RemoteAddr returns the peer's "ip:port".
func (c *Conn) RemoteAddr() string { return sockaddrString(c.sa) }

// Write copies p to c's output. Output is sent with writev at the end of
// the loop's pass, coalesced with everything else queued for c. p may be
// reused as soon as Write returns. Writes to a closed connection are
// dropped, as are those to one being reset (see retire).
func (c *Conn) Write(p []byte) {
	if c.discards() || len(p) == 0 {
		return
	}
	if c.hold != nil {
		c.side.write(p, &c.loop.pool)
		return
	}
	c.out.write(p, &c.loop.pool)
	c.loop.markDirty(c)
}

// WriteRef queues p without copying it: writev reads it straight from the
// caller's memory, so p must stay unchanged until r is released. r (may be
// nil) is released exactly once, on c's loop, after p has been fully sent
// or when c closes; on a closed connection at once. Order with Write is kept.
func (c *Conn) WriteRef(p []byte, r Releaser) {
	if c.discards() {
		if r != nil {
			r.Release()
		}
		return
	}
	if c.hold != nil {
		c.side.writeRef(p, r)
		return
	}
	c.out.writeRef(p, r)
	c.loop.markDirty(c)
}

// Hold reserves the end of c's output for one reply written over several
// passes (a value streamed chunk by chunk as it is read): until the hold is
// released, Write and WriteRef on c queue their bytes behind it, and only
// the hold's own Write and WriteRef extend the output that is sent. So
// another reply is never cut into the held one. One hold at a time: Hold
// reports false while one is active (the caller writes whole replies
// then). If c closes first, whatever was queued behind the hold is
// dropped, never sent; a closing connection sends its output up to the
// hold's last write, so a reply cut short by Close stays short, which the
// peer sees as a connection closed mid-frame.
func (c *Conn) Hold() (*Hold, bool) {
	if c.hold != nil {
		return nil, false
	}
	h := &Hold{c: c, done: c.closed}
	if !c.closed {
		c.hold = h
	}
	return h, true
}

// Hold is an active reservation of a connection's output (Conn.Hold). Its
// methods must be called on the connection's loop goroutine.
type Hold struct {
	c    *Conn
	done bool // released, or the connection closed
}

// Write copies p to the output at the hold, like Conn.Write.
func (h *Hold) Write(p []byte) {
	c := h.c
	if h.done || c.discards() || len(p) == 0 {
		return
	}
	c.out.write(p, &c.loop.pool)
	c.loop.markDirty(c)
}

// WriteRef queues p by reference at the hold, like Conn.WriteRef: r is
// released once p is sent or the connection closes, at once if it has.
func (h *Hold) WriteRef(p []byte, r Releaser) {
	c := h.c
	if h.done || c.discards() {
		if r != nil {
			r.Release()
		}
		return
	}
	c.out.writeRef(p, r)
	c.loop.markDirty(c)
}

// Release ends the hold: what was written behind it follows the hold's
// output. It is idempotent, and does nothing after the connection closed.
func (h *Hold) Release() {
	c := h.c
	if h.done {
		return
	}
	h.done = true
	if c.hold != h {
		return
	}
	c.hold = nil
	c.out.appendQueue(&c.side)
	c.loop.markDirty(c)
}

// SetSink is called inside OnData: the bytes after the consumed ones go
// into s, first those already received, then read(2) straight into s's
// regions, until s is complete. OnData gets the bytes after that.
// The peer must send s's bytes at Config.MinSinkRate or faster.
func (c *Conn) SetSink(s Sink) {
	c.sink = s
	if s != nil {
		c.sinkAt, c.sinkGot, c.winAt, c.winGot = nanotime(), 0, 0, 0
	}
}

// Close closes c at the end of the current pass, after a best-effort flush
// of its queued output; while replies are promised (Expect), once they
// are kept, c read no more meanwhile (see retire). OnClose gets a nil
// error.
func (c *Conn) Close() {
	if c.closed || c.closing {
		return
	}
	c.closing = true
	c.loop.markDirty(c)
}

// Post runs f(c) on c's loop soon, unless c has closed by then. It may be
// called from any goroutine: it is how asynchronous work (a disk read
// completing) answers on a connection.
func (c *Conn) Post(f func(c *Conn)) { c.loop.enqueue(task{cf: f, c: c}) }

// onReadable reads from c until the socket is drained, the pass budget
// MaxReadPerPass is spent, or the connection stops (closing, paused).
func (l *Loop) onReadable(c *Conn) {
	if l.redeliver(c); c.stalled {
		return // what was read before is not all taken: read no more yet
	}
	budget := l.cfg.MaxReadPerPass
	for budget > 0 && !c.closing && !c.closed {
		var n, want int
		var err error
		if c.sink != nil {
			r := c.sink.Next()
			if len(r) == 0 {
				c.finishSink() // completed outside OnData: nothing to read
				continue
			}
			n, want, err = l.readSink(c, r[:min(len(r), budget)])
		} else {
			n, want, err = l.readData(c, budget)
		}
		if err != nil {
			if err != unix.EAGAIN {
				c.noFlush = true
				l.closeConn(c, os.NewSyscallError("read", err))
			}
			return
		}
		if n == 0 {
			l.peerEOF(c)
			return
		}
		budget -= n
		if n < want || l.overOutbound(c) {
			// A short read means the socket is drained; level-triggered
			// epoll reports it again if more arrives. Over the outbound
			// bounds the flush pauses reading.
			return
		}
	}
}

// read is read(2) that retries on EINTR and counts; raw makes it a raw
// system call (in a busy pass, or into a sink's region of rawFrom bytes
// or more).
func (l *Loop) read(fd int, p []byte, raw bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r, e := sysRW(unix.SYS_READ, fd, unsafe.Pointer(&p[0]), len(p), raw)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		if r > 0 {
			l.stats.reads.Add(1)
			l.stats.bytesIn.Add(uint64(r))
		}
		return int(r), nil
	}
}

// rawFrom is the size from which a writev, or a read into a sink's
// region, is a raw system call (no entersyscall). Reads into the loop's
// read buffer stay plain whatever their size in a pass with one event (in
// a busier pass every read and writev is raw: Loop.busyPass): they carry
// requests, mostly small, and a lone connection's latency rests on what a
// plain call does (the package doc, "System calls"). A copy of that many
// bytes can outlast sysmon's 20 us tick, and sysmon then takes the loop's
// P away from the call and hands it to another thread, which the loop
// must win back when the call returns: thread wake-ups and context
// switches for nothing, since the descriptors are non-blocking and the
// call never sleeps. The cost of going raw: the P is held for the copy (a
// 1 MiB writev, 100-300 us), during which no other goroutine runs on it
// and a stop-the-world waits. Measured in netio's doc ("Long copies").
const rawFrom = 64 << 10

// sysRW is read(2) or writev(2) (trap) on fd with the buffer or iovec
// array at p of n bytes or entries; raw makes it a raw system call.
func sysRW(trap uintptr, fd int, p unsafe.Pointer, n int, raw bool) (uintptr, unix.Errno) {
	if raw {
		r, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(p), uintptr(n))
		return r, e
	}
	r, _, e := unix.Syscall(trap, uintptr(fd), uintptr(p), uintptr(n))
	return r, e
}

// readSink reads straight into r, the start of the sink's next region.
func (l *Loop) readSink(c *Conn, r []byte) (n, want int, err error) {
	if n, err = l.read(c.fd, r, l.busyPass || len(r) >= rawFrom); n > 0 {
		c.rtick = l.tick
		c.sinkGot += int64(n)
		c.sink.Advance(n)
		if len(c.sink.Next()) == 0 {
			c.finishSink()
		}
	}
	return n, len(r), err
}

// readData reads new bytes and presents them to OnData. A connection with
// no leftover reads into the loop's shared buffer; one with leftover reads
// into the free tail of its own buffer, so the bytes are contiguous.
func (l *Loop) readData(c *Conn, budget int) (n, want int, err error) {
	if len(c.in) == 0 {
		buf := l.readBuf[:min(len(l.readBuf), budget)]
		if n, err = l.read(c.fd, buf, l.busyPass); n > 0 {
			l.deliver(c, buf[:n], true)
		}
		return n, len(buf), err
	}
	c.growIn()
	room := min(cap(c.in)-len(c.in), budget, l.cfg.MaxInbound-len(c.in))
	if room <= 0 {
		// keep closes a connection at MaxInbound before this can happen;
		// a zero-length read would look like EOF, so never issue one.
		c.closeErr = ErrInboundLimit
		c.Close()
		return 0, 0, unix.EAGAIN
	}
	buf := c.in[len(c.in) : len(c.in)+room]
	if n, err = l.read(c.fd, buf, l.busyPass); n > 0 {
		c.in = c.in[:len(c.in)+n]
		l.deliver(c, c.in, false)
	}
	return n, room, err
}

// minSpare is the free room below which a leftover buffer grows before a
// read, so reads into it stay large.
const minSpare = 4 << 10

// growIn makes room after c.in's leftover bytes, moving them to a larger
// pooled buffer when less than minSpare is free.
func (c *Conn) growIn() {
	if cap(c.in)-len(c.in) >= minSpare {
		return
	}
	pool := &c.loop.pool
	nb := pool.get(min(max(2*len(c.in), len(c.in)+4*minSpare), c.loop.cfg.MaxInbound))
	nb = append(nb, c.in...)
	pool.put(c.in)
	c.in = nb
}

// deliver hands data to OnData (and to a sink set there) and keeps what is
// left unconsumed. shared says data is in the loop's read buffer, which the
// next read reuses, so leftovers must be copied out of it.
func (l *Loop) deliver(c *Conn, data []byte, shared bool) {
	for !c.closing && !c.closed {
		consumed, err := l.h.OnData(c, data)
		if err == nil && (consumed < 0 || consumed > len(data)) {
			err = ErrBadConsumed
		}
		if err != nil {
			c.closeErr = err
			c.Close()
			break
		}
		if consumed > 0 {
			c.rtick = l.tick
		}
		data = data[consumed:]
		if c.sink == nil || c.fillSink(&data) || len(data) == 0 {
			break
		}
		// The sink completed inside data: OnData gets the rest.
	}
	// OnData may have stopped before complete frames (Backlogged marked c
	// stalled): the flush at the end of the pass pauses c or presents
	// them again.
	l.keep(c, data, shared)
}

// redeliver presents c's unconsumed input to OnData again, without a read,
// when OnData stopped while c was Backlogged and c is no longer paused.
func (l *Loop) redeliver(c *Conn) {
	if !c.stalled || c.paused || c.closing || c.closed || c.sink != nil {
		return
	}
	c.stalled = false
	if len(c.in) > 0 {
		l.deliver(c, c.in, false)
	}
	if c.eof {
		l.markDirty(c) // the flush closes c if it owes nothing now
	}
}

// fillSink copies already-received bytes from the front of *data into the
// sink. It reports whether the sink is still open (then *data is empty).
func (c *Conn) fillSink(data *[]byte) bool {
	for c.sink != nil {
		r := c.sink.Next()
		if len(r) == 0 {
			c.finishSink()
			return false
		}
		if len(*data) == 0 {
			return true
		}
		n := copy(r, *data)
		c.sinkGot += int64(n)
		c.sink.Advance(n)
		*data = (*data)[n:]
	}
	return false
}

// finishSink detaches the sink and tells it it is complete.
func (c *Conn) finishSink() {
	s := c.sink
	c.sink = nil
	s.Done()
}

// keep stores the unconsumed rest of the input in c.in, or frees c.in when
// nothing is left, and enforces MaxInbound.
func (l *Loop) keep(c *Conn, rest []byte, shared bool) {
	if c.closed {
		return
	}
	switch {
	case len(rest) == 0:
		if c.in != nil {
			l.pool.put(c.in)
			c.in = nil
		}
	case shared:
		c.in = append(l.pool.get(max(len(rest)+4*minSpare, 2*len(rest))), rest...)
	default:
		// rest is the tail of c.in: move it to the front.
		c.in = c.in[:copy(c.in, rest)]
	}
	if len(c.in) >= l.cfg.MaxInbound && !c.closing {
		c.closeErr = ErrInboundLimit
		c.Close()
	}
}

// flush writes c's queued output with writev until it is sent or the socket
// is full, then updates c's epoll interest (EPOLLOUT only while output is
// pending; EPOLLIN off while paused).
func (l *Loop) flush(c *Conn) {
	if c.events&unix.EPOLLOUT == 0 {
		// Nothing was left over after the last flush: the output is
		// new, and WriteTimeout runs from now.
		c.wtick, c.sndq = l.tick, -1
	}
	for c.out.has() {
		cnt, total := c.out.iovecs(l.iov)
		n, err := l.writev(c.fd, cnt, total)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			c.noFlush = true
			l.closeConn(c, os.NewSyscallError("writev", err))
			return
		}
		if n > 0 {
			c.wtick, c.sndq = l.tick, -1
			c.drainGot += int64(n)
		}
		c.out.consume(n, &l.pool)
		if n < total {
			break
		}
	}
	switch {
	case !c.out.has():
		c.drainAt = 0
	case c.drainAt == 0:
		// Output waits for the peer: its pace runs from now (a clock
		// read only when the socket is full).
		c.drainAt, c.drainGot = nanotime(), 0
	}
	if c.eof && c.answered() {
		l.closeConn(c, io.EOF)
		return
	}
	l.updateInterest(c)
}

// peerEOF handles the end of c's input (the peer shut its writing side,
// or closed): c is read no more, the handler is told (EOFHandler), and c
// closes once it owes nothing, its queued output written, its promised
// replies (Expect) and its hold's written, the input it left for later
// (stalled) served. A peer that
// half-closes after its requests, as a client given up on a call may
// (and the Python client does for a frame it was interrupted writing),
// gets every reply. Before, c closed at once: output past what one
// flush wrote was cut, and replies still to come (a device write or read
// in flight, a listing on the scan lane) were dropped while their
// requests were executed. A peer that does not read them is closed by
// WriteTimeout as any other.
func (l *Loop) peerEOF(c *Conn) {
	c.eof = true
	// A sink open at the end of input can never complete: it is dropped
	// (OnEOF or OnClose frees it, Done is not called), so the sweep's
	// MinSinkRate check does not close c under the replies it still owes.
	c.sink = nil
	if h, ok := l.h.(EOFHandler); ok {
		h.OnEOF(c)
	}
	if c.answered() {
		l.closeConn(c, io.EOF)
		return
	}
	l.markDirty(c)
}

// retire closes c, as the server decided (Close, OnData's error, a
// timeout), once the replies its handler promised (Conn.Expect) are kept:
// until then c is read no more and leaves the epoll set, a sink open on
// it is dropped, and the handler is told (EOFHandler, with c.Closed()
// true) so it can drop what it has not started. reset closes with a
// reset and without the flush (WriteTimeout). Each later pass that marks
// c looks again (Expect marks it when a promise is taken back).
//
// A promise is work under way for c's requests, a device write among
// them. Before, c closed at once and such a write was published after
// the close: a client that took the close for "nothing more of this
// connection lands" (the fence the Python client keeps after a timeout
// rests on it) saw a put it sent first land after one it sent next.
// Failed sockets (the peer reset or hung up), ReserveTimeout (a reserve
// connection's one request is served on the loop) and the server's
// shutdown close at once. An eviction (evict) retires its victim too.
func (l *Loop) retire(c *Conn, err error, reset bool) {
	if reset {
		l.resetOnClose(c)
	}
	if c.expect <= 0 {
		l.closeConn(c, err)
		return
	}
	if c.retiring {
		return
	}
	c.retiring, c.closing, c.closeErr = true, true, err
	c.sink = nil     // as at the end of input: the handler frees it (OnEOF, OnClose)
	if c.in != nil { // input not taken is never served now
		l.pool.put(c.in)
		c.in = nil
	}
	c.stalled = false
	if c.noFlush {
		// Reset: nothing more is sent, so what is queued, and what the
		// promises write (Conn.discards), goes now, values held by
		// reference with it, not when the work ends.
		c.out.drop(&l.pool)
		c.side.drop(&l.pool)
		l.countQueued(c)
	}
	// Closing already: no eviction may pick it again, and the other
	// loops must not count it as evictable (evictElsewhere's claims).
	l.unlist(c)
	// Out of the epoll set, not just without EPOLLIN: a socket reset
	// meanwhile would be reported again on every wait.
	if l.ctl(unix.EPOLL_CTL_DEL, c.fd, c.tag(), 0) == nil {
		c.events = 0
	}
	if h, ok := l.h.(EOFHandler); ok {
		h.OnEOF(c)
	}
	if c.expect <= 0 {
		l.closeConn(c, err)
	}
}

// answered reports whether c owes its peer nothing: see peerEOF.
func (c *Conn) answered() bool {
	return c.owed() == 0 && c.hold == nil && !c.stalled
}

// writev writes the first cnt entries of l.iov, total bytes (raw from
// rawFrom on). It allocates nothing: the iovec array is the loop's own.
func (l *Loop) writev(fd, cnt, total int) (int, error) {
	if cnt == 0 {
		return 0, nil
	}
	for {
		r, e := sysRW(unix.SYS_WRITEV, fd, unsafe.Pointer(&l.iov[0]), cnt, l.busyPass || total >= rawFrom)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		l.stats.wvs.Add(1)
		l.stats.bytesOut.Add(uint64(r))
		return int(r), nil
	}
}

// overOutbound reports whether c has more output queued than the
// outbound bounds let a connection that is read have.
func (l *Loop) overOutbound(c *Conn) bool {
	return c.owed() > l.cfg.MaxOutbound || l.overTotal(c)
}

// overTotal reports whether the server's queued output is over
// MaxOutboundTotal and c holds more than OutboundFloor of it. A connection
// over the floor counts its queue into the total first, so that within a
// pass its own replies count before the flush does it (a connection under
// the floor, whose replies mostly leave each pass, touches no atomic).
func (l *Loop) overTotal(c *Conn) bool {
	bound := l.cfg.MaxOutboundTotal
	if bound <= 0 || c.owed() <= OutboundFloor {
		return false
	}
	l.countQueued(c)
	return l.srv.queued.Load() > int64(bound)
}

// overHalfTotal reports whether the server's queued output is over half
// of MaxOutboundTotal.
func (l *Loop) overHalfTotal() bool {
	bound := l.cfg.MaxOutboundTotal
	return bound > 0 && l.srv.queued.Load() > int64(bound/2)
}

// countQueued brings c's share of the server's queued-output total up to
// date: an atomic add only when c's queue changed since it was last
// counted, which a connection whose replies leave whole each pass never
// does.
func (l *Loop) countQueued(c *Conn) {
	if d := c.owed() - c.counted; d != 0 {
		c.counted += d
		l.srv.queued.Add(int64(d))
	}
}

// updateInterest counts c's queued output into the server's total,
// pauses or resumes reading c by the outbound bounds and changes its epoll
// registration only when that differs.
func (l *Loop) updateInterest(c *Conn) {
	l.countQueued(c)
	switch {
	case !c.paused && c.owed() > l.cfg.MaxOutbound:
		c.paused = true
		l.stats.paused.Add(1)
	case !c.paused && l.overTotal(c):
		c.paused = true
		l.stats.pausedTotal.Add(1)
	case c.paused && c.owed() <= l.cfg.MaxOutbound/2 &&
		(c.owed() <= OutboundFloor || !l.overHalfTotal()):
		c.paused = false
	}
	if c.stalled && !c.paused {
		// Input left by a Backlogged OnData goes to it again in the next
		// pass even if the peer sends nothing more (it may be waiting
		// for these replies).
		l.enqueue(task{cf: l.redeliverFn, c: c})
	}
	var want uint32
	if !c.paused && !c.eof {
		want |= unix.EPOLLIN
	}
	if c.out.has() {
		want |= unix.EPOLLOUT
	}
	if want == c.events {
		return
	}
	if err := l.ctl(unix.EPOLL_CTL_MOD, c.fd, c.tag(), want); err != nil {
		c.noFlush = true
		l.closeConn(c, err)
		return
	}
	c.events = want
}

// closeConn flushes what it can (unless the socket failed), closes the
// socket, releases every buffer and reference c holds, and calls OnClose.
func (l *Loop) closeConn(c *Conn, err error) {
	if c.closed {
		return
	}
	if !c.noFlush {
		for c.out.has() {
			cnt, total := c.out.iovecs(l.iov)
			n, werr := l.writev(c.fd, cnt, total)
			if werr != nil {
				break
			}
			c.out.consume(n, &l.pool)
			if n < total {
				break
			}
		}
	}
	c.closed = true
	c.closing = false
	// Closing the socket also removes it from the epoll set.
	unix.Close(c.fd)
	l.conns[c.fd] = nil
	if c.hold != nil {
		c.hold.done = true
		c.hold = nil
	}
	c.out.drop(&l.pool)
	c.side.drop(&l.pool)
	l.srv.queued.Add(int64(-c.counted))
	c.counted = 0
	if c.in != nil {
		l.pool.put(c.in)
		c.in = nil
	}
	c.sink = nil
	l.unlist(c)
	if c.owned {
		l.srv.owners.release(c.owner, l.idx)
		c.owned = false
	}
	// Counted closed before it stops counting as open, so a reader of
	// Stats that sees no connection open sees every close counted.
	l.stats.closed.Add(1)
	l.uncount(c)
	l.nconns--
	l.h.OnClose(c, err)
}
