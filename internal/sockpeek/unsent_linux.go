package sockpeek

import (
	"net"
	"syscall"
	"unsafe"
)

// Unsent is how many bytes written to nc's socket its peer has not yet
// acknowledged (the SIOCOUTQ ioctl, tcp(7); on Linux it is TIOCOUTQ): a
// count that does not fall while a write is blocked says the peer reads
// nothing. False when nc has no descriptor to ask (a *tls.Conn, a pipe)
// or the ioctl fails.
func Unsent(nc net.Conn) (int, bool) {
	var n int32
	var errno syscall.Errno
	if withFD(nc, func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	}) != fdRan || errno != 0 {
		return 0, false
	}
	return int(n), true
}
