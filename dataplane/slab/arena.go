package slab

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pocketstore/pocket/internal/sys"
	"github.com/pocketstore/pocket/wire"
)

// Arena errors, matched with errors.Is.
var (
	// ErrNoSpace: no free chunk of the class and no free page left.
	ErrNoSpace = errors.New("slab: arena full")
	// ErrTooLarge: the request is larger than a page (see MaxChunk).
	ErrTooLarge = errors.New("slab: allocation larger than a slab page")
	// ErrBadSize: a size of zero or less, or an alignment that is not a
	// power of two no larger than a page.
	ErrBadSize = errors.New("slab: bad size or alignment")
	// ErrForeign: Free got memory this arena did not hand out.
	ErrForeign = errors.New("slab: memory not allocated by this arena")
	// ErrDoubleFree: Free got a chunk that is already free.
	ErrDoubleFree = errors.New("slab: chunk already free")
	// ErrClosed: the arena was closed (the node is shutting down). It
	// carries wire.CodeClosed, so errors.Is matches it against
	// wire.ErrClosed and every other package's ErrClosed.
	ErrClosed error = &wire.Error{Code: wire.CodeClosed, Msg: "slab arena closed"}
)

// DefaultPageSize is one x86-64 huge page.
const DefaultPageSize = sys.HugePageSize

// Page size limits accepted by New.
const (
	MinPageSize = 64 << 10
	MaxPageSize = 16 << 20
)

// Options tune an arena. The zero value is the default.
type Options struct {
	// PageSize is the slab page size, a power of two between MinPageSize
	// and MaxPageSize; 0 means DefaultPageSize. It is also the largest
	// chunk.
	PageSize int
	// Huge chooses the pages behind the region (default sys.HugeAuto).
	Huge sys.HugeMode
}

const noPage = -1

// page is the metadata of one slab page. owner is read without a lock by
// Free; the other fields are guarded by the owning class's lock.
type page struct {
	owner      atomic.Int32 // class index, or noPage while in the pool
	used       int32        // chunks handed out
	hint       int32        // lowest bitmap word that may have a free chunk
	prev, next int32        // links of the class's list of non-full pages
	// fenced: off the class's list while its chunks are moved out
	// (Fence): Alloc hands out none of its chunks.
	fenced bool
}

// class is one size class. Padded so two classes' locks do not share a
// cache line.
type class struct {
	mu      sync.Mutex
	size    int
	perPage int32
	words   int32 // bitmap words used per page: ceil(perPage/64)
	partial int32 // first page with a free chunk, or noPage
	pages   int64 // pages owned
	chunks  int64 // chunks handed out
	_       [64]byte
}

// Arena is a slab allocator over one mmap'd region. See the package doc for
// layout, lifetimes and locking.
type Arena struct {
	region    *sys.Region
	base      unsafe.Pointer
	size      uintptr
	pageSize  int
	pageShift uint
	classes   []class
	small     []uint8 // class index by (n+15)/16, n <= 4096
	large     []uint8 // class index by (n+4095)/4096
	pages     []page
	bitmap    []uint64 // wordsPerPage words per page
	wpp       int

	poolMu sync.Mutex
	pool   []int32 // free pages, stack; lowest index on top

	used      atomic.Int64 // bytes of chunks handed out
	pagesUsed atomic.Int64
	closed    atomic.Bool
}

// New maps an arena of capacity bytes, rounded up to whole pages.
func New(capacity int64, opts Options) (*Arena, error) {
	ps := opts.PageSize
	if ps == 0 {
		ps = DefaultPageSize
	}
	if ps < MinPageSize || ps > MaxPageSize || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("slab: page size %d: want a power of two in [%d, %d]: %w",
			ps, MinPageSize, MaxPageSize, ErrBadSize)
	}
	if capacity <= 0 || capacity > int64(1<<31-1)*int64(ps) {
		return nil, fmt.Errorf("slab: capacity %d: %w", capacity, ErrBadSize)
	}
	npages := int((capacity + int64(ps) - 1) / int64(ps))
	region, err := sys.Map(int64(npages)*int64(ps), opts.Huge)
	if err != nil {
		return nil, fmt.Errorf("slab: arena of %d bytes: %w", capacity, err)
	}
	mem := region.Bytes()
	a := &Arena{
		region:    region,
		base:      unsafe.Pointer(unsafe.SliceData(mem)),
		size:      uintptr(npages) * uintptr(ps),
		pageSize:  ps,
		pageShift: uint(bits.TrailingZeros(uint(ps))),
		pages:     make([]page, npages),
		wpp:       ps / MinChunk / 64,
		pool:      make([]int32, npages),
	}
	a.bitmap = make([]uint64, npages*a.wpp)
	for i := range a.pages {
		a.pages[i].owner.Store(noPage)
		a.pool[npages-1-i] = int32(i)
	}
	a.initClasses()
	return a, nil
}

