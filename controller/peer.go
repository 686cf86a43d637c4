package controller

import (
	"crypto/tls"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerGone reports whether the peer of conn has closed its end (or the
// connection failed), without reading from it: poll(2) for POLLRDHUP,
// POLLHUP or POLLERR. A connection without a file descriptor is never
// reported gone.
//
// A registration checks it after the autoscaler's wait for nodes, before
// it enters the job: a client killed during that wait never received the
// job's token, so nobody could deregister the job, and under a quota it
// held its tenant's allotment until its token expired (a hostile trial).
func peerGone(conn net.Conn) bool {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	_ = raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			gone = fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return gone
}

// closing reports whether Close has begun.
func (c *Controller) closing() bool {
	select {
	case <-c.srv.done:
		return true
	default:
		return false
	}
}
