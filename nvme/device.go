package nvme

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Op names a transfer direction for fault hooks.
type Op uint8

// Transfer directions.
const (
	OpRead Op = iota
	OpWrite
)

// FaultFunc intercepts transfers, for tests of error paths. It is called
// before each attempt with the direction, offset and length; it returns how
// many bytes the attempt may move (n, or fewer to make a short transfer,
// 0 to move nothing) or an error to fail the attempt without touching the
// device. Short transfers are retried for the rest, as real ones are.
type FaultFunc func(op Op, off int64, n int) (int, error)

// Options configure Open.
type Options struct {
	// Size is the usable size in bytes. For a file it is created or
	// extended (preallocated) to Size; 0 means the file's current size.
	// For a block device 0 means the whole device and a larger value is
	// an error. The size is rounded down to the alignment.
	Size int64
	// Engine picks io_uring or the pread/pwrite fallback; EngineAuto
	// probes.
	Engine Engine
	// QueueDepth bounds the transfers in flight (default 64).
	QueueDepth int
	// Buffers supplies aligned memory; nil means a private MmapBuffers
	// of BufferPool bytes, closed with the Device. When it implements
	// RegionSource its regions are registered with io_uring.
	Buffers BufferSource
	// BufferPool sizes the private buffer region (default 64 MiB).
	BufferPool int64
	// Fault, when set, intercepts every transfer (tests only).
	Fault FaultFunc
}

// Device is a block device or file opened for direct I/O. Transfers must be
// aligned: offsets and lengths to Align, buffer addresses to MemAlign (use
// Buffers, which does both). All methods are safe for concurrent use; Close
// waits for transfers in flight.
type Device struct {
	path     string
	fd       int
	size     int64
	align    int
	memAlign int
	block    bool
	eng      engine
	bufs     BufferSource
	ownBufs  *MmapBuffers
	fault    FaultFunc
	backing  int // a loop device's backing file, flocked (lockBacking); -1: none

	mu     sync.RWMutex // held shared by transfers, exclusively by Close
	closed bool
	// closing is set when Close begins; a batch Start leaves unsubmitted
	// after it is set submits itself (Close submits those before).
	closing atomic.Bool
}

// Open opens path with O_DIRECT. A file system that refuses O_DIRECT gives
// an error matching ErrNotSupported. A file Open creates (a missing path
// with Size given) is removed again when Open fails after creating it, say
// because the file system refuses to make it Size bytes long.
func Open(path string, opts Options) (*Device, error) {
	if opts.QueueDepth <= 0 {
		opts.QueueDepth = 64
	}
	if opts.BufferPool <= 0 {
		opts.BufferPool = 64 << 20
	}
	fd, isBlock, created, backing, err := openDirect(path, opts.Size > 0)
	if err != nil {
		return nil, err
	}
	d := &Device{path: path, fd: fd, block: isBlock, fault: opts.Fault, backing: backing}
	if err := d.setup(opts); err != nil {
		d.release()
		if created {
			_ = os.Remove(path) // ours, empty or never used: not left behind
		}
		return nil, fmt.Errorf("nvme: open %s: %w", path, err)
	}
	return d, nil
}

