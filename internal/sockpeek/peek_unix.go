//go:build unix

package sockpeek

import (
	"errors"
	"net"
	"syscall"
)

// Peek is a non-blocking recv with MSG_PEEK on nc's socket: it takes
// nothing from it. 0 bytes is end of file, an error other than EAGAIN or
// EINTR a failed connection.
func Peek(nc net.Conn) State {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return Unknown
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Unknown
	}
	var b [1]byte
	var n int
	var perr error
	if err := rc.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait
	}); err != nil {
		return Closed // the descriptor is closed
	}
	switch {
	case perr == nil && n > 0:
		return Data
	case perr == nil:
		return Closed
	case errors.Is(perr, syscall.EAGAIN), errors.Is(perr, syscall.EINTR):
		return Quiet
	}
	return Closed
}
