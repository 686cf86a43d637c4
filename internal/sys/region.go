package sys

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// HugeMode says which pages Map may use.
type HugeMode uint8

// Huge page modes.
const (
	// HugeAuto maps hugetlb pages when the kernel has 2 MiB pages
	// reserved and the mapping fits in them, else anonymous memory
	// advised with MADV_HUGEPAGE (when transparent huge pages are on),
	// else plain pages.
	HugeAuto HugeMode = iota
	// HugeOff maps plain anonymous pages and gives no advice.
	HugeOff
	// HugeRequire maps hugetlb pages or fails with an error wrapping
	// ErrNotSupported.
	HugeRequire
	// HugeAdvise maps anonymous memory advised with MADV_HUGEPAGE (when
	// transparent huge pages are on) and never takes reserved hugetlb
	// pages: for side structures, such as the DRAM tier's key index, that
	// want few TLB misses but must leave the reserved pages to the values.
	HugeAdvise
)

// Backing names the pages a Region actually got.
type Backing uint8

// Region backings.
const (
	// BackingPages: plain base pages (4 KiB on most machines).
	BackingPages Backing = iota
	// BackingTHP: anonymous memory advised with MADV_HUGEPAGE; the
	// kernel backs 2 MiB-aligned parts with huge pages as it can.
	BackingTHP
	// BackingHugeTLB: reserved 2 MiB hugetlb pages (MAP_HUGETLB).
	BackingHugeTLB
)

func (b Backing) String() string {
	switch b {
	case BackingPages:
		return "pages"
	case BackingTHP:
		return "thp"
	case BackingHugeTLB:
		return "hugetlb"
	}
	return "unknown"
}

// ErrOutOfRange is returned by Region.Slice for a range outside the region.
var ErrOutOfRange = errors.New("sys: range outside region")

// Region owns one anonymous, private, read-write mapping outside the Go
// heap. Its start is aligned to HugePageSize and its length is a multiple of
// HugePageSize (or of the base page size with HugeOff), so fixed-size
// slabs carved from it never straddle a huge page.
//
// Lifetime: every slice obtained from Bytes or Slice points into the mapping
// and must not be used after Close; touching it then faults. The Region
// does not track outstanding slices: its owner (the slab arena) does.
type Region struct {
	mu      sync.Mutex
	base    unsafe.Pointer
	length  uintptr
	backing Backing
}

// Map creates a region of at least size bytes (rounded up as described on
// Region) with the pages mode allows. The memory is zeroed by the kernel and
// is only committed as it is touched.
func Map(size int64, mode HugeMode) (*Region, error) {
	if size <= 0 {
		return nil, fmt.Errorf("sys: map %d bytes: size must be positive", size)
	}
	align := int64(HugePageSize)
	if mode == HugeOff {
		align = int64(os.Getpagesize())
	}
	if size > math.MaxInt64-2*align {
		return nil, fmt.Errorf("sys: map %d bytes: %w", size, ErrOutOfRange)
	}
	length := uintptr((size + align - 1) / align * align)
	switch mode {
	case HugeRequire:
		return mapHugeTLB(length)
	case HugeAuto:
		if HugeTLBSupported() == nil {
			if r, err := mapHugeTLB(length); err == nil {
				return r, nil
			}
		}
		return mapAligned(length, THPSupported() == nil)
	case HugeOff:
		return mapAligned(length, false)
	case HugeAdvise:
		return mapAligned(length, THPSupported() == nil)
	}
	return nil, fmt.Errorf("sys: map: unknown huge page mode %d", mode)
}

const anonFlags = unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
const protRW = unix.PROT_READ | unix.PROT_WRITE

// mapHugeTLB maps length bytes (a multiple of HugePageSize) of reserved
// hugetlb pages. The kernel aligns such mappings to the huge page size.
func mapHugeTLB(length uintptr) (*Region, error) {
	if err := HugeTLBSupported(); err != nil {
		return nil, err
	}
	p, err := unix.MmapPtr(-1, 0, nil, length, protRW, anonFlags|unix.MAP_HUGETLB)
	if err != nil {
		return nil, fmt.Errorf("hugetlb region of %d bytes: %w: %w",
			length, ErrNotSupported, os.NewSyscallError("mmap", err))
	}
	return &Region{base: p, length: length, backing: BackingHugeTLB}, nil
}

// mapAligned maps length bytes starting on a HugePageSize boundary: it maps
// one huge page more than asked and unmaps the unaligned head and tail, so
// that transparent huge pages can back every 2 MiB of the region. With
// advise it asks for huge pages with MADV_HUGEPAGE.
func mapAligned(length uintptr, advise bool) (*Region, error) {
	const hp = HugePageSize
	p, err := unix.MmapPtr(-1, 0, nil, length+hp, protRW, anonFlags)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	start := uintptr(p)
	aligned := (start + hp - 1) &^ (hp - 1)
	head, tail := aligned-start, hp-(aligned-start)
	if head > 0 {
		if err := unix.MunmapPtr(p, head); err != nil {
			_ = unix.MunmapPtr(p, length+hp)
			return nil, os.NewSyscallError("munmap", err)
		}
	}
	base := unsafe.Add(p, head)
	if tail > 0 {
		if err := unix.MunmapPtr(unsafe.Add(base, length), tail); err != nil {
			_ = unix.MunmapPtr(base, length+tail)
			return nil, os.NewSyscallError("munmap", err)
		}
	}
	r := &Region{base: base, length: length, backing: BackingPages}
	if advise && unix.Madvise(r.bytes(), unix.MADV_HUGEPAGE) == nil {
		r.backing = BackingTHP
	}
	return r, nil
}

func (r *Region) bytes() []byte { return unsafe.Slice((*byte)(r.base), r.length) }

// Bytes returns the whole mapping, or nil after Close. The slice is valid
// until Close.
func (r *Region) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.base == nil {
		return nil
	}
	return r.bytes()
}

// Len is the mapping's length in bytes (0 after Close).
func (r *Region) Len() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return int64(r.length)
}

// Backing reports which pages the region got.
func (r *Region) Backing() Backing { return r.backing }

// Slice returns the n bytes at offset off, or an error wrapping
// ErrOutOfRange when any of them lies outside the region. The check cannot
// overflow: it compares n against the room left after off.
func (r *Region) Slice(off, n int64) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := int64(r.length)
	if r.base == nil || off < 0 || n < 0 || off > size || n > size-off {
		return nil, fmt.Errorf("sys: slice [%d, +%d) of a %d-byte region: %w", off, n, size, ErrOutOfRange)
	}
	return unsafe.Slice((*byte)(unsafe.Add(r.base, off)), n), nil
}

// Close unmaps the region. Later calls return nil and do nothing.
func (r *Region) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.base == nil {
		return nil
	}
	err := unix.MunmapPtr(r.base, r.length)
	r.base, r.length = nil, 0
	if err != nil {
		return os.NewSyscallError("munmap", err)
	}
	return nil
}