// openDirect opens path for direct I/O; when it is missing and create is
// set, it creates it (created), exclusively: a file that appears at path
// meanwhile is not taken for one of ours, and the open fails.
//
// The device is held exclusively, and an Open of one another process (or
// another Open in this one) holds is refused with ErrInUse: a block device
// is opened O_EXCL, which Linux makes exclusive against every other O_EXCL
// opener and against mounts, and every path, file or device, is locked
// with flock(LOCK_EX|LOCK_NB) on the open file description, as is a loop
// device's backing file (lockBacking, returned as backing). Before, a
// hostile trial started a second `pocket node --nvme /dev/loop0:256MiB`
// while another node used that device (and two nodes on one file); both
// allocated from the same empty device, and a control job then read 87 of
// its 100 values back with wrong bytes and no error.
func openDirect(path string, create bool) (fd int, isBlock, created bool, backing int, err error) {
	backing = -1
	flags := unix.O_RDWR | unix.O_DIRECT | unix.O_CLOEXEC
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err == nil {
		isBlock = st.Mode&unix.S_IFMT == unix.S_IFBLK
		if isBlock {
			flags |= unix.O_EXCL // without O_CREAT: exclusive use of the device
		}
	} else if create {
		flags |= unix.O_CREAT | unix.O_EXCL
		created = true
	}
	fd, err = unix.Open(path, flags, 0o600)
	if err != nil {
		if isBlock && errors.Is(err, unix.EBUSY) {
			return -1, false, false, -1, inUse(path, os.NewSyscallError("open O_EXCL", err))
		}
		return -1, false, false, -1, classifyOpenErr(path, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = unix.Close(fd) // a file we created and another took meanwhile is theirs: kept
		if errors.Is(err, unix.EWOULDBLOCK) {
			return -1, false, false, -1, inUse(path, os.NewSyscallError("flock", err))
		}
		return -1, false, false, -1, fmt.Errorf("nvme: %s: %w", path, os.NewSyscallError("flock", err))
	}
	if isBlock {
		if backing, err = lockBacking(path, st.Rdev); err != nil {
			_ = unix.Close(fd)
			return -1, false, false, -1, err
		}
	}
	return fd, isBlock, created, backing, nil
}

// inUse is the error for a path another opener holds.
func inUse(path string, cause error) error {
	return fmt.Errorf("%w: %s: another process (another pocket node?) holds it, or it is mounted; each node needs a device or file of its own (%w)", ErrInUse, path, cause)
}

// classifyOpenErr maps the kernel's refusal of O_DIRECT (EINVAL at open) to
// ErrNotSupported.
func classifyOpenErr(path string, err error) error {
	serr := os.NewSyscallError("open O_DIRECT", err)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("nvme: %s: direct I/O refused by the file system: %w: %w", path, ErrNotSupported, serr)
	}
	return fmt.Errorf("nvme: %s: %w", path, serr)
}

func (d *Device) setup(opts Options) error {
	var err error
	if d.align, d.memAlign, err = probeAlign(d.fd, d.block); err != nil {
		return err
	}
	if d.size, err = d.sizeUp(opts.Size); err != nil {
		return err
	}
	d.size -= d.size % int64(d.align)
	if d.size <= 0 {
		return fmt.Errorf("size %d below one block of %d: %w", d.size, d.align, ErrRange)
	}
	d.bufs = opts.Buffers
	if d.bufs == nil {
		if d.ownBufs, err = NewMmapBuffers(opts.BufferPool); err != nil {
			return err
		}
		d.bufs = d.ownBufs
	}
	return d.startEngine(opts)
}

func (d *Device) startEngine(opts Options) error {
	if opts.Engine == EngineSync {
		d.eng = newSyncEngine(opts.QueueDepth)
		return nil
	}
	var regions [][]byte
	if rs, ok := d.bufs.(RegionSource); ok {
		regions = rs.Regions()
	}
	e, err := newUringEngine(opts.QueueDepth, regions)
	switch {
	case err == nil:
		d.eng = e
	case opts.Engine == EngineAuto && errors.Is(err, ErrNotSupported):
		d.eng = newSyncEngine(opts.QueueDepth)
	default:
		return err
	}
	return nil
}

