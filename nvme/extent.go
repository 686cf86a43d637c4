package nvme

import (
	"fmt"
	"math/bits"
)

// Extent is a byte range of a device: Len bytes from Off. Extents handed out
// by an Allocator are multiples of its block size at block-aligned offsets.
type Extent struct {
	Off, Len int64
}

// End is the first byte past the extent.
func (e Extent) End() int64 { return e.Off + e.Len }

// Allocator hands out block-aligned extents of a linear space (a device, or
// an mmap'd buffer region). Free extents are kept in segregated lists by
// size class (class c holds lengths in [2^c, 2^(c+1)) blocks) and indexed by
// both ends, so a freed extent merges with free neighbours in O(1) and the
// space does not splinter under churn. When no single free extent is large
// enough, AllocScattered gathers several (fragmentation never refuses a
// request that the free total can hold, up to a cap on pieces).
//
// An Allocator is not safe for concurrent use; its owner holds a lock.
type Allocator struct {
	block     int64
	blocks    int64 // capacity in blocks
	freeBlk   int64
	byStart   map[int64]int64 // free: start block -> length in blocks
	byEnd     map[int64]int64 // free: end block -> start block
	allocated map[int64]int64 // handed out: start block -> length in blocks
	classes   [64]classSet
}

// classSet is an unordered set of free extent starts with O(1) insert and
// remove; its order depends only on the sequence of operations, so runs are
// reproducible.
type classSet struct {
	starts []int64
	pos    map[int64]int
}

func (s *classSet) add(start int64) {
	if s.pos == nil {
		s.pos = make(map[int64]int)
	}
	s.pos[start] = len(s.starts)
	s.starts = append(s.starts, start)
}

func (s *classSet) remove(start int64) {
	i := s.pos[start]
	last := s.starts[len(s.starts)-1]
	s.starts[i] = last
	s.pos[last] = i
	s.starts = s.starts[:len(s.starts)-1]
	delete(s.pos, start)
}

// fitProbes bounds the search of the request's own size class for an
// extent that is large enough before a larger class is split instead.
const fitProbes = 32

// NewAllocator manages capacity bytes (rounded down to a whole block) in
// blocks of block bytes, which must be a power of two.
func NewAllocator(capacity, block int64) (*Allocator, error) {
	if block <= 0 || block&(block-1) != 0 {
		return nil, fmt.Errorf("nvme: allocator block %d: want a power of two", block)
	}
	if capacity < block {
		return nil, fmt.Errorf("nvme: allocator capacity %d below one block of %d: %w", capacity, block, ErrNoSpace)
	}
	a := &Allocator{
		block:     block,
		blocks:    capacity / block,
		byStart:   make(map[int64]int64),
		byEnd:     make(map[int64]int64),
		allocated: make(map[int64]int64),
	}
	a.insert(0, a.blocks)
	return a, nil
}

func class(n int64) int { return 63 - bits.LeadingZeros64(uint64(n)) }

func (a *Allocator) insert(start, n int64) {
	a.byStart[start] = n
	a.byEnd[start+n] = start
	a.classes[class(n)].add(start)
	a.freeBlk += n
}

func (a *Allocator) remove(start int64) int64 {
	n := a.byStart[start]
	delete(a.byStart, start)
	delete(a.byEnd, start+n)
	a.classes[class(n)].remove(start)
	a.freeBlk -= n
	return n
}

// Block is the allocation unit in bytes.
func (a *Allocator) Block() int64 { return a.block }

// Capacity is the managed space in bytes.
func (a *Allocator) Capacity() int64 { return a.blocks * a.block }

// Used is the space handed out, in bytes.
func (a *Allocator) Used() int64 { return (a.blocks - a.freeBlk) * a.block }

// Fragments is the number of free extents.
func (a *Allocator) Fragments() int { return len(a.byStart) }

// Largest is the longest free extent in bytes (0 when full).
func (a *Allocator) Largest() int64 {
	for c := len(a.classes) - 1; c >= 0; c-- {
		var best int64
		for _, s := range a.classes[c].starts {
			best = max(best, a.byStart[s])
		}
		if best > 0 {
			return best * a.block
		}
	}
	return 0
}

// Round is n rounded up to whole blocks, in bytes.
func (a *Allocator) Round(n int64) int64 { return (n + a.block - 1) &^ (a.block - 1) }

