// Package slab is the storage node's DRAM arena: one mmap'd region per node,
// outside the Go heap, carved into size-classed chunks. Stored values live
// here, so the garbage collector never scans or moves them, and the event
// loop receives payloads straight into the chunk that keeps them.
//
// # Memory layout
//
//	region (internal/sys.Region, 2 MiB aligned, hugetlb or THP when possible)
//	┌────────────┬────────────┬────────────┬─────┬────────────┐
//	│  page 0    │  page 1    │  page 2    │ ... │  page N-1  │  N = capacity / PageSize
//	└────────────┴────────────┴────────────┴─────┴────────────┘
//	page k (PageSize bytes, default 2 MiB = one huge page), owned by one class:
//	┌───────┬───────┬───────┬─────┬───────┬──────┐
//	│chunk 0│chunk 1│chunk 2│ ... │chunk m│ tail │  m+1 = PageSize / class size
//	└───────┴───────┴───────┴─────┴───────┴──────┘  tail (< one chunk) unused
//
// Pages start out in a free pool. A class takes a page from the pool when it
// has no page with a free chunk, and gives it back as soon as its last chunk
// is freed, so memory moves between classes as the value sizes of the
// workload change. A page one chunk keeps goes nowhere; the arena's owner
// can empty it by moving its chunks (compact.go: Sparsest, Fence, Chunks),
// as the DRAM tier does when a put finds no room. All metadata (page owner, free-chunk bitmaps, free lists)
// lives in Go slices sized once by New; nothing is written into the arena
// itself, so a stray write into a freed chunk cannot corrupt the allocator.
//
// # Size classes
//
// Classes run from MinChunk (64 B) to PageSize. Below 4 KiB they are
// multiples of 16 spaced about 1/8 apart (internal waste at most 12.5 %,
// 25 % between 64 and 128 B). From 4 KiB up they are multiples of 4096, so
// every such chunk is 4096-aligned (pages are aligned to PageSize) and can be
// an O_DIRECT buffer. Each class is widened to the largest size that still
// fits the same number of chunks in a page, which removes classes that would
// only waste page tails: between PageSize/2 and PageSize there is no class,
// and callers holding larger values split them (the DRAM tier stores such a
// value as several chunks).
//
// # Buffer lifetimes
//
// Alloc returns a slice of length n and capacity equal to the class size.
// It stays valid until it is given to Free; after Free the memory can be
// handed to another caller at once. A reused chunk is not zeroed: the caller
// must write every byte it later reads. Every chunk is invalid after Close,
// which unmaps the region; the owner must make sure no chunk is in use then.
//
// # Cache warmth
//
// Free prefetches (up to 4 KiB of) the chunk it frees when that chunk is the
// one its class hands out next: a replaced value's chunk in a full class,
// the steady state of a store whose puts overwrite keys. The next put of
// that class then writes its payload into lines already in the cache
// instead of fetching each for ownership, a wait the next locked
// instruction would expose (see warm in arena.go).
//
// # Concurrency
//
// Alloc and Free are safe from many goroutines. Each class has its own lock;
// the page pool has one more. Lock order: class lock, then pool lock. Free
// reads a page's owner class with an atomic load before taking that class's
// lock and checks it again under the lock. Steady-state Alloc and Free make
// no heap allocations.
//
// Free refuses memory the arena did not hand out (ErrForeign: outside the
// region, not the start of a chunk, or in a page no class owns) and chunks
// that are already free (ErrDoubleFree).
package slab
