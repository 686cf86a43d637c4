package controller

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/sockpeek"
	"github.com/pocketstore/pocket/wire"
)

// evictMinIdle is how long a connection must have been idle before a new
// connection may take its place when the server is at Config.MaxConns.
const evictMinIdle = time.Second

// nodeProbation bounds the connections admitted over Config.MaxConns on
// probation, for a node to prove itself on (see server). When they are
// all taken, a new connection replaces the oldest of them.
const nodeProbation = 64

// maxLingering bounds the refused connections whose requests are read and
// discarded before the close (so the peer reads the refusal instead of a
// reset); beyond it a refused connection is closed at once.
const maxLingering = 64

// server is the network side: listeners, connections and goroutines.
//
// Connection limits (Config): MaxConns over all peers, MaxConnsPerPeer per
// peer (an IPv4 address or an IPv6 /64), HandshakeTimeout for the first
// frame, IdleTimeout between frames. At MaxConns, a new connection takes the
// place of the one idle longest (if idle for evictMinIdle), else of one
// that has sent no request yet (evictFreshLocked), so connections that say
// nothing cannot keep active clients out, however fast they are opened.
//
// Node connections are outside MaxConns: a connection that has proved the
// node role (a valid node proof on OpRegisterNode, OpHeartbeat or
// OpNodeHello) is not counted by MaxConns and never evicted for idleness,
// so no flood of busy connections can cut the controller off from its
// nodes (have it declare them dead, or stall their map fetches). A new connection cannot say yet what it is, so when
// MaxConns is reached and none is idle it is admitted on probation, up to
// nodeProbation of them (beyond, the oldest on probation is closed for
// it): it may send OpChallenge and then must prove the node role; any
// other request, a failed proof, or silence for HandshakeTimeout between
// frames, gets the MaxConns refusal and the connection is closed. A node
// proves itself within two round trips, so a flooder must open more than
// nodeProbation connections in that time to keep a node out.
//
// A refused connection gets one error frame (request id 0, CodeLimit,
// naming the limit and its value) and is closed. Every refusal or eviction
// by a limit is noted (lastRefusal): while the controller refuses, silent
// nodes are not declared lost (dead.go), since their heartbeats may be
// among the refused.
type server struct {
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	linger    chan struct{} // semaphore of lingering refusals

	mu     sync.Mutex // guards lns, conns, peers
	lns    []net.Listener
	conns  map[net.Conn]*connInfo
	peers  map[string]int // open connections per peer key
	plain  int            // connections MaxConns counts: neither node nor on probation
	onProb int            // connections on probation

	lastRefusal atomic.Int64 // unix nanoseconds of the latest refusal or eviction by a limit
	lossLog     atomic.Int64 // unix nanoseconds of the latest "loss postponed" log (dead.go)

	logMu   sync.Mutex // guards logLast, logMute
	logLast map[string]time.Time
	logMute map[string]int
	log     *slog.Logger

	// ha is set by HA on the controllers it runs (ha.go): nil for a
	// controller that is the only one.
	ha atomic.Pointer[haRole]
}

// connInfo is one tracked connection; its fields are guarded by server.mu.
type connInfo struct {
	peer  string
	owner string    // the client of the limits (limitKey), for fair shares of MaxConns (fairshare.go)
	last  time.Time // start or end of the latest request, or the accept
	busy  bool      // a request is being served: never evicted then
	node  bool      // proved the node role: outside MaxConns, never evicted
	prob  bool      // admitted over MaxConns on probation: must prove the node role
	// overPeer: put on probation over its peer's MaxConnsPerPeer, which
	// its refusal names (errProbation)
	overPeer bool
	fresh    bool // no request yet (handshake or first frame under way): at MaxConns the first to go (evictFreshLocked)
}

func (s *server) init(log *slog.Logger) {
	s.log = log
	s.done = make(chan struct{})
	s.conns = map[net.Conn]*connInfo{}
	s.peers = map[string]int{}
	s.linger = make(chan struct{}, maxLingering)
	s.logLast = map[string]time.Time{}
	s.logMute = map[string]int{}
}

