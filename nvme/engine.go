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
// synchronous fallback.
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
		return "pread/pwrite"
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

// uringEngine shares one ring among any number of goroutines. Submitters
// publish entries under sqMu and call io_uring_enter outside it; a single
// reaper goroutine waits for completions and wakes each batch when its last
// transfer is done. In flight is bounded by the slot count: a submitter
// takes a free slot before it may publish an entry, so the submission queue
// can never overflow and the completion queue (twice as large) neither.
type uringEngine struct {
	r       *ring
	sqMu    sync.Mutex
	slots   []uringSlot
	free    chan uint32
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
	fixed   [][]byte // registered buffers by index
}

type uringSlot struct {
	io  *IO
	b   *uringBatch
	pin runtime.Pinner
	// armed is stored by the submitter after it filled the slot and
	// loaded by the reaper before reading it. The kernel orders the two
	// already (the SQ tail store precedes the completion), but the race
	// detector cannot see through the ring; this edge it can see.
	armed atomic.Bool
}

type uringBatch struct {
	remaining atomic.Int32
	done      chan struct{}
}

var batchPool = sync.Pool{New: func() any { return &uringBatch{done: make(chan struct{}, 1)} }}

// closeTag is the user_data of the NOP that stops the reaper.
const closeTag = ^uint64(0)

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
		done:    make(chan struct{}),
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
	go e.reaper()
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
	b := batchPool.Get().(*uringBatch)
	b.remaining.Store(int32(len(ios)))
	for i := 0; i < len(ios); {
		var first uint32
		select {
		case first = <-e.free:
		case <-e.closing:
			for ; i < len(ios); i++ {
				ios[i].Err = ErrClosed
				e.finish(b)
			}
			continue
		}
		n := uint32(0)
		e.sqMu.Lock()
		e.push(fd, first, &ios[i], b)
		i, n = i+1, 1
	more:
		for i < len(ios) {
			select {
			case s := <-e.free:
				e.push(fd, s, &ios[i], b)
				i, n = i+1, n+1
			default:
				break more
			}
		}
		e.sqMu.Unlock()
		e.submit(n)
	}
	<-b.done
	batchPool.Put(b)
}

// finish counts one transfer of b as complete.
func (e *uringEngine) finish(b *uringBatch) {
	if b.remaining.Add(-1) == 0 {
		b.done <- struct{}{}
	}
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
	for {
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

func (e *uringEngine) reaper() {
	defer close(e.done)
	stop := false
	complete := func(ud uint64, res int32) {
		if ud == closeTag {
			stop = true
			return
		}
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
	for !stop {
		if e.r.reap(complete) > 0 {
			continue
		}
		if err := e.r.wait(); err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EBUSY) {
			panic(fmt.Sprintf("nvme: io_uring wait: %v", err))
		}
	}
}

func opName(write bool) string {
	if write {
		return "io_uring write"
	}
	return "io_uring read"
}

// close waits for transfers in flight, stops the reaper and frees the ring.
func (e *uringEngine) close() {
	e.once.Do(func() {
		close(e.closing)
		for range len(e.slots) {
			<-e.free
		}
		e.sqMu.Lock()
		e.r.push(opNop, -1, nil, 0, 0, 0, closeTag)
		e.sqMu.Unlock()
		e.submit(1)
		<-e.done
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