// probeAlign finds the direct-I/O alignment: statx's STATX_DIOALIGN where
// the kernel and file system report it, else the logical block size for a
// block device, else the file system's block size (always sufficient).
func probeAlign(fd int, isBlock bool) (offAlign, memAlign int, err error) {
	var stx unix.Statx_t
	err = unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN|unix.STATX_BASIC_STATS, &stx)
	if err == nil && stx.Mask&unix.STATX_DIOALIGN != 0 {
		if stx.Dio_offset_align == 0 {
			return 0, 0, fmt.Errorf("statx reports no direct I/O: %w", ErrNotSupported)
		}
		return int(stx.Dio_offset_align), int(stx.Dio_mem_align), nil
	}
	if isBlock {
		ss, ierr := unix.IoctlGetInt(fd, unix.BLKSSZGET)
		if ierr != nil {
			return 0, 0, os.NewSyscallError("ioctl BLKSSZGET", ierr)
		}
		return ss, ss, nil
	}
	if err != nil {
		return 0, 0, os.NewSyscallError("statx", err)
	}
	return int(stx.Blksize), int(stx.Blksize), nil
}

func (d *Device) sizeUp(want int64) (int64, error) {
	if d.block {
		n, err := unix.IoctlGetUint64(d.fd, unix.BLKGETSIZE64)
		if err != nil {
			return 0, os.NewSyscallError("ioctl BLKGETSIZE64", err)
		}
		if want > int64(n) {
			return 0, fmt.Errorf("size %d past the device's %d: %w", want, n, ErrRange)
		}
		if want == 0 {
			want = int64(n)
		}
		return want, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return 0, os.NewSyscallError("fstat", err)
	}
	if want == 0 {
		want = st.Size
	}
	// A file already long enough but sparse (truncate -s) is preallocated
	// too. Before, only a file shorter than want was: a hostile trial's
	// 64 MiB sparse file on a file system with 37 MiB free was taken at
	// its length, and puts the tier had accepted failed at the device
	// with ENOSPC ("tier full" at 60 % used).
	if want > 0 && (st.Size < want || st.Blocks*512 < want) {
		if err := growFile(d.fd, &st, want); err != nil {
			return 0, err
		}
	}
	return want, nil
}

// growFile makes the file of fd, whose state is st, want bytes long.
// It preallocates, so that writes cannot hit ENOSPC later and need no
// block allocation, falling back to a sparse file where the file system
// cannot preallocate. A size the file system has no free space for is
// refused (ErrNoSpace) before anything is allocated, and a preallocation
// that runs out of space all the same (another writer took it meanwhile)
// gives back what it took: a hostile trial's `--nvme 500GiB` with 77 GB
// free filled the host's disk, as a failed fallocate keeps the blocks it
// got and the sparse fallback then set the size anyway.
func growFile(fd int, st *unix.Stat_t, want int64) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return os.NewSyscallError("fstatfs", err)
	}
	free := int64(min(fs.Bavail, math.MaxInt64/uint64(max(fs.Bsize, 1)))) * fs.Bsize
	if need := want - st.Blocks*512; need > free {
		return fmt.Errorf("size %d: the file system has %d bytes free, %d short: %w", want, free, need-free, ErrNoSpace)
	}
	err := unix.Fallocate(fd, 0, 0, want)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOSPC):
		_ = unix.Ftruncate(fd, st.Size) // frees the blocks it took past the old end
		return fmt.Errorf("size %d: %w: %w", want, os.NewSyscallError("fallocate", err), ErrNoSpace)
	}
	if err := unix.Ftruncate(fd, want); err != nil {
		return os.NewSyscallError("ftruncate", err)
	}
	return nil
}

func (d *Device) release() {
	if d.eng != nil {
		d.eng.close()
	}
	if d.fd >= 0 {
		_ = unix.Close(d.fd)
		d.fd = -1
	}
	if d.ownBufs != nil {
		_ = d.ownBufs.Close()
	}
	if d.backing >= 0 {
		_ = unix.Close(d.backing)
		d.backing = -1
	}
}

// Path is the opened path.
func (d *Device) Path() string { return d.path }

// Size is the usable size in bytes, a multiple of Align.
func (d *Device) Size() int64 { return d.size }

