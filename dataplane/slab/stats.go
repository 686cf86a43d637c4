package slab

import (
	"unsafe"

	"github.com/pocketstore/pocket/internal/sys"
)

// Stats is a snapshot of an arena's occupancy.
type Stats struct {
	Capacity  int64 // bytes in slab pages
	Used      int64 // bytes of chunks handed out (class sizes, not requests)
	PageSize  int
	Pages     int // slab pages in the arena
	PagesUsed int // pages owned by a class
	Classes   []ClassStats
}

// ClassStats is one size class's share of the arena.
type ClassStats struct {
	Size   int   // chunk size
	Pages  int64 // pages the class owns
	Chunks int64 // chunks handed out
}

// Stats takes a snapshot. Each class is read under its lock; the whole is
// not atomic across classes.
func (a *Arena) Stats() Stats {
	s := Stats{
		Capacity:  a.Capacity(),
		Used:      a.Used(),
		PageSize:  a.pageSize,
		Pages:     len(a.pages),
		PagesUsed: int(a.pagesUsed.Load()),
		Classes:   make([]ClassStats, len(a.classes)),
	}
	for i := range a.classes {
		c := &a.classes[i]
		c.mu.Lock()
		s.Classes[i] = ClassStats{Size: c.size, Pages: c.pages, Chunks: c.chunks}
		c.mu.Unlock()
	}
	return s
}

// Capacity is the arena's size in bytes (a whole number of pages).
func (a *Arena) Capacity() int64 { return int64(a.size) }

// Used is the bytes of chunks handed out, counted at class size.
func (a *Arena) Used() int64 { return a.used.Load() }

// PageSize is the slab page size, which is also MaxChunk.
func (a *Arena) PageSize() int { return a.pageSize }

// MaxChunk is the largest n Alloc accepts.
func (a *Arena) MaxChunk() int { return a.pageSize }

// Backing reports the pages behind the region.
func (a *Arena) Backing() sys.Backing { return a.region.Backing() }

// ClassSizes lists the chunk sizes, ascending.
func (a *Arena) ClassSizes() []int {
	out := make([]int, len(a.classes))
	for i := range a.classes {
		out[i] = a.classes[i].size
	}
	return out
}

// ChunkSize is the size of the chunk Alloc(n) would return, or 0 when n is
// not in (0, MaxChunk].
func (a *Arena) ChunkSize(n int) int {
	if n <= 0 || n > a.pageSize {
		return 0
	}
	return a.classes[a.classFor(n)].size
}

// FloorChunkSize is the largest chunk size no larger than n, or 0 when n is
// below MinChunk. Callers splitting a large value use it to avoid a mostly
// empty last chunk.
func (a *Arena) FloorChunkSize(n int) int {
	if n < MinChunk {
		return 0
	}
	if n >= a.pageSize {
		return a.pageSize
	}
	ci := a.classFor(n)
	if a.classes[ci].size > n {
		ci--
	}
	return a.classes[ci].size
}

// Contains reports whether b's first byte lies in the arena.
func (a *Arena) Contains(b []byte) bool {
	if cap(b) == 0 {
		return false
	}
	off := uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(a.base)
	return off < a.size
}

// Close unmaps the region. Every chunk becomes invalid: the owner must call
// it only when no chunk is in use. Later calls return nil.
func (a *Arena) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	return a.region.Close()
}
