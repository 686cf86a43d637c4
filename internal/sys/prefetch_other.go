//go:build !amd64 && !arm64

package sys

// prefetch does nothing where no instruction is wired up: the hint is only
// ever an optimization.
func prefetch(uintptr) {}

func prefetchLines(uintptr, int) {}
