package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// nonceLen is the size of a connection's challenge nonce.
const nonceLen = 16

// session is one control connection's state: who the peer is and the
// challenge it was given.
type session struct {
	peer   string // peerKey of the remote address: the client of registrations
	tenant string // TenantOf the peer's certificate; "" without TLS (tenant.go)
	roles  Roles  // what the peer may do (every role without TLS)
	op     bool   // an operator's certificate (TLS only): no allotment quota
	nonce  []byte // set by OpChallenge; node and drain proofs cover it
	conn   net.Conn
	prob   bool // admitted over MaxConns on probation: served only as a node (server)
	// proven: the connection proved the node role with the secret
	// (checkNodeProof); its large requests count against the whole
	// large-frame bound only, not the unproven share (admitLarge).
	proven bool
	// undelivered, when set, is what the request being served undoes
	// if its reply cannot be written, or is left unread (serveConn,
	// undoUnread): a registration's job, whose token would otherwise
	// reach nobody. why says which.
	undelivered func(why string)
}

var errNoChallenge = wire.Errorf(wire.CodeBadToken, "no challenge on this connection: send OpChallenge first and prove with its nonce")

// newSession completes a TLS handshake (within HandshakeTimeout) and reads
// the peer's roles from its certificate; a plain connection gets every
// role. It returns nil when the handshake fails.
func (c *Controller) newSession(conn net.Conn) *session {
	s := &session{peer: peerKey(conn.RemoteAddr()), roles: AllRoles, conn: conn}
	c.srv.mu.Lock()
	if ci := c.srv.conns[conn]; ci != nil {
		s.prob = ci.prob
	}
	c.srv.mu.Unlock()
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return s
	}
	if d := c.cfg.HandshakeTimeout; d > 0 {
		if err := conn.SetDeadline(time.Now().Add(d)); err != nil {
			return nil
		}
	}
	if err := tc.Handshake(); err != nil {
		if herr := handshakeError(conn.RemoteAddr(), err); herr != nil {
			c.srv.logLimited(herr)
		} else {
			c.cfg.Logger.Debug("controller: the peer closed the connection during the TLS handshake", "peer", conn.RemoteAddr(), "err", err)
		}
		return nil
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil
	}
	s.roles = peerRoles(tc.ConnectionState())
	s.op = s.roles&RoleOperator != 0
	if !s.op {
		s.tenant = TenantOf(tc.ConnectionState()) // the operator's jobs are the cluster's (tenant.go)
	}
	c.srv.setOwner(conn, limitKey(s.peer, s.tenant))
	return s
}

// handshakeError is what the log says of a failed TLS handshake with
// addr: a peer that did not speak TLS at all (a plain-TCP client, say one
// run with --insecure) is CodeMalformed and named so; any other failure
// (no certificate, one from another CA, a timeout) CodeBadToken, as a
// failed proof, saying whose certificate was refused: the peer's, or,
// when the peer sent the alert, this controller's. Both end with
// "(handshake)", the log's rate-limit key.
// A peer that closed the connection (EOF, a reset) is nil: nothing to
// warn of (a client that gave up, such as a stalled-controller probe
// past its bound, which a controller resumed from SIGSTOP met in its
// backlog; a new user's trial read a "bad token" warning for each).
func handshakeError(addr net.Addr, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return wire.Errorf(wire.CodeMalformed, "TLS handshake with %s: the peer does not speak TLS (a plain-TCP client, such as one given --insecure?): %v (handshake)", addr, err)
	}
	if op := (*net.OpError)(nil); errors.As(err, &op) && op.Op == "remote error" {
		// The peer sent the alert: it refused this controller's
		// certificate. A hostile trial's controller of another CA logged
		// the nodes' refusals as a bad token of theirs.
		return wire.Errorf(wire.CodeBadToken, "TLS handshake with %s: the peer refused this controller's certificate "+
			"(is this controller's CA the cluster's?): %v (handshake)", addr, err)
	}
	return wire.Errorf(wire.CodeBadToken, "TLS handshake with %s: the peer's certificate was not accepted "+
		"(none, or one of another CA than this controller's): %v (handshake)", addr, err)
}

