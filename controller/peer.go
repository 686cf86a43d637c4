package controller

import (
	"crypto/tls"
	"net"

	"github.com/pocketstore/pocket/internal/sockpeek"
)

// peerGone reports whether the peer of conn has closed its end (or the
// connection failed), without taking anything from it (sockpeek.Peek on
// the TCP connection under TLS). A connection that cannot be looked at is
// never reported gone.
//
// A registration checks it after the autoscaler's wait for nodes, before
// it enters the job: a client killed during that wait never received the
// job's token, so nobody could deregister the job, and under a quota it
// held its tenant's allotment until its token expired (a hostile trial).
// A peer that sent bytes before its close is gone too (sockpeek.Finished):
// over TLS a client's Close sends a close_notify record ahead of its FIN,
// and the peek alone saw "data", so a TLS client whose call timed out
// during the wait was never seen gone and its job was entered (a hostile
// trial).
func peerGone(conn net.Conn) bool {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	return sockpeek.Peek(conn) == sockpeek.Closed || sockpeek.Finished(conn)
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