// CurrentSize is the device's or file's size now, which is Size or more
// unless it shrank under the Device: a loop device whose backing file was
// truncated (losetup -c), a file truncated by hand. Transfers past the new
// end fail (a block device refuses writes with ENOSPC; reads move
// nothing), and callers ask on such a failure to say why.
func (d *Device) CurrentSize() (int64, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return 0, ErrClosed
	}
	if d.block {
		n, err := unix.IoctlGetUint64(d.fd, unix.BLKGETSIZE64)
		if err != nil {
			return 0, os.NewSyscallError("ioctl BLKGETSIZE64", err)
		}
		return int64(n), nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return 0, os.NewSyscallError("fstat", err)
	}
	return st.Size, nil
}

// Align is the required alignment of offsets and lengths.
func (d *Device) Align() int { return d.align }

// MemAlign is the required alignment of buffer addresses.
func (d *Device) MemAlign() int { return d.memAlign }

// IsBlockDevice reports whether the path is a block device.
func (d *Device) IsBlockDevice() bool { return d.block }

// Engine reports the engine in use.
func (d *Device) Engine() Engine { return d.eng.kind() }

// Buffers is the device's buffer source.
func (d *Device) Buffers() BufferSource { return d.bufs }

// AllocBuffer returns a buffer for transfers of n bytes: n rounded up to
// the alignment, suitably aligned in memory. Free it with FreeBuffer.
func (d *Device) AllocBuffer(n int) ([]byte, error) {
	n = (n + d.align - 1) &^ (d.align - 1)
	return d.bufs.AllocAligned(n, max(d.memAlign, d.align))
}

// FreeBuffer returns a buffer from AllocBuffer.
func (d *Device) FreeBuffer(b []byte) { d.bufs.Free(b) }

// ReadAt reads len(p) bytes at off; it returns len(p) or an error.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	ios := [1]IO{{Buf: p, Off: off}}
	err := d.Do(ios[:])
	return ios[0].N, err
}

// WriteAt writes len(p) bytes at off; it returns len(p) or an error.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	ios := [1]IO{{Write: true, Buf: p, Off: off}}
	err := d.Do(ios[:])
	return ios[0].N, err
}

// Do performs a batch of transfers, submitted together, and returns when
// all have finished. Each IO gets its own N and Err; Do returns the first
// error. A transfer that moves only part of its bytes is continued; one
// that moves nothing fails with ErrShortTransfer.
func (d *Device) Do(ios []IO) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrClosed
	}
	if len(ios) == 0 {
		return nil // nothing to wait for (a zero-length value)
	}
	fresh := d.fault == nil && len(ios) > 0
	for i := range ios {
		ios[i].N, ios[i].Err = 0, d.check(&ios[i])
		fresh = fresh && ios[i].Err == nil && len(ios[i].Buf) > 0
	}
	if fresh {
		d.first(ios)
	}
	if unfinished(ios) {
		d.attempt(ios)
	}
	return firstErr(ios)
}

// Start begins a batch of transfers like Do but does not wait: done is
// called once with Do's result when all have finished. With submit false
// the batch is queued for the kernel but not handed over: a later Flush
// (or Start or Do) hands over every queued batch in one system call, so
// callers that start several batches in a row pay for one. It reports false,
// having started nothing and without calling done, when the batch cannot
// start at once: the engine is not io_uring, a fault hook is set, the
// device is closed or closing, a transfer is empty or invalid (Do names the
// error), or the ring has fewer free slots than the batch has transfers.
// The caller then uses Do.
//
// done runs on the goroutine that reaps the last completion (the reaper,
// or a Do caller waiting in the kernel) and must not block or close the
// device; a transfer the device completed only in part is continued on a
// new goroutine first. ios and their buffers belong to the transfer until
// done is called, and Close waits until done has returned.
func (d *Device) Start(ios []IO, submit bool, done func(error)) bool {
	ue, ok := d.eng.(*uringEngine)
	if !ok || d.fault != nil || len(ios) == 0 || !d.mu.TryRLock() {
		return false
	}
	if d.closed {
		d.mu.RUnlock()
		return false
	}
	for i := range ios {
		ios[i].N, ios[i].Err = 0, d.check(&ios[i])
		if ios[i].Err != nil || len(ios[i].Buf) == 0 {
			d.mu.RUnlock()
			return false
		}
	}
	if !ue.start(d.fd, ios, func() { d.started(ios, done) }) {
		d.mu.RUnlock()
		return false
	}
	if submit || d.closing.Load() {
		ue.flushAll()
	}
	return true
}

