package sys

import "unsafe"

// Prefetch asks the CPU to start loading the cache line holding p, and
// returns at once. It never faults, whatever p is: a stale or wild
// address only wastes the hint. The DRAM tier uses it to overlap the cache
// misses of the pipelined lookups in one read, which Go cannot express
// (the compiler has no prefetch intrinsic for user code).
func Prefetch(p unsafe.Pointer) { prefetch(uintptr(p)) }

// LineSize is the cache line PrefetchLines steps by, in bytes.
const LineSize = 64

// PrefetchLines is Prefetch on n consecutive cache lines from p (p,
// p+LineSize, ...), in one call: a record's 17 lines cost one call, not 17
// (a Go call into assembly passes its argument on the stack). n <= 0
// prefetches nothing. Like Prefetch it never faults.
func PrefetchLines(p unsafe.Pointer, n int) { prefetchLines(uintptr(p), n) }