func (a *Arena) initClasses() {
	sizes := classSizes(a.pageSize)
	a.classes = make([]class, len(sizes))
	for i, s := range sizes {
		c := &a.classes[i]
		c.size = s
		c.perPage = int32(a.pageSize / s)
		c.words = (c.perPage + 63) / 64
		c.partial = noPage
	}
	a.small = make([]uint8, directIOAlign/16+1)
	a.large = make([]uint8, a.pageSize/directIOAlign+1)
	ci := 0
	for i := range a.small {
		for a.classes[ci].size < i*16 {
			ci++
		}
		a.small[i] = uint8(ci)
	}
	for i := range a.large {
		for a.classes[ci].size < i*directIOAlign {
			ci++
		}
		a.large[i] = uint8(ci)
	}
}

// classFor returns the index of the smallest class holding n bytes,
// 0 < n <= pageSize.
func (a *Arena) classFor(n int) int {
	if n <= directIOAlign {
		return int(a.small[(n+15)>>4])
	}
	return int(a.large[(n+directIOAlign-1)/directIOAlign])
}

// Alloc returns a chunk of the smallest class that holds n bytes: a slice of
// length n whose capacity is the class size. It fails with ErrNoSpace when
// the arena is full and ErrTooLarge when n exceeds MaxChunk.
func (a *Arena) Alloc(n int) ([]byte, error) {
	if n <= 0 {
		return nil, ErrBadSize
	}
	if n > a.pageSize {
		return nil, ErrTooLarge
	}
	return a.allocClass(a.classFor(n), n)
}

// AllocAligned is Alloc for a chunk whose address is a multiple of align,
// a power of two no larger than the page size. Any align up to 4096 costs
// nothing extra for n >= 4096; smaller n are rounded up to a class of a
// multiple of align.
func (a *Arena) AllocAligned(n, align int) ([]byte, error) {
	if n <= 0 || align <= 0 || align&(align-1) != 0 || align > a.pageSize {
		return nil, ErrBadSize
	}
	if n > a.pageSize {
		return nil, ErrTooLarge
	}
	ci := a.classFor(n)
	for a.classes[ci].size%align != 0 {
		ci++ // ends at the page-size class, a multiple of every align
	}
	return a.allocClass(ci, n)
}

func (a *Arena) allocClass(ci, n int) ([]byte, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	c := &a.classes[ci]
	c.mu.Lock()
	p := c.partial
	if p == noPage {
		if p = a.takePage(); p == noPage {
			c.mu.Unlock()
			return nil, ErrNoSpace
		}
		a.adopt(ci, p)
	}
	idx := a.claim(c, p)
	c.chunks++
	c.mu.Unlock()
	a.used.Add(int64(c.size))
	off := uintptr(p)<<a.pageShift + uintptr(idx)*uintptr(c.size)
	return unsafe.Slice((*byte)(unsafe.Add(a.base, off)), c.size)[:n], nil
}

// adopt makes free page p a page of class ci and puts it on the class's
// list of non-full pages. Its bitmap is all zero: pages return to the pool
// only when their last chunk is freed.
func (a *Arena) adopt(ci int, p int32) {
	c := &a.classes[ci]
	pg := &a.pages[p]
	pg.used, pg.hint, pg.fenced = 0, 0, false
	pg.owner.Store(int32(ci))
	c.pages++
	a.pushPartial(c, p)
}

// claim marks the lowest free chunk of page p in use and returns its index.
func (a *Arena) claim(c *class, p int32) int32 {
	pg := &a.pages[p]
	words := a.bitmap[int(p)*a.wpp : int(p)*a.wpp+int(c.words)]
	for w := pg.hint; w < c.words; w++ {
		x := words[w]
		if x == ^uint64(0) {
			continue
		}
		bit := int32(bits.TrailingZeros64(^x))
		words[w] = x | 1<<bit
		pg.hint = w
		pg.used++
		if pg.used == c.perPage {
			a.unlinkPartial(c, p)
		}
		return w*64 + bit
	}
	panic("slab: page on the partial list has no free chunk")
}

// Free returns a chunk obtained from Alloc or AllocAligned. b must start at
// the chunk's first byte (its length does not matter). Memory the arena did
// not hand out gives ErrForeign, a chunk already free ErrDoubleFree; in both
// cases nothing changes.
func (a *Arena) Free(b []byte) error {
	if a.closed.Load() {
		return ErrClosed
	}
	if cap(b) == 0 {
		return ErrForeign
	}
	off := uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(a.base)
	if off >= a.size { // also catches addresses below base (wrap-around)
		return ErrForeign
	}
	p := int32(off >> a.pageShift)
	ci := a.pages[p].owner.Load()
	if ci == noPage {
		return ErrForeign
	}
	c := &a.classes[ci]
	c.mu.Lock()
	err := a.release(c, ci, p, off&uintptr(a.pageSize-1))
	next := err == nil && a.nextOf(c, p) == off
	c.mu.Unlock()
	if err == nil {
		a.used.Add(-int64(c.size))
	}
	if next {
		warm(unsafe.Add(a.base, off), min(int(c.size), warmMax))
	}
	return err
}

// warmMax bounds what Free brings into the cache of a chunk it frees.
const warmMax = 4 << 10

