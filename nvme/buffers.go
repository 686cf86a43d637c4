package nvme

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BufferSource supplies the aligned memory that direct I/O needs. The node
// passes its DRAM arena, so a GET moves device -> arena -> socket without a
// copy; tests and tools without an arena use MmapBuffers.
//
// Lifetime: a buffer from AllocAligned belongs to the caller until it hands
// the same slice (same start, same length) to Free; after Free it must not
// be touched. Both methods are safe for concurrent use.
type BufferSource interface {
	// AllocAligned returns n bytes whose address is a multiple of align
	// (a power of two). A full source returns an error matching
	// ErrNoSpace.
	AllocAligned(n, align int) ([]byte, error)
	Free(b []byte)
}

// RegionSource is implemented by buffer sources whose buffers all lie in a
// few long-lived memory regions. A Device registers those regions with
// io_uring once (IORING_REGISTER_BUFFERS) and then uses READ_FIXED and
// WRITE_FIXED for buffers inside them, saving the kernel the page pinning
// of every transfer. The regions must stay mapped until the Device closes.
type RegionSource interface {
	BufferSource
	Regions() [][]byte
}

// MmapBuffers is a BufferSource over one anonymous mmap'd region outside the
// Go heap, carved in page-aligned blocks by an Allocator. Buffers are
// aligned to the page size (so to any smaller power of two as well).
type MmapBuffers struct {
	mu    sync.Mutex
	mem   []byte
	alloc *Allocator
	// spare holds the offsets of freed one-block buffers, at most
	// spareMax, for the next AllocAligned of at most a block: a 4 KiB
	// get's read buffer, taken and given back for every get, then skips
	// the Allocator's free-extent maps (mapassign, mapaccess and delete
	// were 4.6 % of a node's samples serving 4 KiB GETs from NVMe to 32
	// conns). spareBits marks their blocks, so freeing one twice still
	// panics.
	spare     []int64
	spareBits []uint64
}

// spareMax bounds the one-block buffers MmapBuffers keeps for reuse
// (1 MiB of 4 KiB pages); an allocation that finds no room gives them
// back to the Allocator first.
const spareMax = 256

var _ RegionSource = (*MmapBuffers)(nil)

// NewMmapBuffers maps size bytes (rounded up to whole pages).
func NewMmapBuffers(size int64) (*MmapBuffers, error) {
	page := int64(os.Getpagesize())
	size = (size + page - 1) &^ (page - 1)
	if size <= 0 {
		return nil, fmt.Errorf("nvme: buffer region of %d bytes: %w", size, ErrNoSpace)
	}
	mem, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, os.NewSyscallError("mmap buffers", err)
	}
	// Advisory only: huge pages make registration and TLB cheaper.
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	a, err := NewAllocator(size, page)
	if err != nil {
		_ = unix.Munmap(mem)
		return nil, err
	}
	return &MmapBuffers{mem: mem, alloc: a, spareBits: make([]uint64, (size/page+63)/64)}, nil
}

// AllocAligned returns n bytes aligned to align, which must be a power of
// two no larger than the page size.
func (m *MmapBuffers) AllocAligned(n, align int) ([]byte, error) {
	if align <= 0 || align&(align-1) != 0 || int64(align) > m.alloc.Block() {
		return nil, fmt.Errorf("nvme: buffer alignment %d unsupported (max %d): %w", align, m.alloc.Block(), ErrAlign)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mem == nil {
		return nil, ErrClosed
	}
	if k := len(m.spare); k > 0 && n > 0 && int64(n) <= m.alloc.Block() {
		off := m.spare[k-1]
		m.spare = m.spare[:k-1]
		m.markSpare(off, false)
		return m.mem[off : off+int64(n) : off+int64(n)], nil
	}
	e, err := m.alloc.Alloc(int64(n))
	if err != nil && n > 0 && len(m.spare) > 0 {
		m.dropSpare()
		e, err = m.alloc.Alloc(int64(n))
	}
	if err != nil {
		return nil, fmt.Errorf("nvme: buffer of %d bytes: %w", n, err)
	}
	return m.mem[e.Off : e.Off+int64(n) : e.Off+int64(n)], nil
}

// markSpare sets or clears the spare mark of the block at byte offset off.
func (m *MmapBuffers) markSpare(off int64, on bool) {
	blk := off / m.alloc.Block()
	if on {
		m.spareBits[blk/64] |= 1 << (blk % 64)
	} else {
		m.spareBits[blk/64] &^= 1 << (blk % 64)
	}
}

// isSpare reports whether the block at byte offset off is held in spare.
func (m *MmapBuffers) isSpare(off int64) bool {
	blk := off / m.alloc.Block()
	return m.spareBits[blk/64]&(1<<(blk%64)) != 0
}

// dropSpare gives every spare block back to the Allocator.
func (m *MmapBuffers) dropSpare() {
	for _, off := range m.spare {
		m.markSpare(off, false)
		if err := m.alloc.Free(Extent{Off: off, Len: m.alloc.Block()}); err != nil {
			panic(err.Error())
		}
	}
	m.spare = m.spare[:0]
}

// Free returns a buffer. It panics on a slice this source did not hand out
// (or one already freed): that is memory corruption waiting to happen.
func (m *MmapBuffers) Free(b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	off, ok := m.offset(b)
	if !ok {
		panic(fmt.Sprintf("nvme: MmapBuffers.Free of a foreign buffer (%d bytes)", len(b)))
	}
	e := Extent{Off: off, Len: m.alloc.Round(int64(len(b)))}
	if off%m.alloc.Block() == 0 && m.isSpare(off) {
		panic(fmt.Sprintf("nvme: MmapBuffers.Free of a buffer already freed (%d bytes at %d)", len(b), off))
	}
	if e.Len == m.alloc.Block() && len(m.spare) < spareMax && m.alloc.Holds(e) {
		m.spare = append(m.spare, off)
		m.markSpare(off, true)
		return
	}
	if err := m.alloc.Free(e); err != nil {
		panic(err.Error())
	}
}

func (m *MmapBuffers) offset(b []byte) (int64, bool) {
	if len(b) == 0 || m.mem == nil {
		return 0, false
	}
	base := uintptr(unsafe.Pointer(&m.mem[0]))
	p := uintptr(unsafe.Pointer(&b[0]))
	if p < base || p+uintptr(len(b)) > base+uintptr(len(m.mem)) {
		return 0, false
	}
	return int64(p - base), true
}

// Regions returns the one mapped region.
func (m *MmapBuffers) Regions() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return [][]byte{m.mem}
}

// InUse is the number of bytes handed out (rounded to pages).
func (m *MmapBuffers) InUse() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alloc.Used() - int64(len(m.spare))*m.alloc.Block()
}

// Close unmaps the region. Buffers still held must not be used afterwards.
func (m *MmapBuffers) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mem == nil {
		return nil
	}
	m.dropSpare() // the kept blocks are no one's: InUse stays what callers hold
	err := unix.Munmap(m.mem)
	m.mem = nil
	return os.NewSyscallError("munmap buffers", err)
}
