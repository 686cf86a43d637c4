package sockpeek

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// Unsent is how many bytes written to nc's socket its peer has not yet
// acknowledged (the SIOCOUTQ ioctl, tcp(7)): a count that does not fall
// while a write is blocked says the peer reads nothing. False when nc has
// no descriptor to ask (a *tls.Conn, a pipe) or the ioctl fails.
func Unsent(nc net.Conn) (int, bool) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}
