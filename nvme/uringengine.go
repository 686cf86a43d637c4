package nvme

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uringEngine shares one ring among any number of goroutines.
//
// Submission (combining): a goroutine takes a free slot per transfer,
// publishes the entries under sqMu, adds them to unsubmitted and calls
// flush. One goroutine at a time (submitting) hands everything published so
// far to the kernel in one io_uring_enter; a goroutine that finds another
// submitting leaves its entries to it, since the submitter looks at
// unsubmitted again before it lets go. Under load one system call (and
// one virtio doorbell: the block layer plugs a batch) carries the transfers
// of many goroutines. In flight is bounded by the slot count, so the
// submission queue can never overflow and the completion queue (twice as
// large) neither.
//
// Completion: the ring signals an eventfd registered with it
// (IORING_REGISTER_EVENTFD) and one reaper goroutine waits for that eventfd
// through the Go runtime's poller, so no OS thread sits blocked in
// io_uring_enter holding a P (which made the runtime's sysmon retake the P
// and start threads, and left woken goroutines queued behind the blocked
// thread). The reaper dispatches every completion and wakes each batch's
// goroutine once its last transfer is done.
//
// Alone in flight (queue depth 1), a batch skips the reaper: its goroutine
// turns the eventfd off, waits in io_uring_enter itself and reaps, as fio
// does; the completion then costs no goroutine or thread wake-up beyond the
// one the kernel does. Lock order: cqMu, then sqMu (never held together
// today).
type uringEngine struct {
	r       *ring
	sqMu    sync.Mutex
	slots   []uringSlot
	free    chan uint32
	closing chan struct{}
	once    sync.Once
	fixed   [][]byte // registered buffers by index

	unsubmitted atomic.Uint32 // published entries not yet given to the kernel
	submitting  atomic.Bool   // a goroutine is in flush's system call
	inKernel    atomic.Int32  // entries handed to the kernel and not yet reaped

	// cqMu makes one goroutine at a time the consumer of the completion
	// queue: the reaper, or a lone batch waiting in the kernel (see wait).
	cqMu sync.Mutex

	efd    *os.File // eventfd the ring signals on each completion
	efdRaw syscall.RawConn
	reaped chan struct{} // closed when the reaper goroutine has returned
}

type uringSlot struct {
	io  *IO
	b   *uringBatch
	pin runtime.Pinner
	// armed is stored by the submitter after it filled the slot and
	// swapped by the reaper before reading it. The kernel orders the two
	// already (the SQ tail store precedes the completion), but the race
	// detector cannot see through the ring; this edge it can see.
	armed atomic.Bool
}

type uringBatch struct {
	remaining atomic.Int32
	done      chan struct{} // capacity 1; receives once the batch is complete
	// then, when set (a batch begun by start), is called instead of the
	// send on done, by whichever goroutine reaps the last completion.
	then func()
}

var batchPool = sync.Pool{New: func() any { return &uringBatch{done: make(chan struct{}, 1)} }}

func newUringEngine(depth int, regions [][]byte) (*uringEngine, error) {
	if err := ProbeUring(); err != nil {
		return nil, err
	}
	r, err := newRing(uint32(depth))
	if err != nil {
		return nil, err
	}
	depth = int(r.entries)
	e := &uringEngine{
		r:       r,
		slots:   make([]uringSlot, depth),
		free:    make(chan uint32, depth),
		closing: make(chan struct{}),
		reaped:  make(chan struct{}),
	}
	for i := range depth {
		e.free <- uint32(i)
	}
	if err := e.startReaper(); err != nil {
		r.close()
		return nil, err
	}
	if len(regions) > 0 {
		// Registration pins the memory once; when it fails (memlock
		// limits) plain READ/WRITE still work, just with per-I/O
		// pinning in the kernel.
		if bufs, err := r.registerBuffers(regions); err == nil {
			e.fixed = bufs
		}
	}
	return e, nil
}

// startReaper creates the completion eventfd, registers it with the ring
// and starts the reaper goroutine.
func (e *uringEngine) startReaper() error {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	e.efd = os.NewFile(uintptr(fd), "io_uring completions")
	if e.efdRaw, err = e.efd.SyscallConn(); err == nil {
		err = e.r.registerEventfd(int32(fd))
	}
	if err != nil {
		e.efd.Close()
		return err
	}
	go e.reap()
	return nil
}

func (e *uringEngine) kind() Engine { return EngineUring }

// fixedIndex returns the registered buffer holding b, or -1.
func (e *uringEngine) fixedIndex(b []byte) int {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for i, f := range e.fixed {
		base := uintptr(unsafe.Pointer(&f[0]))
		if p >= base && p+uintptr(len(b)) <= base+uintptr(len(f)) {
			return i
		}
	}
	return -1
}

