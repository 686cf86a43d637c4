//go:build unix

package sockpeek

import (
	"errors"
	"net"
	"syscall"
)

// Peek is a non-blocking recv with MSG_PEEK on nc's socket: it takes
// nothing from it. 0 bytes is end of file, an error other than EAGAIN or
// EINTR a failed connection. It goes through RawConn.Control, which a
// read deadline does not stop: through RawConn.Read, a deadline past
// (the controller's handshake timeout on a registration waiting for
// nodes) read as a closed descriptor, and a client still waiting for its
// reply was told it had left (a hostile trial).
func Peek(nc net.Conn) State {
	var b [1]byte
	var n int
	var perr error
	switch withFD(nc, func(fd uintptr) {
		n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}) {
	case noFD:
		return Unknown
	case fdClosed:
		return Closed
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