func (s *server) goroutine(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// ErrClosed is returned by Serve after Close. It is wire.ErrClosed, the
// one definition of "closed" (wire.CodeClosed), so errors.Is matches it
// whichever package's name the caller uses.
var ErrClosed = wire.ErrClosed

// Serve accepts control connections on ln until Close, over TLS when
// Config.TLS is set. It returns ErrClosed after Close, or the listener's
// error when it was closed by another; other failed accepts are waited
// out (acceptRetry).
func (c *Controller) Serve(ln net.Listener) error {
	s := &c.srv
	ln = c.wrapListener(ln)
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		ln.Close()
		return ErrClosed
	default:
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	var retry acceptRetry
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrClosed
			default:
			}
			if retry.fail(err, c.cfg.Logger) {
				return fmt.Errorf("controller: accept: %w", err)
			}
			continue
		}
		retry.ok()
		if _, err := c.track(conn); err != nil {
			c.refuse(conn, err)
			continue
		}
		s.goroutine(func() { c.serveConn(conn) })
	}
}

// accept serves one connection accepted elsewhere (HA's accept loop) as
// Serve would, over TLS when Config.TLS is set. It reports false, leaving
// conn open, when the controller is closed.
func (c *Controller) accept(conn net.Conn) bool {
	s := &c.srv
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return false
	default:
	}
	s.wg.Add(1) // before Close can wait
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		if c.cfg.TLS != nil {
			conn = tls.Server(conn, c.cfg.TLS)
		}
		if _, err := c.track(conn); err != nil {
			c.refuse(conn, err)
			return
		}
		c.serveConn(conn)
	}()
	return true
}

// Listen starts serving on addr (host:port; port 0 picks one) in the
// background and returns the bound address (see Serve).
func (c *Controller) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	return c.ServeBackground(ln), nil
}

// ServeBackground serves ln as Listen does, in the background until Close,
// and returns its address. A process that binds its port before New can
// name itself in every log line, New's included ("controller: state
// restored", which a new user's trial of pocket up read without its
// controller= attribute).
func (c *Controller) ServeBackground(ln net.Listener) net.Addr {
	c.srv.goroutine(func() {
		if err := c.Serve(ln); err != nil && !errors.Is(err, ErrClosed) {
			c.cfg.Logger.Error("controller: serve", "err", err)
		}
	})
	return ln.Addr()
}

