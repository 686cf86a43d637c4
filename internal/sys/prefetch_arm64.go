package sys

// prefetch is PRFM PLDL1KEEP (prefetch_arm64.s).
//
//go:noescape
func prefetch(addr uintptr)
