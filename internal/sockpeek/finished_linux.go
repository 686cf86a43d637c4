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
	state, r := tcpState(nc)
	switch {
	case r == noFD:
		return false
	case r == fdClosed:
		return true
	}
	return state == tcpClose || state == tcpCloseWait || state == tcpLastAck
}

// Reset reports whether nc's connection is closed under it (TCP state
// CLOSE) while nc is still open: the peer reset it, as its kernel does
// when it closes with bytes unread or when bytes reach it after its
// close. False when nc is closed, has no descriptor to ask, or the
// kernel does not say.
func Reset(nc net.Conn) bool {
	state, r := tcpState(nc)
	return r == fdRan && state == tcpClose
}

// tcpState is the TCP state of nc's socket (TCP_INFO), with whether it
// was had (fdRan), nc is closed (fdClosed), or it could not be asked
// (noFD).
func tcpState(nc net.Conn) (uint8, fdResult) {
	var info syscall.TCPInfo
	size := uint32(unsafe.Sizeof(info))
	var errno syscall.Errno
	r := withFD(nc, func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	})
	if r == fdRan && (errno != 0 || size < 1) {
		return 0, noFD
	}
	return info.State, r
}