// peerKey is what MaxConnsPerPeer counts by: the remote IP, or for IPv6
// its /64 (one host usually holds a whole /64).
func peerKey(a net.Addr) string {
	host := a.String()
	if ta, ok := a.(*net.TCPAddr); ok {
		ip := ta.IP
		if ip4 := ip.To4(); ip4 != nil {
			return ip4.String()
		}
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// track registers a connection, or returns the limit that refuses it. It
// reports whether the connection is on probation (see server).
func (c *Controller) track(conn net.Conn) (prob bool, err error) {
	s := &c.srv
	peer := peerKey(conn.RemoteAddr())
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return false, wire.Errorf(wire.CodeClosed, "controller is shutting down")
	default:
	}
	overPeer := c.cfg.MaxConnsPerPeer > 0 && s.peers[peer] >= c.cfg.MaxConnsPerPeer && !s.evictFreshLocked(now, peer)
	if overPeer || s.plain >= c.cfg.MaxConns && !s.evictIdleLocked(now) && !s.evictFreshLocked(now, "") {
		s.noteRefusal(now)
		if s.onProb >= nodeProbation {
			s.evictProbationLocked()
		}
		prob = true
	}
	s.conns[conn] = &connInfo{peer: peer, owner: peer, last: now, prob: prob, fresh: !prob, overPeer: overPeer}
	s.peers[peer]++
	if prob {
		s.onProb++
	} else {
		s.plain++
	}
	return prob, nil
}

// errProbation refuses a request on connection conn, on probation: the
// limit it was admitted over (MaxConnsPerPeer, or MaxConns).
func (c *Controller) errProbation(conn net.Conn) error {
	s := &c.srv
	peer := peerKey(conn.RemoteAddr())
	s.mu.Lock()
	n, fromPeer := s.plain, s.peers[peer]
	overPeer := s.conns[conn] != nil && s.conns[conn].overPeer
	s.mu.Unlock()
	s.noteRefusal(time.Now())
	if lim := c.cfg.MaxConnsPerPeer; lim > 0 && (overPeer || fromPeer > lim) {
		return wire.Errorf(wire.CodeLimit, "controller: %d connections from %s; over the limit only nodes are served (MaxConnsPerPeer %d)", fromPeer, peer, lim)
	}
	return wire.Errorf(wire.CodeLimit, "controller: %d connections, none idle; over the limit only nodes are served (MaxConns %d)", n, c.cfg.MaxConns)
}

// noteRefusal records that a limit refused or evicted a connection now.
func (s *server) noteRefusal(now time.Time) { s.lastRefusal.Store(now.UnixNano()) }

// closeAside closes conn on a goroutine of its own: the evictions run
// under the server's lock, and a TLS connection's Close sends its
// close_notify with a 5 s deadline, which a peer that reads nothing makes
// it wait out, every new connection waiting on the lock meanwhile (a
// review).
func closeAside(conn net.Conn) { go conn.Close() }

// evictIdleLocked closes the connection MaxConns counts that has been idle
// longest, if it has been idle for evictMinIdle, and reports whether it
// did. Node connections and those on probation are never evicted here.
func (s *server) evictIdleLocked(now time.Time) bool {
	var victim net.Conn
	var oldest time.Time
	for conn, ci := range s.conns {
		if ci.busy || ci.node || ci.prob {
			continue
		}
		if victim == nil || ci.last.Before(oldest) {
			victim, oldest = conn, ci.last
		}
	}
	if victim == nil || now.Sub(oldest) < evictMinIdle {
		return false
	}
	s.noteRefusal(now)
	s.forgetLocked(victim)
	closeAside(victim)
	return true
}

// evictFreshLocked closes a connection that has sent no request yet, of
// any age, and reports whether it did: the oldest of peer's when peer is
// set (the peer is at MaxConnsPerPeer), else the oldest of the peer
// (peerKey) holding the most connections (the server is at MaxConns, none
// idle for evictMinIdle). Connections that never send a request (TCP
// opened, no TLS handshake, no frame: no certificate needed) were, while
// younger than evictMinIdle, never evicted: a flooder opening 1,000 a
// second from five addresses kept every slot young, and 32-57 % of a
// certified operator's requests were refused (a hostile trial); and one
// opening 40 a second from the operator's own address (the same host, a
// NAT) held its MaxConnsPerPeer, refusing 43 % (the re-check). Now each
// new connection takes the place of a silent one, so a silent connection
// lives about the slots over the flood's rate, 250 ms at 4,000 a second
// for 1,024, which a handshake and a first request on a working network
// need far less of; and a client from an address of its own outlives the
// flood's connections from the addresses holding more. One pass over the
// connections, as evictIdleLocked's, with the per-peer counts kept for
// MaxConnsPerPeer.
func (s *server) evictFreshLocked(now time.Time, peer string) bool {
	var victim net.Conn
	var vi *connInfo
	for conn, ci := range s.conns {
		if !ci.fresh || ci.busy || ci.node || ci.prob || peer != "" && ci.peer != peer {
			continue
		}
		if vi == nil || s.peers[ci.peer] > s.peers[vi.peer] || s.peers[ci.peer] == s.peers[vi.peer] && ci.last.Before(vi.last) {
			victim, vi = conn, ci
		}
	}
	if victim == nil {
		return false
	}
	s.noteRefusal(now)
	s.forgetLocked(victim)
	closeAside(victim)
	return true
}

// evictProbationLocked closes the connection on probation admitted first
// of the peer (peerKey) holding the most of them. Before, the oldest of
// all went, whoever held it: a hostile re-check's 200 goroutines on three
// addresses opened silent connections and closed them 20 ms later, beside
// one tenant's 1,100 busy ones, and another tenant's new connections were
// closed on probation during their TLS handshake, before the first
// request that admitFair would have let in: 6 of its 39 registrations
// went through.
func (s *server) evictProbationLocked() {
	held := map[string]int{}
	for _, ci := range s.conns {
		if ci.prob {
			held[ci.peer]++
		}
	}
	var victim net.Conn
	var oldest *connInfo
	for conn, ci := range s.conns {
		if !ci.prob {
			continue
		}
		if oldest == nil || held[ci.peer] > held[oldest.peer] || held[ci.peer] == held[oldest.peer] && ci.last.Before(oldest.last) {
			victim, oldest = conn, ci
		}
	}
	if victim != nil {
		s.forgetLocked(victim)
		closeAside(victim)
	}
}

// provedNode marks conn as a node's: outside MaxConns and never evicted
// (a connection on probation is off it).
func (s *server) provedNode(conn net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ci, ok := s.conns[conn]
	if !ok || ci.node {
		return
	}
	s.uncountLocked(ci)
	ci.node, ci.prob = true, false
	s.unpeerLocked(ci.peer) // nor does MaxConnsPerPeer count it
}

// unpeerLocked takes one connection off peer's count.
func (s *server) unpeerLocked(peer string) {
	if s.peers[peer]--; s.peers[peer] <= 0 {
		delete(s.peers, peer)
	}
}

// uncountLocked takes ci out of the plain or probation count.
func (s *server) uncountLocked(ci *connInfo) {
	switch {
	case ci.prob:
		s.onProb--
	case !ci.node:
		s.plain--
	}
}

func (s *server) forgetLocked(conn net.Conn) {
	ci, ok := s.conns[conn]
	if !ok {
		return
	}
	delete(s.conns, conn)
	s.uncountLocked(ci)
	if !ci.node {
		s.unpeerLocked(ci.peer)
	}
}

func (s *server) untrack(conn net.Conn) {
	s.mu.Lock()
	s.forgetLocked(conn)
	s.mu.Unlock()
	conn.Close()
}

// touch records the start (busy) or end of a request on conn, for idle
// eviction.
func (s *server) touch(conn net.Conn, busy bool) {
	s.mu.Lock()
	if ci, ok := s.conns[conn]; ok && !ci.prob { // probation's age is its admission
		ci.last, ci.busy, ci.fresh = time.Now(), busy, false
	}
	s.mu.Unlock()
}

// writing records that the reply to conn's request is being written: the
// request is served, and the connection is no longer busy, so a peer that
// does not take its reply for evictMinIdle counts as idle that long and
// may be evicted at MaxConns. Before, a connection stayed busy through
// its reply write (up to Config.WriteTimeout, 10 s): a hostile tenant's 1,024
// connections, each sending requests and reading none of the replies,
// were all blocked in that write within 2.5 s, none could be evicted,
// and every other client was refused for the next 9 s, again after each
// burst (a hostile trial).
func (s *server) writing(conn net.Conn) {
	s.mu.Lock()
	if ci, ok := s.conns[conn]; ok && !ci.prob {
		ci.last, ci.busy = time.Now(), false
	}
	s.mu.Unlock()
}

// refuse tells a connection over a limit why, logs it (rate-limited per
// limit) and closes it. The refusal is one frame, written at once on a
// plain connection (a fresh socket's buffer takes it without blocking) and
// off the accept loop over TLS (after the handshake). Then the peer's
// request, if it sent one, is read and discarded, so it reads the refusal
// rather than a reset: within a second, for at most maxLingering
// connections at a time (beyond them the connection is closed at once; a
// TLS one then gets nothing).
func (c *Controller) refuse(conn net.Conn, err error) {
	c.srv.logLimited(err)
	frame := wire.AppendControlFrame(nil, wire.OpGoAway.Reply(), 0, wire.CodeOf(err), wire.NewEncoder().ErrorResponse(err))
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	_, isTLS := conn.(*tls.Conn)
	if !isTLS {
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := conn.Write(frame); err != nil {
			conn.Close()
			return
		}
	}
	select {
	case c.srv.linger <- struct{}{}:
	default:
		conn.Close()
		return
	}
	go func() {
		defer func() { <-c.srv.linger }()
		defer conn.Close()
		if isTLS {
			if _, err := conn.Write(frame); err != nil {
				return
			}
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(conn, 1<<20))
	}()
}

// logLimited logs a refusal at most once a second per limit, with the
// number of refusals not logged since.
func (s *server) logLimited(err error) {
	key := wire.CodeOf(err).String()
	var we *wire.Error
	if errors.As(err, &we) {
		if i := limitName(we.Msg); i != "" {
			key = i
		}
	}
	s.logMu.Lock()
	now := time.Now()
	if now.Sub(s.logLast[key]) < time.Second {
		s.logMute[key]++
		s.logMu.Unlock()
		return
	}
	muted := s.logMute[key]
	s.logLast[key], s.logMute[key] = now, 0
	s.logMu.Unlock()
	if muted > 0 {
		s.log.Warn("controller: refused a connection", "err", err, "muted", muted)
	} else {
		s.log.Warn("controller: refused a connection", "err", err)
	}
}

// limitName extracts the parenthesized limit name ("MaxConns 1024") that
// refusal messages end with, so each limit is rate-limited on its own.
func limitName(msg string) string {
	for i := len(msg) - 1; i >= 0; i-- {
		if msg[i] == '(' {
			for j := i + 1; j < len(msg); j++ {
				if msg[j] == ' ' || msg[j] == ')' {
					return msg[i+1 : j]
				}
			}
		}
	}
	return ""
}

// Close stops the listeners, closes every connection and waits for the
// server's goroutines to end.
func (c *Controller) Close() error {
	s := &c.srv
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.done)
		for _, ln := range s.lns {
			ln.Close()
		}
		for conn := range s.conns {
			conn.Close()
		}
		s.mu.Unlock()
	})
	s.wg.Wait()
	return nil
}