// nextOf returns the arena offset of the chunk the class's next Alloc
// will hand out if that is in page p, or ^0; c's lock is held.
func (a *Arena) nextOf(c *class, p int32) uintptr {
	if c.partial != p {
		return ^uintptr(0)
	}
	pg := &a.pages[p]
	x := a.bitmap[int(p)*a.wpp+int(pg.hint)]
	if x == ^uint64(0) {
		return ^uintptr(0)
	}
	idx := pg.hint*64 + int32(bits.TrailingZeros64(^x))
	return uintptr(p)<<a.pageShift + uintptr(idx)*uintptr(c.size)
}

// warm prefetches the first n bytes at p, one cache line at a time.
//
// A chunk freed while its page was full (a value replaced in a full class)
// is the one the next Alloc of its class hands out, and its memory was last
// touched when the replaced value was written, so it is cold. The next put
// writes its payload into it, and the CPU cannot retire the next locked
// instruction (the index's lock) before every line of that copy has been
// fetched for ownership. On 1 KiB puts pipelined 16 deep that wait was 11%
// of the node's CPU without this and 6% with it, for 3% spent here (perf
// record). Fetched here, the lines arrive while the node answers the put
// and parses the next request; on the AMD host that was too late (the
// wait was 9-10% with it, 8% with one event loop), and the node now also
// fetches a pipelined put's replaced value a put ahead (dataplane's
// prefetchAhead), which left 1-2%.
//
// Every line: every other line left the wait at 15% of the node's CPU,
// above the 11% without warming; the adjacent-line prefetcher does not
// fill in the skipped lines here.
func warm(p unsafe.Pointer, n int) {
	sys.PrefetchLines(p, (n+sys.LineSize-1)/sys.LineSize)
}

// release frees the chunk at byte offset r of page p; c's lock is held.
func (a *Arena) release(c *class, ci, p int32, r uintptr) error {
	pg := &a.pages[p]
	if pg.owner.Load() != ci || r%uintptr(c.size) != 0 || r/uintptr(c.size) >= uintptr(c.perPage) {
		return ErrForeign
	}
	idx := int32(r / uintptr(c.size))
	w := &a.bitmap[int(p)*a.wpp+int(idx/64)]
	mask := uint64(1) << (idx % 64)
	if *w&mask == 0 {
		return ErrDoubleFree
	}
	*w &^= mask
	c.chunks--
	if pg.used == c.perPage && !pg.fenced {
		a.pushPartial(c, p)
	}
	pg.used--
	pg.hint = min(pg.hint, idx/64)
	if pg.used == 0 {
		if !pg.fenced { // a fenced page is on no list
			a.unlinkPartial(c, p)
		}
		pg.fenced = false
		pg.owner.Store(noPage)
		c.pages--
		a.givePage(p)
	}
	return nil
}

func (a *Arena) pushPartial(c *class, p int32) {
	pg := &a.pages[p]
	pg.prev, pg.next = noPage, c.partial
	if c.partial != noPage {
		a.pages[c.partial].prev = p
	}
	c.partial = p
}

func (a *Arena) unlinkPartial(c *class, p int32) {
	pg := &a.pages[p]
	if pg.prev != noPage {
		a.pages[pg.prev].next = pg.next
	} else {
		c.partial = pg.next
	}
	if pg.next != noPage {
		a.pages[pg.next].prev = pg.prev
	}
	pg.prev, pg.next = noPage, noPage
}

// takePage pops a free page, or noPage. Called with a class lock held.
func (a *Arena) takePage() int32 {
	a.poolMu.Lock()
	defer a.poolMu.Unlock()
	n := len(a.pool)
	if n == 0 {
		return noPage
	}
	p := a.pool[n-1]
	a.pool = a.pool[:n-1]
	a.pagesUsed.Add(1)
	return p
}

// givePage pushes page p back on the pool. Called with a class lock held.
func (a *Arena) givePage(p int32) {
	a.poolMu.Lock()
	a.pool = append(a.pool, p) // cap is the page count: never grows
	a.poolMu.Unlock()
	a.pagesUsed.Add(-1)
}

// Offset returns the position of b's first byte in the arena, so a chunk
// can be named by an integer in memory the garbage collector does not scan
// (the DRAM tier's off-heap key index). b must point into the arena.
func (a *Arena) Offset(b []byte) int64 {
	off := uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(a.base)
	if cap(b) == 0 || off >= a.size {
		panic("slab: Offset of memory outside the arena")
	}
	return int64(off)
}

// errOutside is At's panic: a plain value, not a formatted message, so
// that At is inlined (a GET calls it several times).
var errOutside = errors.New("slab: At of a range outside the arena")

// At returns the n bytes at offset off: the inverse of Offset. The slice is
// valid while the chunk holding it is allocated and the arena is open. A
// range outside the arena panics: offsets come from Offset, never from
// input.
func (a *Arena) At(off int64, n int) []byte {
	// A negative off or n converts to more than any arena's size.
	if uint64(off) > uint64(a.size) || uint64(n) > uint64(a.size)-uint64(off) {
		panic(errOutside)
	}
	return unsafe.Slice((*byte)(unsafe.Add(a.base, off)), n)
}