// Flush hands every batch Start queued unsubmitted to the kernel; it does
// nothing when none is queued or the engine is not io_uring. It may be
// called from any goroutine, at any time (a queued batch keeps the device
// open until it completes).
func (d *Device) Flush() {
	if ue, ok := d.eng.(*uringEngine); ok {
		ue.flushAll()
	}
}

// FlushSoon is Flush for small transfers that can wait a little: when the
// kernel already holds deferSubmitAt or more of the device's transfers,
// the queued batches are left to be handed over after the next completion
// is reaped, with whatever else was queued by then (one system call and
// one doorbell for all of them). The next completion comes at the latest
// when the busy device finishes one of those transfers.
func (d *Device) FlushSoon() {
	if ue, ok := d.eng.(*uringEngine); ok {
		ue.flush()
	}
}

// started finishes a batch begun by Start: it names errors, continues
// partial transfers off the reaping goroutine, and calls done.
func (d *Device) started(ios []IO, done func(error)) {
	d.named(ios)
	if !unfinished(ios) {
		done(firstErr(ios))
		d.mu.RUnlock()
		return
	}
	go func() {
		d.attempt(ios)
		done(firstErr(ios))
		d.mu.RUnlock()
	}()
}

func firstErr(ios []IO) error {
	for i := range ios {
		if ios[i].Err != nil {
			return ios[i].Err
		}
	}
	return nil
}

// first runs a batch of valid transfers in place, the common case, with
// no copy of the batch; errors are named and partial transfers left for
// attempt to continue.
func (d *Device) first(ios []IO) {
	d.eng.run(d.fd, ios)
	d.named(ios)
}

// named gives the engine's errors of a first attempt the transfer's
// direction, size and offset, and turns a transfer that moved nothing
// into ErrShortTransfer.
func (d *Device) named(ios []IO) {
	for i := range ios {
		io := &ios[i]
		switch {
		case io.Err != nil:
			io.N = 0
			io.Err = fmt.Errorf("nvme: %s %d bytes at %d: %w", dir(io.Write), len(io.Buf), io.Off, io.Err)
		case io.N == 0:
			io.Err = d.short(io)
		}
	}
}

// unfinished reports whether a transfer without error has bytes left.
func unfinished(ios []IO) bool {
	for i := range ios {
		if ios[i].Err == nil && ios[i].N < len(ios[i].Buf) {
			return true
		}
	}
	return false
}

// attempt runs every IO that has no error and is not complete, then
// retries the partial ones.
func (d *Device) attempt(ios []IO) {
	var stackBuf [16]IO
	batch := stackBuf[:0]
	var owner [16]int
	idx := owner[:0]
	for i := range ios {
		io := &ios[i]
		if io.Err != nil || io.N == len(io.Buf) {
			continue
		}
		next := IO{Write: io.Write, Buf: io.Buf[io.N:], Off: io.Off + int64(io.N)}
		if d.fault != nil && !d.applyFault(&next) {
			if next.Err != nil {
				io.Err = next.Err
			} else {
				io.Err = d.short(io)
			}
			continue
		}
		batch = append(batch, next)
		idx = append(idx, i)
	}
	if len(batch) == 0 {
		return
	}
	d.eng.run(d.fd, batch)
	retry := false
	for k, r := range batch {
		io := &ios[idx[k]]
		switch {
		case r.Err != nil:
			io.Err = fmt.Errorf("nvme: %s %d bytes at %d: %w", dir(io.Write), len(r.Buf), r.Off, r.Err)
		case r.N == 0:
			io.Err = d.short(io)
		default:
			io.N += r.N
			retry = retry || io.N < len(io.Buf)
		}
	}
	if retry && unfinished(ios) {
		d.attempt(ios)
	}
}

