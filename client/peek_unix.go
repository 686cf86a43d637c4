//go:build unix

package client

import (
	"errors"
	"net"
	"syscall"
)

// readable reports whether a peek at nc's socket, which does not wait,
// finds end of file, an error or data. False when it cannot look.
func readable(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var b [1]byte
	var perr error
	if err := rc.Read(func(fd uintptr) bool {
		_, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait
	}); err != nil {
		return true // the descriptor is closed
	}
	return !errors.Is(perr, syscall.EAGAIN) && !errors.Is(perr, syscall.EINTR)
}
