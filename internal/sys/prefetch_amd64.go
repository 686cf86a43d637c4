package sys

// prefetch is PREFETCHT0 (prefetch_amd64.s).
//
//go:noescape
func prefetch(addr uintptr)

// prefetchLines is PREFETCHT0 on n lines of 64 bytes from addr
// (prefetch_amd64.s).
//
//go:noescape
func prefetchLines(addr uintptr, n int)