func (e *uringEngine) run(fd int, ios []IO) {
	if len(ios) == 0 {
		return
	}
	b := batchPool.Get().(*uringBatch)
	b.remaining.Store(int32(len(ios)))
	for i := 0; i < len(ios); {
		first, ok := e.slot()
		if !ok {
			for ; i < len(ios); i++ {
				ios[i].Err = ErrClosed
				e.finish(b)
			}
			break
		}
		i += e.publish(fd, first, ios[i:], b)
	}
	e.flushAll()
	e.wait(b, len(ios))
	batchPool.Put(b)
}

// wait returns when b is complete. When b's n transfers are all that is in
// flight and nobody is reaping, the caller reaps itself, waiting in the
// kernel; else the reaper goroutine wakes it.
func (e *uringEngine) wait(b *uringBatch, n int) {
	if b.remaining.Load() > 0 && len(e.slots)-len(e.free) <= n && e.cqMu.TryLock() {
		e.flushAll() // entries others left to the reaper: none may wait behind this lone wait
		quiet := e.r.notify(false)
		for b.remaining.Load() > 0 {
			if e.r.reap(e.complete) == 0 {
				e.waitKernel()
			}
		}
		if quiet {
			// Completions posted from here on signal the reaper;
			// earlier ones are reaped before the lock is let go.
			e.r.notify(true)
			e.r.reap(e.complete)
		}
		e.cqMu.Unlock()
		e.flushAll() // what others left while b's completions were reaped here
	}
	<-b.done
}

// waitKernel blocks in io_uring_enter until a completion is posted.
func (e *uringEngine) waitKernel() {
	_, err := e.r.enter(0, 1, enterGetEvents)
	if err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EBUSY) {
		panic(fmt.Sprintf("nvme: io_uring wait: %v", err))
	}
}

// publish pushes ios[0] into slot first and as many of the rest as free
// slots allow, and returns how many it pushed.
func (e *uringEngine) publish(fd int, first uint32, ios []IO, b *uringBatch) int {
	e.sqMu.Lock()
	e.push(fd, first, &ios[0], b)
	n := 1
more:
	for n < len(ios) {
		select {
		case s := <-e.free:
			e.push(fd, s, &ios[n], b)
			n++
		default:
			break more
		}
	}
	e.sqMu.Unlock()
	e.unsubmitted.Add(uint32(n))
	return n
}

// slot takes a free slot, waiting when none is: what is published must
// reach the kernel first, or the slots might never come back. It reports
// false once the engine is closing.
func (e *uringEngine) slot() (uint32, bool) {
	select {
	case s := <-e.free:
		return s, true
	default:
	}
	e.flushAll()
	select {
	case s := <-e.free:
		return s, true
	case <-e.closing:
		return 0, false
	}
}

// deferSubmitAt is how many transfers in the kernel make flush (Device.FlushSoon)
// leave new entries to the reaper, which hands them over after its next reaping
// (flushAll), in one system call with the others left meanwhile. Each
// submission rings the device's doorbell; on a virtual machine that is an
// exit to the hypervisor, measured at about 12 us of a 4 KiB GET's CPU
// (nvme/doc.go, "Submission deferred while the device is busy"). With
// this many reads queued at the device, one more waits at most until the
// next completion, which the device's queue makes soon. Only small reads
// begun on an event loop take this way: a streamed value's chunk reads,
// left to the reaper too, ran 0.92x (0.92-0.99) of the present rate.
const deferSubmitAt = 4

// flush hands every published entry to the kernel, or leaves them to the
// goroutine that is doing so now (it checks unsubmitted again after its
// system call, and this goroutine's Add came before its own failed claim),
// or, with deferSubmitAt or more transfers in the kernel, to the goroutine that
// reaps the next completion (reap and wait call flushAll after reaping:
// the Add came before this Load of inKernel, and that reaper's decrement
// of inKernel comes after it, before its own Load of unsubmitted).
func (e *uringEngine) flush() { e.flushIf(false) }

// flushAll is flush without leaving entries to the reaper.
func (e *uringEngine) flushAll() { e.flushIf(true) }

func (e *uringEngine) flushIf(all bool) {
	for e.unsubmitted.Load() > 0 {
		if !all && e.inKernel.Load() >= deferSubmitAt {
			return
		}
		if !e.submitting.CompareAndSwap(false, true) {
			return
		}
		if n := e.unsubmitted.Swap(0); n > 0 {
			e.inKernel.Add(int32(n))
			e.submit(n)
		}
		e.submitting.Store(false)
	}
}

// submit hands n published entries to the kernel, which takes them in
// publication order. Published entries cannot be taken back, so a failure
// other than a transient one means the ring itself is broken (its
// descriptor closed under us): that is a bug, and it panics rather than
// leave callers waiting forever.
func (e *uringEngine) submit(n uint32) {
	for n > 0 {
		got, err := e.r.enter(n, 0, 0)
		switch {
		case err == nil:
			n -= min(n, uint32(got))
		case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.ENOMEM):
			runtime.Gosched()
		default:
			panic(fmt.Sprintf("nvme: io_uring submit with published entries: %v", err))
		}
	}
}