// serveConn answers requests on one connection in order until it fails,
// goes idle or the server closes. A frame whose header is bad ends the
// connection after an error reply (the stream cannot be resynchronized);
// a bad table inside a good frame gets an error reply and the connection
// goes on.
func (c *Controller) serveConn(conn net.Conn) {
	defer c.srv.untrack(conn)
	sess := c.newSession(conn)
	if sess == nil {
		return
	}
	r := bufio.NewReader(conn)
	lim := sess.limits()
	b := flatbuffers.NewBuilder(1024)
	var buf, out []byte
	timeout := c.cfg.HandshakeTimeout
	var held largeHold // what this connection's request under way holds (admitLarge)
	defer c.releaseLarge(&held)
	for {
		if err := setReadTimeout(conn, timeout); err != nil {
			return
		}
		h, meta, err := wire.ReadControlFrameAdmitted(r, &lim, buf, func(n int) error { return c.admitLarge(n, &held, sess.proven) })
		if err != nil {
			c.readFailed(conn, &h, err, out)
			c.undoUnread(conn, sess, err)
			return
		}
		buf = wire.ReuseControlBuffer(meta)
		c.srv.touch(conn, true)
		sess.undelivered = nil
		reply, err := c.handle(sess, h.Op, meta, b)
		c.releaseLarge(&held) // the request is decoded: its buffer is let go
		code := wire.CodeOK
		if err == nil && len(reply) > wire.DefaultControlMaxMeta {
			err = wire.Errorf(wire.CodeTooLarge, "%s reply of %d bytes is over the control frame limit %d", h.Op, len(reply), wire.DefaultControlMaxMeta)
			c.undoUndelivered(sess)
		}
		if err != nil {
			code = wire.CodeOf(err)
			reply = wire.NewEncoder().ErrorResponse(err)
		}
		var replyHeld largeHold // a large reply's bytes while it is written (listings.go)
		if c.admitLarge(len(reply), &replyHeld, sess.proven) != nil {
			c.undoUndelivered(sess)
			code, reply = wire.CodeBusy, wire.NewEncoder().ErrorResponse(c.errReplyBusy(h.Op, len(reply)))
		}
		out = wire.AppendControlFrame(out[:0], h.Op.Reply(), h.ID, code, reply)
		c.srv.writing(conn)
		if err := conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout)); err != nil {
			c.releaseLarge(&replyHeld)
			return
		}
		_, werr := conn.Write(out)
		c.releaseLarge(&replyHeld)
		if len(out) > wire.ReadGrowStep || cap(b.Bytes) > wire.ReadGrowStep {
			// A large reply's buffers go with it (listings.go), written or
			// refused: a refused one's builder stayed, 712 MB of it over
			// 900 idle connections in a hostile re-check.
			out, b = nil, flatbuffers.NewBuilder(1024)
		}
		if werr != nil {
			if code == wire.CodeOK {
				c.undoUndelivered(sess)
			}
			return
		}
		if sess.prob && code != wire.CodeOK {
			return // on probation and not a node (server)
		}
		timeout = c.cfg.IdleTimeout
		if sess.prob {
			timeout = c.cfg.HandshakeTimeout
		}
		if code == wire.CodeNotLeader {
			// A follower (or a deposed leader) answers once per
			// connection: the client moves to the leader, and when
			// this controller leads later its clients reconnect to it.
			return
		}
		c.srv.touch(conn, false)
	}
}