// applyFault runs the fault hook on one attempt; false means the attempt
// is not to be issued (an injected error, or zero bytes allowed).
func (d *Device) applyFault(io *IO) bool {
	op := OpRead
	if io.Write {
		op = OpWrite
	}
	n, err := d.fault(op, io.Off, len(io.Buf))
	if err != nil {
		io.Err = fmt.Errorf("nvme: %s %d bytes at %d: %w", dir(io.Write), len(io.Buf), io.Off, err)
		return false
	}
	if n <= 0 {
		return false
	}
	io.Buf = io.Buf[:min(n, len(io.Buf))]
	return true
}

func (d *Device) short(io *IO) error {
	return fmt.Errorf("nvme: %s at %d stopped after %d of %d bytes: %w", dir(io.Write), io.Off, io.N, len(io.Buf), ErrShortTransfer)
}

func dir(write bool) string {
	if write {
		return "write"
	}
	return "read"
}

// check validates alignment and range before anything is submitted, so a
// bug shows as ErrAlign or ErrRange instead of the kernel's EINVAL.
func (d *Device) check(io *IO) error {
	n := len(io.Buf)
	switch {
	case n == 0:
		return nil
	case io.Off < 0 || io.Off%int64(d.align) != 0 || n%d.align != 0:
		return fmt.Errorf("nvme: %s %d bytes at %d (alignment %d): %w", dir(io.Write), n, io.Off, d.align, ErrAlign)
	case uintptr(unsafe.Pointer(&io.Buf[0]))%uintptr(d.memAlign) != 0:
		return fmt.Errorf("nvme: %s buffer address not %d-aligned: %w", dir(io.Write), d.memAlign, ErrAlign)
	case io.Off > d.size-int64(n):
		return fmt.Errorf("nvme: %s %d bytes at %d past size %d: %w", dir(io.Write), n, io.Off, d.size, ErrRange)
	}
	return nil
}

// Close waits for transfers in flight and releases the device, its engine
// and its private buffers.
func (d *Device) Close() error {
	d.closing.Store(true)
	d.Flush() // batches begun unsubmitted must finish before Lock returns
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.release()
	return nil
}

var directProbe sync.Map // st_dev -> error (nil: supported)

// ProbeDirectIO reports whether the file system holding dir accepts
// O_DIRECT, by creating and opening a scratch file there once per file
// system; the answer is cached. A refusal matches ErrNotSupported.
func ProbeDirectIO(dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return os.NewSyscallError("stat", err)
	}
	if v, ok := directProbe.Load(st.Dev); ok {
		err, _ := v.(error)
		return err
	}
	f, err := os.CreateTemp(dir, ".nvme-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_ = f.Close()
	defer os.Remove(name)
	d, err := Open(filepath.Clean(name), Options{Size: 64 << 10, Engine: EngineSync, BufferPool: 1 << 20})
	if err == nil {
		err = d.probeTransfer()
		_ = d.Close()
	}
	if err != nil && !errors.Is(err, ErrNotSupported) {
		return err // not a verdict about the file system; do not cache
	}
	directProbe.Store(st.Dev, err)
	return err
}

// probeTransfer writes and reads one aligned block: some file systems open
// with O_DIRECT and refuse the transfer instead.
func (d *Device) probeTransfer() error {
	b, err := d.AllocBuffer(d.align)
	if err != nil {
		return err
	}
	defer d.FreeBuffer(b)
	if _, err := d.WriteAt(b, 0); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w: %w", ErrNotSupported, err)
		}
		return err
	}
	_, err = d.ReadAt(b, 0)
	return err
}