// reap is the reaper goroutine: it dispatches the completions available,
// then waits for the eventfd through the runtime poller. Reading the
// eventfd before reaping again means a completion posted at any moment is
// either seen by this pass or signals the next. It returns when close
// closes the eventfd.
func (e *uringEngine) reap() {
	defer close(e.reaped)
	var cnt [8]byte
	for {
		e.cqMu.Lock()
		n := e.r.reap(e.complete)
		e.cqMu.Unlock()
		if n > 0 {
			// What flush left to this reaping. Only after one: at its
			// start the reaper handed to the kernel the batches Start
			// had queued unsubmitted, before their Flush (a CI run's
			// TestStartQueuedUntilFlush, 10 of 100 runs alone).
			e.flushAll()
		}
		var rerr error
		err := e.efdRaw.Read(func(fd uintptr) bool {
			_, rerr = unix.Read(int(fd), cnt[:])
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return // closed
		}
		if rerr != nil && rerr != unix.EINTR {
			panic(fmt.Sprintf("nvme: io_uring eventfd read: %v", rerr))
		}
	}
}

// complete dispatches one completion; only the reaper calls it.
func (e *uringEngine) complete(ud uint64, res int32) {
	sl := &e.slots[ud]
	if !sl.armed.Swap(false) {
		panic("nvme: io_uring completion for an idle slot")
	}
	e.inKernel.Add(-1)
	io, b := sl.io, sl.b
	sl.io, sl.b = nil, nil
	sl.pin.Unpin()
	if res < 0 {
		io.Err = errnoErr(opName(io.Write), res)
	} else {
		io.N = int(res)
	}
	e.free <- uint32(ud)
	e.finish(b)
}

// finish counts one transfer of b as complete; the last one wakes b's
// goroutine.
func (e *uringEngine) finish(b *uringBatch) {
	if b.remaining.Add(-1) != 0 {
		return
	}
	if then := b.then; then != nil {
		b.then = nil
		batchPool.Put(b)
		then()
		return
	}
	b.done <- struct{}{}
}

// maxStart is the most transfers start takes in one batch.
const maxStart = 8

// start publishes ios as one batch, leaving the submission to flush, and
// does not wait; then runs once all are complete. It reports false, having published nothing,
// when the batch would have to wait: more than maxStart transfers, fewer
// free slots than transfers, or the engine closing.
func (e *uringEngine) start(fd int, ios []IO, then func()) bool {
	if len(ios) == 0 || len(ios) > maxStart {
		return false
	}
	var got [maxStart]uint32
	n := 0
	for ; n < len(ios); n++ {
		select {
		case s := <-e.free:
			got[n] = s
			continue
		default:
		}
		break
	}
	closing := false
	select {
	case <-e.closing:
		closing = true
	default:
	}
	if n < len(ios) || closing {
		for _, s := range got[:n] {
			e.free <- s
		}
		return false
	}
	b := batchPool.Get().(*uringBatch)
	b.remaining.Store(int32(len(ios)))
	b.then = then
	e.sqMu.Lock()
	for i := range ios {
		e.push(fd, got[i], &ios[i], b)
	}
	e.sqMu.Unlock()
	e.unsubmitted.Add(uint32(len(ios)))
	return true
}

// push publishes one entry; the caller holds sqMu and owns slot s.
func (e *uringEngine) push(fd int, s uint32, io *IO, b *uringBatch) {
	sl := &e.slots[s]
	sl.io, sl.b = io, b
	p := unsafe.Pointer(unsafe.SliceData(io.Buf))
	sl.pin.Pin(p)
	op, idx := uint8(opRead), -1
	if io.Write {
		op = opWrite
	}
	if len(e.fixed) > 0 {
		if idx = e.fixedIndex(io.Buf); idx >= 0 {
			op = opReadFixed
			if io.Write {
				op = opWriteFixed
			}
		}
	}
	sl.armed.Store(true)
	e.r.push(op, int32(fd), p, uint32(len(io.Buf)), uint64(io.Off), uint16(max(idx, 0)), uint64(s))
}

func opName(write bool) string {
	if write {
		return "io_uring write"
	}
	return "io_uring read"
}

// close waits for transfers in flight (the reaper completes them), stops
// the reaper and frees the ring.
func (e *uringEngine) close() {
	e.once.Do(func() {
		close(e.closing)
		for range len(e.slots) {
			<-e.free
		}
		_ = e.efd.Close() // wakes the reaper with an error
		<-e.reaped
		if len(e.fixed) > 0 {
			_ = e.r.register(unregisterBuffers, nil, 0)
		}
		e.r.close()
	})
}
