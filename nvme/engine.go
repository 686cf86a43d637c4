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

// Engine selects how a Device issues its transfers.
type Engine uint8

// Engines. EngineAuto picks io_uring when ProbeUring succeeds, else the
// synchronous fallback (pread and pwrite).
const (
	EngineAuto Engine = iota
	EngineUring
	EngineSync
)

func (e Engine) String() string {
	switch e {
	case EngineUring:
		return "io_uring"
	case EngineSync:
		return "sync"
	}
	return "auto"
}

// IO is one transfer of a batch given to Device.Do. Buf, Off and Write are
// the request; Do sets N and Err. Buf must stay untouched until Do returns.
type IO struct {
	Write bool
	Buf   []byte
	Off   int64

	N   int
	Err error
}

// engine performs single attempts of transfers; the Device validates them
// before and retries partial transfers after. run returns when every IO in
// the batch has completed; it sets N (bytes moved) or Err on each.
type engine interface {
	run(fd int, ios []IO)
	kind() Engine
	close()
}

// errno turns a negative io_uring result into a named error.
func errnoErr(op string, res int32) error {
	return os.NewSyscallError(op, syscall.Errno(-res))
}

// uringEngine shares one ring among any number of goroutines.
//
// Submission: a goroutine takes a free slot per transfer, publishes the
// entries under sqMu and enters the kernel outside it. In flight is bounded
// by the slot count, so the submission queue can never overflow and the
// completion queue (twice as large) neither.
//
// Every goroutine that publishes k entries owes one io_uring_enter for k;
// the kernel takes entries in publication order, so whoever enters may
// submit another's entries, and the totals still match as long as no
// goroutine drops what it owes.
//
// Completion (leader/follower): there is no reaper goroutine. A submitter
// that finds nobody reaping becomes the reaper: it submits and waits in one
// io_uring_enter, dispatches every completion it reaps (waking the batches
// of other goroutines through their channels), and when its own batch is
// done hands the role to one waiting goroutine, if any. At queue depth 1 a
// transfer thus costs one system call and no goroutine switch, as with fio.
// cqMu guards reaping and waiters; lock order: sqMu is never held with cqMu.
type uringEngine struct {
	r       *ring
	sqMu    sync.Mutex
	slots   []uringSlot
	free    chan uint32
	closing chan struct{}
	once    sync.Once
	fixed   [][]byte // registered buffers by index

	cqMu    sync.Mutex
	reaping bool
	waiters []*uringBatch // incomplete batches whose goroutine waits on done
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

// Messages on uringBatch.done.
const (
	batchComplete = iota + 1
	batchPromote  // the receiver is the reaper now
)

type uringBatch struct {
	remaining atomic.Int32
	done      chan uint8 // capacity 1; see batchComplete, batchPromote
}

var batchPool = sync.Pool{New: func() any { return &uringBatch{done: make(chan uint8, 1)} }}

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
		waiters: make([]*uringBatch, 0, depth),
	}
	for i := range depth {
		e.free <- uint32(i)
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
	pending := uint32(0) // published, not yet submitted
	reaper := false
	for i := 0; i < len(ios); {
		first, ok := e.slot(&pending, &reaper)
		if !ok {
			for ; i < len(ios); i++ {
				ios[i].Err = ErrClosed
				e.finish(b)
			}
			break
		}
		e.sqMu.Lock()
		e.push(fd, first, &ios[i], b)
		i, pending = i+1, pending+1
	more:
		for i < len(ios) {
			select {
			case s := <-e.free:
				e.push(fd, s, &ios[i], b)
				i, pending = i+1, pending+1
			default:
				break more
			}
		}
		e.sqMu.Unlock()
	}
	e.wait(b, pending, reaper)
	batchPool.Put(b)
}

// slot takes a free slot. When none is free, the entries published so far
// must reach the kernel and somebody must reap so that slots come back: the
// caller becomes the reaper if nobody is (and stays it until wait), else it
// submits and blocks. It reports false once the engine is closing.
func (e *uringEngine) slot(pending *uint32, reaper *bool) (uint32, bool) {
	for {
		select {
		case s := <-e.free:
			return s, true
		default:
		}
		if !*reaper {
			e.cqMu.Lock()
			if !e.reaping {
				e.reaping, *reaper = true, true
			}
			e.cqMu.Unlock()
		}
		if *reaper {
			*pending = e.reapOnce(*pending)
			continue
		}
		e.submit(*pending)
		*pending = 0
		select {
		case s := <-e.free:
			return s, true
		case <-e.closing:
			return 0, false
		}
	}
}

// wait submits the last pending entries and returns when b is complete,
// reaping for everyone while it is the reaper.
func (e *uringEngine) wait(b *uringBatch, pending uint32, reaper bool) {
	if !reaper {
		e.cqMu.Lock()
		switch {
		case b.remaining.Load() == 0:
			e.cqMu.Unlock()
			e.submit(pending)
			<-b.done
			return
		case e.reaping:
			e.waiters = append(e.waiters, b)
			e.cqMu.Unlock()
			e.submit(pending)
			if <-b.done == batchComplete {
				return
			}
			pending = 0 // promoted
		default:
			e.reaping = true
			e.cqMu.Unlock()
		}
	}
	for b.remaining.Load() > 0 {
		pending = e.reapOnce(pending)
	}
	// Entries are submitted in publication order, whoever enters, so
	// our batch can be complete while entries of others that our count
	// stands for are still unsubmitted: submit them before leaving.
	e.submit(pending)
	<-b.done // our own completion message, sent by complete
	for !e.handOff() {
		e.reapOnce(0)
	}
}