// limits are the frame limits of s's requests: a node's (its
// registration and heartbeats list its jobs) up to
// wire.DefaultControlMaxMeta (4 MiB), a peer without the node role (over
// TLS, a client's or operator's certificate) wire.DefaultMaxMeta (64
// KiB), more than any of their requests holds. Before, every peer had 4
// MiB: a hostile trial's 200 connections of a tenant's certificate, each
// sending all but the last byte of a 4 MiB frame, took the controller from
// 50 MB to 1.18 GB.
func (s *session) limits() wire.Limits {
	lim := wire.ControlLimits()
	if s.roles&RoleNode == 0 {
		lim.MaxMeta = wire.DefaultMaxMeta
	}
	return lim
}

// handle checks the peer's role for op, decodes the request, runs it and
// encodes the reply table in b.
func (c *Controller) handle(s *session, op wire.Op, meta []byte, b *flatbuffers.Builder) ([]byte, error) {
	if err := c.notLeader(); err != nil {
		return nil, err
	}
	if err := s.roles.allow(op); err != nil {
		return nil, err
	}
	if s.prob && !nodeOp(op, s.nonce != nil) {
		if !c.admitFair(s.conn) {
			return nil, c.errProbation(s.conn)
		}
		s.prob = false
	}
	if listing(op) { // built and encoded in turn (listings.go)
		release, err := c.awaitListing()
		if err != nil {
			return nil, err
		}
		defer release()
	}
	reply, err := c.dispatch(s, op, meta)
	if err != nil {
		return nil, err
	}
	return reply.Encode(b), nil
}

// nodeOp reports whether op is one a node sends to prove itself: one
// OpChallenge (challenged: the connection has had it), then
// OpRegisterNode, OpHeartbeat or OpNodeHello.
func nodeOp(op wire.Op, challenged bool) bool {
	switch op {
	case wire.OpChallenge:
		return !challenged
	case wire.OpRegisterNode, wire.OpHeartbeat, wire.OpNodeHello:
		return true
	}
	return false
}

func (c *Controller) dispatch(s *session, op wire.Op, meta []byte) (wire.ControlMessage, error) {
	switch op {
	case wire.OpChallenge:
		return c.challenge(s)
	case wire.OpRegisterNode:
		var m wire.NodeRegister
		if err := m.Decode(meta); err != nil {
			return nil, err
		}
		if err := c.checkNodeProof(s, m.Addr, m.Proof); err != nil {
			return nil, err
		}
		return c.RegisterNode(&m)
	case wire.OpHeartbeat:
		var m wire.Heartbeat
		if err := m.Decode(meta); err != nil {
			return nil, err
		}
		if err := c.checkNodeProof(s, m.Addr, m.Proof); err != nil {
			return nil, err
		}
		return c.Heartbeat(&m)
	case wire.OpNodeHello:
		return c.nodeHello(s, meta)
	case wire.OpDrainNode:
		var m wire.DrainNode
		if err := m.Decode(meta); err != nil {
			return nil, err
		}
		return c.drainRequest(s.nonce, &m)
	}
	return c.dispatchJobs(s, op, meta)
}

