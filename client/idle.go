package client

import (
	"errors"
	"time"

	"github.com/pocketstore/pocket/internal/sockpeek"
)

// A pooled connection the node closed while it sat idle (the node stopped,
// restarted, or closed it as idle) would take the next request's frame
// into the socket's buffer and answer it with end of file: a request that
// failed after it was written, whose outcome is unknown (NotSent false),
// though the node never saw it. Before such a connection is handed out,
// closedByPeer looks, without reading, whether the node's close (or any
// byte nobody asked for) has arrived, and the pool dials a new one
// instead. Only a connection idle for idleCheck is looked at, so calls in
// quick succession pay nothing; one syscall otherwise.

// idleCheck is how long a connection must have sent nothing before
// closedByPeer looks at it.
const idleCheck = 10 * time.Millisecond

// errPeerClosed fails a pooled connection the node closed while it was idle.
var errPeerClosed = errors.New("client: connection closed by the node while idle; redialled")

// peekHook, set by tests only, runs in closedByPeer between its look at
// the calls in flight and its peek at the socket.
var peekHook func(*muxConn)

// closedByPeer reports whether mc, idle for idleCheck with no call in
// flight and nobody reading, has something to read: the node's close (end
// of file, a reset) or bytes nobody asked for. Either way it is no use.
// The caller holds the pool's lock. The look at the calls in flight and
// the peek are one step under mc.mu, where a call registers before it
// sends: before, a caller handed the connection earlier could register,
// send and have its reply arrive between the two, and the peek took the
// reply for bytes nobody asked for and failed the call (a hostile trial:
// 3 calls in 314,519 on healthy nodes, one connection per node).
func (mc *muxConn) closedByPeer() bool {
	if time.Duration(time.Now().UnixNano()-mc.used.Load()) < idleCheck {
		return false
	}
	if !mc.rmu.TryLock() {
		return false // a reader is at work: the connection is in use
	}
	defer func() {
		mc.rmu.Unlock()
		mc.nudge() // a caller that found rmu taken meanwhile waits for a wake
	}()
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if len(mc.pending) > 0 || mc.waiting > 0 || mc.draining || mc.rs.mid() || mc.br.Buffered() > 0 {
		return false
	}
	if peekHook != nil {
		peekHook(mc)
	}
	return sockpeek.Peek(mc.nc) >= sockpeek.Data && mc.retireLocked(errPeerClosed) // bytes or a close the node sent
}
