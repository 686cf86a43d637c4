package sockpeek

import (
	"net"
	"syscall"
	"unsafe"
)

// Linux TCP states (include/net/tcp_states.h) in which the peer has sent
// its FIN: it closed its end, whatever bytes still wait to be read.
const (
	tcpClose     = 7
	tcpCloseWait = 8
	tcpLastAck   = 9
)

// Finished reports whether nc's peer has closed its end (sent FIN),
// even when bytes it sent before wait unread (Peek then says Data): over
// TLS a client's Close sends a close_notify record before the FIN, so
// the socket holds data and a peek alone never sees the close. False when
// nc has no descriptor to ask or the kernel does not say.
func Finished(nc net.Conn) bool {
	var info syscall.TCPInfo
	size := uint32(unsafe.Sizeof(info))
	var errno syscall.Errno
	switch withFD(nc, func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	}) {
	case noFD:
		return false
	case fdClosed:
		return true
	}
	if errno != 0 || size < 1 {
		return false
	}
	switch info.State {
	case tcpClose, tcpCloseWait, tcpLastAck:
		return true
	}
	return false
}
