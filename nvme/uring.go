package nvme

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is a minimal io_uring binding: enough for O_DIRECT reads and
// writes with registered buffers. The layouts below mirror
// include/uapi/linux/io_uring.h and are part of the kernel ABI; they must not
// change.
//
// Memory ordering: the SQ tail and CQ head are written by us and read by the
// kernel, the SQ head and CQ tail the other way round. sync/atomic operations
// are sequentially consistent in Go, which is at least the acquire/release
// pairing the kernel documents (smp_load_acquire/smp_store_release): an SQE
// is fully written before the tail store that publishes it, and a CQE is read
// after the tail load that reveals it and before the head store that hands
// its slot back.

// io_uring opcodes used here (enum io_uring_op).
const (
	opNop        = 0
	opReadFixed  = 4
	opWriteFixed = 5
	opRead       = 22
	opWrite      = 23
)

const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	featSingleMmap = 1 << 0
	setupClamp     = 1 << 4
	enterGetEvents = 1 << 0

	registerBuffers   = 0
	unregisterBuffers = 1
	registerEventfd   = 4

	cqEventfdDisabled = 1 << 0
	registerProbe     = 8

	probeOpSupported = 1 << 0
	probeOps         = 256

	// maxFixedBuffer is the kernel's limit on one registered buffer.
	maxFixedBuffer = 1 << 30
)

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

// sqe is struct io_uring_sqe (64 bytes).
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	rwFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	_           uint64
}

// cqe is struct io_uring_cqe without the CQE32 extension (16 bytes).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

type probeHeader struct {
	lastOp, opsLen uint8
	resv           uint16
	resv2          [3]uint32
}

type probeOp struct {
	op    uint8
	resv  uint8
	flags uint16
	resv2 uint32
}

var (
	_ [64 - unsafe.Sizeof(sqe{})]struct{}
	_ [unsafe.Sizeof(sqe{}) - 64]struct{}
	_ [16 - unsafe.Sizeof(cqe{})]struct{}
	_ [120 - unsafe.Sizeof(uringParams{})]struct{}
	_ [unsafe.Sizeof(uringParams{}) - 120]struct{}
)

// ring is one io_uring instance. It is not safe for concurrent use: the
// engine serialises the submission side with a mutex and runs one reaper
// for the completion side, which the kernel allows (one producer per ring
// side).
type ring struct {
	fd      int
	sqMem   []byte // SQ ring (and the CQ ring when featSingleMmap)
	cqMem   []byte // nil when shared with sqMem
	sqeMem  []byte
	sqHead  *uint32
	sqTail  *uint32
	sqMask  uint32
	sqArray unsafe.Pointer
	sqes    unsafe.Pointer
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    unsafe.Pointer
	cqFlags *uint32 // nil where the kernel has no CQ ring flags (before 5.8)
	entries uint32
	// sqLocal is the tail as we know it; only the submitter writes the
	// tail so no load is needed.
	sqLocal uint32
}

// newRing sets up an io_uring with at least entries submission slots.
func newRing(entries uint32) (*ring, error) {
	var p uringParams
	p.flags = setupClamp
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		err := os.NewSyscallError("io_uring_setup", errno)
		if errno == unix.ENOSYS || errno == unix.EPERM || errno == unix.EACCES {
			return nil, fmt.Errorf("%w: io_uring: %w", ErrNotSupported, err)
		}
		return nil, err
	}
	r := &ring{fd: int(fd), entries: p.sqEntries}
	if err := r.mapRings(&p); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *ring) mapRings(p *uringParams) error {
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	single := p.features&featSingleMmap != 0
	if single && cqSize > sqSize {
		sqSize = cqSize
	}
	var err error
	prot, flags := unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE
	if r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, prot, flags); err != nil {
		return os.NewSyscallError("mmap sq ring", err)
	}
	cqMem := r.sqMem
	if !single {
		if r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, prot, flags); err != nil {
			return os.NewSyscallError("mmap cq ring", err)
		}
		cqMem = r.cqMem
	}
	sqeSize := int(p.sqEntries) * int(unsafe.Sizeof(sqe{}))
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, prot, flags); err != nil {
		return os.NewSyscallError("mmap sqes", err)
	}
	sq := unsafe.Pointer(&r.sqMem[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqArray = unsafe.Add(sq, p.sqOff.array)
	r.sqes = unsafe.Pointer(&r.sqeMem[0])
	cq := unsafe.Pointer(&cqMem[0])
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqes = unsafe.Add(cq, p.cqOff.cqes)
	if p.cqOff.flags != 0 {
		r.cqFlags = (*uint32)(unsafe.Add(cq, p.cqOff.flags))
	}
	r.sqLocal = atomic.LoadUint32(r.sqTail)
	return nil
}

// close unmaps the rings and closes the ring's descriptor. In-flight
// requests must have completed.
func (r *ring) close() {
	for _, m := range [][]byte{r.sqeMem, r.cqMem, r.sqMem} {
		if m != nil {
			_ = unix.Munmap(m)
		}
	}
	r.sqeMem, r.cqMem, r.sqMem = nil, nil, nil
	if r.fd >= 0 {
		_ = unix.Close(r.fd)
		r.fd = -1
	}
}

// sqSpace is the number of free submission slots.
func (r *ring) sqSpace() uint32 {
	return r.entries - (r.sqLocal - atomic.LoadUint32(r.sqHead))
}

// push fills the next submission slot and publishes it. The caller makes
// sure there is space (the engine bounds the requests in flight).
func (r *ring) push(op uint8, fd int32, addr unsafe.Pointer, n uint32, off uint64, bufIndex uint16, userData uint64) {
	idx := r.sqLocal & r.sqMask
	e := (*sqe)(unsafe.Add(r.sqes, uintptr(idx)*unsafe.Sizeof(sqe{})))
	*e = sqe{opcode: op, fd: fd, off: off, addr: uint64(uintptr(addr)), len: n, userData: userData, bufIndex: bufIndex}
	*(*uint32)(unsafe.Add(r.sqArray, uintptr(idx)*4)) = idx
	r.sqLocal++
	atomic.StoreUint32(r.sqTail, r.sqLocal)
}

// enter calls io_uring_enter, retrying on EINTR.
func (r *ring) enter(toSubmit, minComplete, flags uint32) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return int(n), os.NewSyscallError("io_uring_enter", errno)
		}
		return int(n), nil
	}
}

