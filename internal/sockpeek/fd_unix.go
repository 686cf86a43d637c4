//go:build unix

package sockpeek

import (
	"net"
	"syscall"
)

// fdResult is what withFD could do: nc has no descriptor to ask (a
// *tls.Conn, a pipe), its descriptor is closed, or f ran on it.
type fdResult int

const (
	noFD fdResult = iota
	fdClosed
	fdRan
)

// withFD runs f on nc's descriptor through RawConn.Control, which a read
// or write deadline does not stop (see Peek).
func withFD(nc net.Conn, f func(fd uintptr)) fdResult {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return noFD
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return noFD
	}
	if rc.Control(f) != nil {
		return fdClosed
	}
	return fdRan
}
