package sys

// prefetch is PRFM PLDL1KEEP (prefetch_arm64.s).
//
//go:noescape
func prefetch(addr uintptr)

// prefetchLines is PRFM PLDL1KEEP on n lines of 64 bytes from addr
// (prefetch_arm64.s).
//
//go:noescape
func prefetchLines(addr uintptr, n int)
