package sys

import "golang.org/x/sys/unix"

// OpenFileLimit is the process's descriptor limit (RLIMIT_NOFILE's soft
// limit, which the Go runtime raises to the hard one at start on Linux),
// or 0 when it cannot be read or is unlimited.
func OpenFileLimit() uint64 {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil || r.Cur == unix.RLIM_INFINITY {
		return 0
	}
	return r.Cur
}