// submit hands n published entries to the kernel, retrying until all of
// them are taken.
func (r *ring) submit(n uint32) error {
	for n > 0 {
		got, err := r.enter(n, 0, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EBUSY) {
				continue
			}
			return err
		}
		if got == 0 {
			// Another submitter's enter took our entries (they are
			// taken in order); nothing is left for us.
			return nil
		}
		n -= uint32(got)
	}
	return nil
}

// reap calls fn for every completion available now and returns how many
// there were.
func (r *ring) reap(fn func(userData uint64, res int32)) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		c := (*cqe)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*unsafe.Sizeof(cqe{})))
		ud, res := c.userData, c.res
		atomic.StoreUint32(r.cqHead, head+1)
		fn(ud, res)
		n++
	}
	return n
}

// wait blocks until at least one completion is available.
func (r *ring) wait() error {
	_, err := r.enter(0, 1, enterGetEvents)
	return err
}

// register calls io_uring_register.
func (r *ring) register(op uint32, arg unsafe.Pointer, n uint32) error {
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), uintptr(op), uintptr(arg), uintptr(n), 0, 0)
	if errno != 0 {
		return os.NewSyscallError("io_uring_register", errno)
	}
	return nil
}

// registerBuffers registers memory regions once, so READ_FIXED and
// WRITE_FIXED skip the per-I/O page pinning. Regions larger than the kernel's
// 1 GiB limit are split; the returned slice maps each registered index to
// its memory.
func (r *ring) registerBuffers(regions [][]byte) ([][]byte, error) {
	var bufs [][]byte
	for _, reg := range regions {
		for len(reg) > 0 {
			n := min(len(reg), maxFixedBuffer)
			bufs = append(bufs, reg[:n])
			reg = reg[n:]
		}
	}
	if len(bufs) == 0 || len(bufs) > 1<<15 {
		return nil, nil
	}
	iov := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		iov[i].Base = &b[0]
		iov[i].SetLen(len(b))
	}
	if err := r.register(registerBuffers, unsafe.Pointer(&iov[0]), uint32(len(iov))); err != nil {
		return nil, err
	}
	return bufs, nil
}

// notify turns the signalling of the registered eventfd on or off
// (IORING_CQ_EVENTFD_DISABLED); it reports false where the kernel cannot.
// Only one goroutine may call it at a time.
func (r *ring) notify(on bool) bool {
	if r.cqFlags == nil {
		return false
	}
	f := atomic.LoadUint32(r.cqFlags)
	if on {
		f &^= cqEventfdDisabled
	} else {
		f |= cqEventfdDisabled
	}
	atomic.StoreUint32(r.cqFlags, f)
	return true
}

// registerEventfd makes the ring signal the eventfd fd whenever it posts a
// completion.
func (r *ring) registerEventfd(fd int32) error {
	return r.register(registerEventfd, unsafe.Pointer(&fd), 1)
}

// opsSupported reports whether the kernel implements every opcode in ops.
func (r *ring) opsSupported(ops ...uint8) (bool, error) {
	const size = unsafe.Sizeof(probeHeader{}) + probeOps*unsafe.Sizeof(probeOp{})
	buf := make([]byte, size)
	if err := r.register(registerProbe, unsafe.Pointer(&buf[0]), probeOps); err != nil {
		return false, err
	}
	h := (*probeHeader)(unsafe.Pointer(&buf[0]))
	for _, op := range ops {
		if op > h.lastOp || int(op) >= int(h.opsLen) {
			return false, nil
		}
		po := (*probeOp)(unsafe.Add(unsafe.Pointer(&buf[0]), unsafe.Sizeof(probeHeader{})+uintptr(op)*unsafe.Sizeof(probeOp{})))
		if po.flags&probeOpSupported == 0 {
			return false, nil
		}
	}
	return true, nil
}

var uringProbe struct {
	once sync.Once
	err  error
}

// ProbeUring reports whether this kernel offers an io_uring with the read and
// write operations this package uses. It runs once; the answer is cached. A
// missing or disabled io_uring gives an error matching ErrNotSupported.
func ProbeUring() error {
	uringProbe.once.Do(func() {
		r, err := newRing(4)
		if err != nil {
			uringProbe.err = err
			return
		}
		defer r.close()
		ok, err := r.opsSupported(opNop, opRead, opWrite, opReadFixed, opWriteFixed)
		switch {
		case err != nil:
			uringProbe.err = fmt.Errorf("%w: io_uring probe: %w", ErrNotSupported, err)
		case !ok:
			uringProbe.err = fmt.Errorf("%w: io_uring lacks read/write opcodes", ErrNotSupported)
		}
	})
	return uringProbe.err
}