// Alloc returns one contiguous extent of at least n bytes (n rounded up to
// whole blocks), or ErrNoSpace when no free extent is that long.
func (a *Allocator) Alloc(n int64) (Extent, error) {
	if n <= 0 {
		return Extent{}, fmt.Errorf("nvme: allocate %d bytes: %w", n, ErrNoSpace)
	}
	want := a.Round(n) / a.block
	start, ok := a.find(want)
	if !ok {
		return Extent{}, fmt.Errorf("nvme: allocate %d bytes contiguous (largest free %d): %w", n, a.Largest(), ErrNoSpace)
	}
	return a.take(start, want), nil
}

// find picks a free extent of at least want blocks: one of the request's own
// class when a few probes find it, else one from the smallest larger class.
func (a *Allocator) find(want int64) (int64, bool) {
	c := class(want)
	for i, s := range a.classes[c].starts {
		if i == fitProbes {
			break
		}
		if a.byStart[s] >= want {
			return s, true
		}
	}
	for c++; c < len(a.classes); c++ {
		if st := a.classes[c].starts; len(st) > 0 {
			return st[len(st)-1], true
		}
	}
	return 0, false
}

// take allocates the first want blocks of the free extent at start and
// returns the rest to the free lists.
func (a *Allocator) take(start, want int64) Extent {
	n := a.remove(start)
	if n > want {
		a.insert(start+want, n-want)
	}
	a.allocated[start] = want
	return Extent{Off: start * a.block, Len: want * a.block}
}

// AllocScattered returns extents totalling n bytes rounded up to whole
// blocks: one extent when a long enough one is free, else pieces taken from
// the largest free extents (each from the highest size class that has one:
// at least half the longest), at most maxPieces of them. It fails with
// ErrNoSpace, allocating nothing, when the free space or the piece cap does
// not allow it. Each piece costs O(size classes), not a look at every free
// extent: a caller may allow a piece a block (dataplane's NVMe tier does),
// and a space splintered in 32,768 one-block holes then took a scan of all
// of them for each of a 1 MiB value's 256 pieces.
func (a *Allocator) AllocScattered(n int64, maxPieces int) ([]Extent, error) {
	if n <= 0 {
		return nil, fmt.Errorf("nvme: allocate %d bytes: %w", n, ErrNoSpace)
	}
	want := a.Round(n) / a.block
	if start, ok := a.find(want); ok {
		return []Extent{a.take(start, want)}, nil
	}
	if want > a.freeBlk {
		return nil, fmt.Errorf("nvme: allocate %d bytes (free %d): %w", n, a.freeBlk*a.block, ErrNoSpace)
	}
	var out []Extent
	for want > 0 {
		if len(out) == maxPieces {
			for _, e := range out {
				_ = a.Free(e)
			}
			return nil, fmt.Errorf("nvme: allocate %d bytes: the free space is split in pieces too small for it (more than %d would be needed; smaller values still fit): delete values, or use another node: %w", n, maxPieces, ErrNoSpace)
		}
		start, ok := a.largestStart()
		if !ok {
			panic("nvme: allocator free count disagrees with its lists")
		}
		e := a.take(start, min(want, a.byStart[start]))
		out = append(out, e)
		want -= e.Len / a.block
	}
	return out, nil
}

// largestStart returns the start of a free extent from the highest
// non-empty class, the last added there (at least half the longest).
func (a *Allocator) largestStart() (int64, bool) {
	for c := len(a.classes) - 1; c >= 0; c-- {
		if st := a.classes[c].starts; len(st) > 0 {
			return st[len(st)-1], true
		}
	}
	return 0, false
}

// Holds reports whether e is an extent exactly as Alloc or AllocScattered
// handed it out and not yet freed.
func (a *Allocator) Holds(e Extent) bool {
	if e.Off%a.block != 0 || e.Len%a.block != 0 {
		return false
	}
	got, ok := a.allocated[e.Off/a.block]
	return ok && got == e.Len/a.block
}

// Free returns an extent exactly as Alloc or AllocScattered handed it out
// and merges it with free neighbours. Anything else (a double free, a
// made-up extent) is refused with ErrForeign and changes nothing.
func (a *Allocator) Free(e Extent) error {
	if e.Off%a.block != 0 || e.Len%a.block != 0 {
		return fmt.Errorf("nvme: free extent %+v: %w", e, ErrForeign)
	}
	start, n := e.Off/a.block, e.Len/a.block
	if got, ok := a.allocated[start]; !ok || got != n {
		return fmt.Errorf("nvme: free extent %+v not allocated: %w", e, ErrForeign)
	}
	delete(a.allocated, start)
	if left, ok := a.byEnd[start]; ok {
		n += a.remove(left)
		start = left
	}
	if _, ok := a.byStart[start+n]; ok {
		n += a.remove(start + n)
	}
	a.insert(start, n)
	return nil
}