// reapOnce dispatches the completions available, or else submits pending
// entries and waits for at least one completion in the same system call.
// It returns how many entries are still unsubmitted.
func (e *uringEngine) reapOnce(pending uint32) uint32 {
	if e.r.reap(e.complete) > 0 {
		return pending
	}
	n, err := e.r.enter(pending, 1, enterGetEvents)
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.ENOMEM) {
			runtime.Gosched()
			return pending
		}
		panic(fmt.Sprintf("nvme: io_uring submit and wait: %v", err))
	}
	return pending - min(pending, uint32(n))
}

// handOff ends the caller's turn as reaper: the role passes to a waiting
// goroutine, or lapses when nothing is in flight. With transfers in flight
// and nobody waiting (their goroutines are between publishing and waiting,
// or blocked for a slot) it reports false and the caller reaps on.
func (e *uringEngine) handOff() bool {
	e.cqMu.Lock()
	defer e.cqMu.Unlock()
	if k := len(e.waiters); k > 0 {
		next := e.waiters[k-1]
		e.waiters = e.waiters[:k-1]
		next.done <- batchPromote
		return true
	}
	if len(e.free) == cap(e.free) {
		e.reaping = false
		return true
	}
	return false
}

// complete dispatches one completion; only the reaper calls it.
func (e *uringEngine) complete(ud uint64, res int32) {
	sl := &e.slots[ud]
	if !sl.armed.Swap(false) {
		panic("nvme: io_uring completion for an idle slot")
	}
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

// finish counts one transfer of b as complete; the last one unregisters b
// from the waiters and wakes its goroutine.
func (e *uringEngine) finish(b *uringBatch) {
	if b.remaining.Add(-1) != 0 {
		return
	}
	e.cqMu.Lock()
	for i, w := range e.waiters {
		if w == b {
			last := len(e.waiters) - 1
			e.waiters[i] = e.waiters[last]
			e.waiters = e.waiters[:last]
			break
		}
	}
	e.cqMu.Unlock()
	b.done <- batchComplete
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

// submit hands n published entries to the kernel. Published entries cannot
// be taken back, so a failure other than a transient one means the ring
// itself is broken (its descriptor closed under us): that is a bug, and it
// panics rather than leave callers waiting forever.
func (e *uringEngine) submit(n uint32) {
	for n > 0 {
		err := e.r.submit(n)
		if err == nil {
			return
		}
		if errors.Is(err, syscall.ENOMEM) {
			runtime.Gosched()
			continue
		}
		panic(fmt.Sprintf("nvme: io_uring submit with published entries: %v", err))
	}
}

func opName(write bool) string {
	if write {
		return "io_uring write"
	}
	return "io_uring read"
}

// close waits for transfers in flight (their goroutines reap them) and
// frees the ring.
func (e *uringEngine) close() {
	e.once.Do(func() {
		close(e.closing)
		for range len(e.slots) {
			<-e.free
		}
		if len(e.fixed) > 0 {
			_ = e.r.register(unregisterBuffers, nil, 0)
		}
		e.r.close()
	})
}

// syncEngine is the fallback where io_uring is missing: pread and pwrite,
// each holding one of a bounded number of tokens, because every blocking
// O_DIRECT call ties up an OS thread.
type syncEngine struct {
	sem    chan struct{}
	closed atomic.Bool
}

func newSyncEngine(depth int) *syncEngine {
	return &syncEngine{sem: make(chan struct{}, depth)}
}

func (e *syncEngine) kind() Engine { return EngineSync }

func (e *syncEngine) run(fd int, ios []IO) {
	if len(ios) == 1 {
		e.one(fd, &ios[0])
		return
	}
	var wg sync.WaitGroup
	for i := range ios {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.one(fd, &ios[i])
		}()
	}
	wg.Wait()
}

func (e *syncEngine) one(fd int, io *IO) {
	if e.closed.Load() {
		io.Err = ErrClosed
		return
	}
	e.sem <- struct{}{}
	defer func() { <-e.sem }()
	var err error
	if io.Write {
		io.N, err = unix.Pwrite(fd, io.Buf, io.Off)
		err = syscallErr("pwrite", err)
	} else {
		io.N, err = unix.Pread(fd, io.Buf, io.Off)
		err = syscallErr("pread", err)
	}
	if err != nil {
		io.N, io.Err = 0, err
	}
}

func syscallErr(name string, err error) error {
	if err == nil {
		return nil
	}
	return os.NewSyscallError(name, err)
}

// close makes later calls fail; the Device waits for calls in flight
// before it closes the engine.
func (e *syncEngine) close() { e.closed.Store(true) }
