package sys

import "unsafe"

// Prefetch asks the CPU to start loading the cache line holding p, and
// returns at once. It never faults, whatever p is: a stale or wild
// address only wastes the hint. The DRAM tier uses it to overlap the cache
// misses of the pipelined lookups in one read, which Go cannot express
// (the compiler has no prefetch intrinsic for user code).
func Prefetch(p unsafe.Pointer) { prefetch(uintptr(p)) }