// undoUndelivered undoes what the request being served on sess did
// (session.undelivered) when its successful reply cannot reach the peer:
// the write failed (the peer gone, its connection evicted at MaxConns
// while the reply waited unread, Config.WriteTimeout), or the reply was over the
// frame limit and an error went instead.
func (c *Controller) undoUndelivered(sess *session) {
	c.undoLast(sess, "could not be written")
}

// undoLast runs sess.undelivered, once, saying why.
func (c *Controller) undoLast(sess *session, why string) {
	if f := sess.undelivered; f != nil {
		sess.undelivered = nil
		f(why)
	}
}

// unreadWait is how long a connection whose peer closed it after the last
// request's reply was written waits for a reset that says the reply went
// unread (undoUnread): the peer's kernel answers it as soon as the reply
// reaches a socket closed under it, a round trip.
const unreadWait = 200 * time.Millisecond

// undoUnread undoes what the last request on sess did (session.
// undelivered: a registration, whose reply was written) when its reply
// went unread: the read that followed it failed with a reset (the peer
// closed with the reply unread), or found the peer's close and a reset
// comes within unreadWait (the peer closed before the reply reached it).
// A peer that read the reply and then closed leaves no reset. Before, a
// Go client whose registration was cut by its context and whose process
// then exited at once left a live job that nobody held the token of (a
// hostile re-check: 27 of 29 such processes), and the Python client,
// whose call closes its connection on its timeout, likewise.
func (c *Controller) undoUnread(conn net.Conn, sess *session, err error) {
	if sess.undelivered == nil {
		return
	}
	nc := conn
	if tc, ok := conn.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	reset := errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	if !reset && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) && !c.closing() {
		for deadline := time.Now().Add(unreadWait); !reset && time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond)
			reset = sockpeek.Reset(nc)
		}
	}
	if reset {
		c.undoLast(sess, "was left unread (its client closed its connection first)")
	}
	sess.undelivered = nil
}