// dispatchJobs serves the job clients' and operators' requests.
func (c *Controller) dispatchJobs(s *session, op wire.Op, meta []byte) (wire.ControlMessage, error) {
	switch op {
	case wire.OpRegisterJob:
		var m wire.JobRegister
		if err := m.Decode(meta); err != nil {
			return nil, err
		}
		who := newRegistrant(s.peer, s.tenant, s.op)
		who.gone = func() bool { return peerGone(s.conn) }
		pm, err := c.registerJob(who, &m)
		if err == nil {
			s.undelivered = func(why string) { c.endUndelivered(pm.Job, pm.Token, why) }
		}
		return pm, err
	case wire.OpDeregisterJob:
		var m wire.JobRef
		if err := m.Decode(meta); err != nil {
			return nil, err
		}
		ctx, cancel := c.closingContext()
		defer cancel()
		if len(m.Proof) > 0 && len(m.Token) == 0 {
			// An operator's end of a job without its token; a request
			// with the token is the job client's, whatever else it holds.
			return c.endJobRequest(ctx, s, &m)
		}
		return c.DeregisterJob(ctx, m.Job, m.Token)
	case wire.OpGetMap:
		var m wire.JobRef
		if err := m.Decode(meta); err != nil {
			return nil, err
		}
		if m.EndedOK {
			return c.GetMapOrEnded(m.Job, m.Token)
		}
		return c.GetMap(m.Job, m.Token)
	case wire.OpStatus:
		return c.Status(), nil
	case wire.OpListJobs:
		var m wire.JobList
		if err := m.Decode(meta); err != nil {
			return nil, err
		}
		return c.ListJobs(m.After, int(m.Limit)), nil
	case wire.OpJobProfile:
		var m wire.JobProfileRequest
		if err := m.Decode(meta); err != nil {
			return nil, err
		}
		if s.roles&RoleOperator == 0 {
			return c.TenantProfile(s.tenant, m.Name)
		}
		return c.JobProfile(m.Name)
	}
	return nil, wire.Errorf(wire.CodeUnknownOp, "controller does not serve %s", op)
}

// endJobRequest serves an operator's OpDeregisterJob without the job's
// token (wire.JobRef.Proof): the peer must hold the operator role and
// prove the cluster secret over the connection's challenge and the job's
// id, as a drain order does, so a client certificate, a node's, or a
// proof recorded on another connection or for another job ends nothing.
func (c *Controller) endJobRequest(ctx context.Context, s *session, m *wire.JobRef) (wire.ControlMessage, error) {
	if s.roles&RoleOperator == 0 {
		return nil, wire.Errorf(wire.CodeForbidden, "ending job %s without its token needs the role operator; this connection's certificate has %s",
			m.Job, s.roles)
	}
	if len(s.nonce) == 0 {
		return nil, errNoChallenge
	}
	if !token.VerifyEndJobProof(c.cfg.Secret, s.nonce, m.Job, m.Proof) {
		return nil, wire.Errorf(wire.CodeBadToken, "end job %s: proof does not match the cluster secret and this connection's challenge", m.Job)
	}
	return c.EndJob(ctx, m.Job)
}

// challenge gives the connection a fresh nonce, which every later proof on
// it must cover.
func (c *Controller) challenge(s *session) (*wire.Challenge, error) {
	nonce, err := token.NewNonce(nonceLen)
	if err != nil {
		return nil, wire.Errorf(wire.CodeInternal, "%v", err)
	}
	s.nonce = nonce
	return &wire.Challenge{Nonce: nonce}, nil
}

// nodeHello serves OpNodeHello: a node's proof of the secret for this
// connection, which makes it a node's connection (outside MaxConns, never
// evicted; served in full if it was on probation) and changes nothing
// else. A node sends it first on a connection that carries its other
// calls (metaclient: a drainer's or mover's map fetch), which registers
// and heartbeats nothing to prove itself with.
func (c *Controller) nodeHello(s *session, meta []byte) (*wire.NodeHello, error) {
	var m wire.NodeHello
	if err := m.Decode(meta); err != nil {
		return nil, err
	}
	if m.Addr == "" {
		return nil, wire.Errorf(wire.CodeBadKey, "node-hello without the node's address (the proof covers it)")
	}
	if err := c.checkNodeProof(s, m.Addr, m.Proof); err != nil {
		return nil, err
	}
	return &wire.NodeHello{}, nil
}

// checkNodeProof checks a node's proof of the secret for this connection.
func (c *Controller) checkNodeProof(s *session, addr string, proof []byte) error {
	if len(s.nonce) == 0 {
		return errNoChallenge
	}
	if !token.VerifyNodeProof(c.cfg.Secret, s.nonce, addr, proof) {
		return wire.Errorf(wire.CodeBadToken, "node %s: proof does not match the cluster secret and this connection's challenge", addr)
	}
	if s.conn != nil {
		c.srv.provedNode(s.conn)
	}
	s.prob, s.proven = false, true
	return nil
}
