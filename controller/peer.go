package controller

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// peerGone reports whether the peer of conn has closed its end (or the
// connection failed), without taking anything from it: a non-blocking
// recv with MSG_PEEK answers 0 bytes (end of file) or an error other than
// EAGAIN. Bytes waiting to be read mean the peer is there. A connection
// without a file descriptor is never reported gone.
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
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var b [1]byte
	var n int
	var perr error
	if err := rc.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait
	}); err != nil {
		return true // the descriptor is closed
	}
	switch {
	case perr == nil:
		return n == 0
	case errors.Is(perr, syscall.EAGAIN), errors.Is(perr, syscall.EINTR):
		return false
	}
	return true
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