// readFailed answers a bad header with an error frame; a closed or idle
// connection is logged only when it is not the ordinary end of a peer.
func (c *Controller) readFailed(conn net.Conn, h *wire.Header, err error, out []byte) {
	var we *wire.Error
	var ne net.Error
	switch {
	case errors.As(err, &we):
		out = wire.AppendControlFrame(out[:0], h.Op.Reply(), h.ID, we.Code, wire.NewEncoder().ErrorResponse(err))
		_ = conn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
		conn.Write(out)
	case errors.As(err, &ne) && ne.Timeout():
		// Idle (IdleTimeout) or silent from the start (HandshakeTimeout):
		// the peer reconnects when it needs to.
	case !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
		c.cfg.Logger.Warn("controller: connection", "peer", conn.RemoteAddr().String(), "err", err)
	}
}

// DefaultMaxLargeFrameBytes is Config.MaxLargeFrameBytes' default: 64
// frames of the largest size at once.
const DefaultMaxLargeFrameBytes = 64 * wire.DefaultControlMaxMeta

// largeHold is what one connection's request under way holds of the
// large-frame bounds (admitLarge): of the whole, and of the unproven
// connections' share.
type largeHold struct{ all, unproven int64 }

// releaseLarge gives back what h holds.
func (c *Controller) releaseLarge(h *largeHold) {
	c.largeFrames.Add(-h.all)
	c.unprovenFrames.Add(-h.unproven)
	*h = largeHold{}
}

// unprovenLargeBytes is the share of Config.MaxLargeFrameBytes that the
// connections which have not proved the node role may hold together: a
// quarter, and at least one frame of the largest size.
func (c *Controller) unprovenLargeBytes() int64 {
	return max(c.cfg.MaxLargeFrameBytes/4, wire.DefaultControlMaxMeta)
}

// admitLarge counts a request's metadata of n bytes against
// Config.MaxLargeFrameBytes when it is over wire.ReadGrowStep (a smaller
// one is read into the connection's own small buffer), adding it to
// *held; over the bound it refuses the request. A connection that has not
// proved the node role (proven false) counts against a quarter of it as
// well (unprovenLargeBytes), so peers without the secret cannot hold what
// the nodes' heartbeats need. A refusal is noted as one of the server's
// (noteRefusal): a node whose heartbeat it refused is not declared lost
// meanwhile (dead.go).
//
// Before the bound, every connection could hold a 4 MiB frame under way:
// a hostile trial's 952 connections of a node's certificate took the
// controller from 92 MB to 5.4 GB, and 1,857 connections proved with the
// secret to 8.5 GB. Before the unproven share, on a plain-TCP control
// plane 70 connections with no credential, each sending a challenge and
// then the header of a 4 MiB request and nothing more, held the whole
// bound: the nodes' heartbeats (276 KB each, listing 970 jobs) were
// refused, the controller declared three of four nodes dead, and, with
// nothing noted as refused, took them out of every job's map after the
// dead-node grace (a hostile trial: every job's values lost).
func (c *Controller) admitLarge(n int, held *largeHold, proven bool) error {
	if n <= wire.ReadGrowStep {
		return nil
	}
	if !proven {
		if c.unprovenFrames.Add(int64(n)) > c.unprovenLargeBytes() {
			c.unprovenFrames.Add(-int64(n))
			c.srv.noteRefusal(time.Now())
			return wire.Errorf(wire.CodeBusy, "the controller holds %d bytes of large requests under way from connections that have not "+
				"proved the node role (a quarter of MaxLargeFrameBytes): a request of %d bytes waits for the next try "+
				"(a node proves the role with OpNodeHello first)", c.unprovenLargeBytes(), n)
		}
		held.unproven += int64(n)
	}
	if c.largeFrames.Add(int64(n)) > c.cfg.MaxLargeFrameBytes {
		c.largeFrames.Add(-int64(n))
		c.srv.noteRefusal(time.Now())
		c.releaseLarge(held)
		return wire.Errorf(wire.CodeBusy, "the controller holds %d bytes of large requests under way (MaxLargeFrameBytes): "+
			"a request of %d bytes waits for the next try", c.cfg.MaxLargeFrameBytes, n)
	}
	held.all += int64(n)
	return nil
}

// setReadTimeout sets the deadline for the next frame; d < 0: none.
func setReadTimeout(conn net.Conn, d time.Duration) error {
	if d < 0 {
		return conn.SetReadDeadline(time.Time{})
	}
	return conn.SetReadDeadline(time.Now().Add(d))
}

// closingContext is cancelled when the controller closes, so drop-job
// exchanges do not hold up Close for their whole timeout.
func (c *Controller) closingContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.srv.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}
