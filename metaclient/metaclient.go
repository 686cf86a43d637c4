// Package metaclient is the Go client of the controller (package
// controller). Storage nodes use it to register and heartbeat (RunNode);
// the SDK and the CLI use it to register and deregister jobs, fetch
// placement maps and read the cluster's status.
//
// A Client of one controller holds at most one TCP connection for its
// calls, dialed on first use and re-dialed after any failure, so a
// controller that restarts is simply reconnected to. Calls are serialized
// over the connection (the control plane carries a few messages a second,
// never data); a call waits for the one before it only until its own
// context ends, and then returns without having written anything. RunNode
// registers and heartbeats over a connection of its own (see RunNode), so
// that no other call of the node can hold its heartbeats back. Before a
// call that is not idempotent (anything but OpGetMap, OpStatus,
// OpListJobs and OpJobProfile) goes out on a connection that had served, the client checks
// that the controller has not closed it (a restart between calls) and
// dials anew if it has. An idempotent call that fails on such a
// connection is retried once at once on a fresh one. A call that is not
// idempotent is sent again only when none of its bytes were written (the
// dial, or the write, failed first); once written, a lost connection
// returns an *OutcomeUnknownError (errors.Is ErrOutcomeUnknown) saying the
// controller may have acted on it, so a job is never registered twice.
//
// # Retries while the controller is away
//
// After that, a call is retried with a backoff (50 ms, doubling to 1 s)
// until its context's deadline (or Options.RetryFor) when retrying is
// safe: nothing of the request was written and the controller refused or
// lost the connection (ECONNREFUSED, or a reset, EOF or broken pipe
// while dialing, in the TLS handshake or before the request went out: a
// controller killed or restarting), so any op may be repeated; or the op
// is idempotent (OpGetMap, OpStatus, OpListJobs, OpJobProfile). So a
// worker that starts, or fetches a map, while the controller restarts
// waits for it instead of failing. Every transport error of a call that is not
// idempotent is classified: after a byte of its request was written it
// is an *OutcomeUnknownError; before, the error says the request was not
// sent (the controller did not act on it).
//
// # Several controllers
//
// New given a comma-separated list ("a:7070,b:7070,c:7070", as in
// --controller and POCKET_CONTROLLER) returns a Client whose every call
// goes through Controllers: to the elected controller, following "not
// leader" answers and moving past unreachable controllers until the
// call's context ends. New given one address follows a "not leader"
// answer too: the first such answer (a standby's) sends this and every
// later call through Controllers, to the active controller it names; one
// without a leader (an election in progress) is waited out like a list's,
// and the call's error then gives NoLeaderHint (not with a negative
// Options.RetryFor: the answer is returned as it is).
//
// # A stopped controller
//
// A controller process that is stopped or cut off answers nothing while
// its kernel still accepts connections. A call that has waited for its
// reply probes the controller with a new connection, and ends with
// ErrUnresponsive when that meets silence, if its wait is safe to cut
// (see ErrUnresponsive); so does a TLS handshake that does not finish. A
// job's registration or deregistration, or a drain, asks for a challenge
// first, so a controller stopped before fails it unsent, and Controllers
// moves on to the next controller.
//
// Node and drain messages prove the cluster secret for the connection
// they travel on: the client asks the controller for a challenge nonce
// (wire.OpChallenge) on each new connection and sends token.NodeProof or
// token.DrainProof over it, so a recorded message is worth nothing on
// another connection. A client that runs RunNode is a node's: each of its
// connections (and those of the clients it makes to follow other
// controllers) proves the node role before its first call (see RunNode). With Options.TLS the client speaks TLS and presents
// its certificate, whose role the controller checks (internal/pki).
//
// A controller that refuses a connection (a connection limit) writes one
// error frame with request id 0 before closing it; the call returns that
// error (wire.CodeLimit, naming the limit).
package metaclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// EnvController is the environment variable naming the controller's
// address for the CLI and SDK.
const EnvController = "POCKET_CONTROLLER"

// Options configures a Client. Zero fields take defaults.
type Options struct {
	// Secret is the cluster secret; nodes and operators need it to prove
	// themselves (token.NodeProof, token.DrainProof). Job clients leave
	// it empty.
	Secret []byte
	// TLS, when set, makes the client dial the controller over TLS with
	// this configuration (internal/pki's ClientConfig: the member's
	// certificate and the cluster CA). ServerName defaults to the
	// address's host.
	TLS *tls.Config
	// DialTimeout bounds connecting (3 s).
	DialTimeout time.Duration
	// CallTimeout bounds a call whose context has no deadline (15 s; a
	// deregistration waits for every node of the job).
	CallTimeout time.Duration
	// Logger reports RunNode's connection changes (nil: slog.Default()).
	// A node passes its own logger, which carries its address.
	Logger *slog.Logger
	// LocalIP is the address to dial from (empty: the system's choice),
	// for hosts with several addresses, and for tests that stand for
	// several clients on loopback.
	LocalIP string
	// RetryFor bounds how long a call keeps retrying a controller that
	// refuses connections, or an idempotent call whose connection failed
	// (0: until the call's context ends; negative: no such retry). A
	// command-line tool sets a few seconds so that a missing controller
	// is reported promptly. Negative also makes a client of one address
	// return that controller's "not leader" answer rather than follow it
	// (for Controllers' own clients, and tests of a controller itself).
	RetryFor time.Duration

	// node is shared by a client and the clients made from it (New's
	// Controllers, following a "not leader" answer); set by newOne.
	node *nodeRole
}

// nodeRole is the address of the node whose loop (RunNode) runs on a
// client, empty until it starts: each connection of the client, and of
// the clients sharing its nodeRole, then proves the node role as that
// address (OpNodeHello) before its first call.
type nodeRole struct{ addr atomic.Pointer[string] }

// get returns the node's address, or "" for a client that is no node's.
func (r *nodeRole) get() string {
	if r == nil {
		return ""
	}
	if p := r.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// claim makes the client a node's, as addr; the first RunNode's address
// stays.
func (r *nodeRole) claim(addr string) { r.addr.CompareAndSwap(nil, &addr) }

// ErrOutcomeUnknown matches (errors.Is) an *OutcomeUnknownError.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// OutcomeUnknownError is returned when the connection failed after a call
// that is not idempotent (a job registration or deregistration, a drain, a
// node's registration or heartbeat) was written: the controller may or may
// not have acted on it, so it is not sent again (but see
// ErrControllerTLS: a plain TCP request a TLS controller never read). Err
// is the transport error.
type OutcomeUnknownError struct {
	Op   wire.Op
	Addr string
	Err  error
	// Undo is set for a job registration whose call ended (its
	// context) before the answer, on a connection still whole: the
	// answer is awaited in the background for up to Options.CallTimeout,
	// and a job it names deregistered (undoLate).
	Undo bool
}

func (e *OutcomeUnknownError) Error() string {
	hint := outcomeHint(e.Op)
	if e.Undo {
		hint = "the controller may have registered the job; if it did, its answer is awaited in the background and the job deregistered"
	}
	return fmt.Sprintf("metaclient: %s %s: the connection failed after the request was sent, so its outcome is unknown (%s): %v",
		e.Op, e.Addr, hint, e.Err)
}

// Unwrap returns the transport error.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// Is matches ErrOutcomeUnknown.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }

// outcomeHint says what the controller may have done with op.
func outcomeHint(op wire.Op) string {
	switch op {
	case wire.OpRegisterJob:
		return "the controller may have registered the job; check pocket status"
	case wire.OpDeregisterJob:
		return "the controller may have deregistered the job; check pocket status"
	case wire.OpDrainNode:
		return "the controller may have started the drain; check pocket status"
	}
	return "the controller may have acted on it"
}

// ErrClosed is returned by calls on a closed Client. It carries
// wire.CodeClosed, the one definition of "closed": errors.Is matches it
// against wire.ErrClosed and every other package's ErrClosed, and its
// message says it was this side that closed.
var ErrClosed error = &wire.Error{Code: wire.CodeClosed, Msg: "control client closed"}

// Client talks to one controller, or through Controllers to the elected
// one of several (see New). It is safe for concurrent use.
type Client struct {
	addr  string
	opt   Options
	route *Controllers // set for a list of controllers: calls go through it
	// follow is set, for one address, once it answered "not leader":
	// calls then go through it, to the leader that answer named.
	follow atomic.Pointer[Controllers]
	bad    error         // a list New could not parse, returned by every call
	done   chan struct{} // closed by Close: ends retry waits
	once   sync.Once

	// mu holds one token, taken by a call (lock, lockCtx) and by Close: it
	// serializes calls and guards the fields below.
	mu     chan struct{}
	conn   net.Conn
	r      *bufio.Reader
	nonce  []byte // the connection's challenge, once asked for
	hello  bool   // the connection proved the node role (helloNode)
	b      *flatbuffers.Builder
	id     uint64
	buf    []byte
	out    []byte
	wrote  bool // some byte of the last roundTrip's request was written
	broken bool // a write on conn failed: its TLS record stream is corrupt
	closed bool
	beats  map[*Client]struct{} // the clients of running RunNode loops

	// wroteAll: all of the last roundTrip's request was written;
	// replied: its reply began to be read (undoLate takes the
	// connection only when it still ends at the request's unread answer).
	wroteAll, replied bool
}

// New returns a client of the controller at addr (host:port), or of the
// controllers of a comma-separated list of them (ParseControllers; a list
// that does not parse makes every call fail with the parse error). It
// does not connect until the first call.
func New(addr string, opt Options) *Client {
	if !strings.Contains(addr, ",") {
		return newOne(addr, opt)
	}
	c := newOne(addr, opt)
	addrs, err := ParseControllers(addr)
	if err != nil {
		c.bad = err
		return c
	}
	c.route, _ = NewControllers(addrs, c.opt) // its clients share c's nodeRole
	return c
}

// newOne returns a client of one controller.
func newOne(addr string, opt Options) *Client {
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = 3 * time.Second
	}
	if opt.CallTimeout <= 0 {
		opt.CallTimeout = 15 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.node == nil {
		opt.node = new(nodeRole)
	}
	return &Client{addr: addr, opt: opt, b: flatbuffers.NewBuilder(1024), done: make(chan struct{}), mu: make(chan struct{}, 1)}
}

// lock takes c's lock, waiting for the call that holds it.
func (c *Client) lock() { c.mu <- struct{}{} }

// unlock releases c's lock.
func (c *Client) unlock() { <-c.mu }

// lockCtx takes c's lock unless ctx ends first, and then returns ctx's
// error: a call does not outlive its deadline waiting for another call to
// finish.
func (c *Client) lockCtx(ctx context.Context) error {
	select {
	case c.mu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Addr returns the controller's address, or the list New was given.
func (c *Client) Addr() string { return c.addr }

// Leader returns the address calls go to first: the controller's, or for
// a list, or a controller that answered "not leader", the one that last
// answered as the leader.
func (c *Client) Leader() string {
	if c.route != nil {
		return c.route.Leader()
	}
	if f := c.follow.Load(); f != nil {
		return f.Leader()
	}
	return c.addr
}

// Close closes the connection (every connection, for a list); later calls
// return ErrClosed.
func (c *Client) Close() error {
	c.once.Do(func() { close(c.done) })
	c.lock()
	defer c.unlock()
	c.closed = true
	for b := range c.beats {
		b.Close()
	}
	if c.route != nil {
		return c.route.Close()
	}
	if f := c.follow.Load(); f != nil {
		f.Close()
	}
	c.dropConn()
	return nil
}

// dropConn closes the connection. After a failed write on a TLS
// connection it closes the TCP connection under it without TLS's
// close_notify: the failed write may have sealed a record it never sent,
// so an alert sealed after it would reach the controller out of sequence
// and fail its integrity check (the controller would log "tls: bad record
// MAC").
func (c *Client) dropConn() {
	if c.conn == nil {
		return
	}
	if tc, ok := c.conn.(*tls.Conn); ok && c.broken {
		tc.NetConn().Close()
	} else {
		c.conn.Close()
	}
	c.conn, c.r, c.nonce, c.hello, c.broken = nil, nil, nil, false, false
}

// RegisterJob registers a job with its hints and returns its map, which
// carries the job's token.
func (c *Client) RegisterJob(ctx context.Context, name string, h wire.JobHints) (*wire.PlacementMap, error) {
	return c.Register(ctx, &wire.JobRegister{Name: name, Hints: h})
}

// Register sends a whole registration: name, hints and TTL (the token's
// lifetime; 0: the controller's default).
func (c *Client) Register(ctx context.Context, req *wire.JobRegister) (*wire.PlacementMap, error) {
	var m wire.PlacementMap
	err := c.call(ctx, wire.OpRegisterJob, req, &m)
	return &m, err
}

// DeregisterJob ends a job: its nodes drop its data (except persistent
// keys) and the controller forgets it. tok is the job's token.
func (c *Client) DeregisterJob(ctx context.Context, job string, tok []byte) (*wire.DropResult, error) {
	var r wire.DropResult
	err := c.call(ctx, wire.OpDeregisterJob, &wire.JobRef{Job: job, Token: tok}, &r)
	return &r, err
}

// EndJob deregisters job by the operator's authority, without its token
// (a job whose client lost it): the request carries
// token.EndJobProof with Options.Secret over the connection's challenge,
// and the controller takes it from a peer holding the operator role only.
// The result is DeregisterJob's; a job not live answers
// wire.CodeUnknownJob.
func (c *Client) EndJob(ctx context.Context, job string) (*wire.DropResult, error) {
	var r wire.DropResult
	err := c.callProved(ctx, wire.OpDeregisterJob, func(nonce []byte) wire.ControlMessage {
		return &wire.JobRef{Job: job, Proof: token.EndJobProof(c.opt.Secret, nonce, job)}
	}, &r)
	return &r, err
}

// GetMap fetches a job's current map, after a node reports a newer epoch.
func (c *Client) GetMap(ctx context.Context, job string, tok []byte) (*wire.PlacementMap, error) {
	var m wire.PlacementMap
	err := c.call(ctx, wire.OpGetMap, &wire.JobRef{Job: job, Token: tok}, &m)
	return &m, mapOf(job, &m, err)
}

// mapOf checks that a map answered for job is job's: one of another job
// (a broken or hostile controller) would send the job's requests, with
// its token, to that job's nodes. Before, it was taken (a hostile trial).
func mapOf(job string, m *wire.PlacementMap, err error) error {
	if err == nil && m.Job != job {
		return wire.Errorf(wire.CodeMalformed, "the controller answered the map of job %q for job %q", m.Job, job)
	}
	return err
}

// GetMapOrEnded is GetMap that also takes an ended job's final map
// (wire.JobRef.EndedOK): for a job that ended (deregistered or expired)
// while nodes keep its persisted values, a controller that kept its map
// answers it with Ended set, when tok is the job's token (expired or
// not). A controller that kept none, or predates the field, answers
// CodeUnknownJob, as GetMap does.
func (c *Client) GetMapOrEnded(ctx context.Context, job string, tok []byte) (*wire.PlacementMap, error) {
	var m wire.PlacementMap
	err := c.call(ctx, wire.OpGetMap, &wire.JobRef{Job: job, Token: tok, EndedOK: true}, &m)
	return &m, mapOf(job, &m, err)
}

// Status lists the cluster's nodes, the number of jobs and the first jobs
// (ListJobs pages through the rest, from the reply's NextJob).
func (c *Client) Status(ctx context.Context) (*wire.ClusterStatus, error) {
	var s wire.ClusterStatus
	err := c.call(ctx, wire.OpStatus, nil, &s)
	return &s, err
}

// ListJobs returns a page of up to limit jobs (0: the controller's page
// size) registered after the cursor `after` (0: from the first); the
// reply's NextJob is the next page's cursor, 0 after the last page.
func (c *Client) ListJobs(ctx context.Context, after uint64, limit uint32) (*wire.ClusterStatus, error) {
	var s wire.ClusterStatus
	err := c.call(ctx, wire.OpListJobs, &wire.JobList{After: after, Limit: limit}, &s)
	return &s, err
}

// JobProfile fetches what the controller learned from the ended jobs of
// job name (a registered name like "sort", not a job id): the runs it
// keeps, newest first (each with its job id, end time, duration, peak
// Mb/s and bytes, tier, allotted Mb/s and bytes, and peaks per phase),
// and the size the next job of the name registered without size hints
// gets under the controller's own policy (Mb/s, bytes, and the runs'
// estimate it comes from). Bandwidths are Mb/s (10^6 bits a second),
// times and durations have millisecond resolution. It is a read, retried
// like Status. Errors: wire.ErrNotFound (errors.Is) when the name has no
// profile yet, the message saying how profiles are recorded; wire.ErrBadKey
// for a name registration would refuse; wire.ErrBadToken over TLS without
// the operator's certificate; transport errors as for any call.
func (c *Client) JobProfile(ctx context.Context, name string) (*wire.JobProfile, error) {
	var p wire.JobProfile
	err := c.call(ctx, wire.OpJobProfile, &wire.JobProfileRequest{Name: name}, &p)
	return &p, err
}

// RegisterNode registers a storage node. The proof is computed from
// Options.Secret and the connection's challenge when reg.Proof is empty.
func (c *Client) RegisterNode(ctx context.Context, reg wire.NodeRegister) (*wire.NodeAck, error) {
	var ack wire.NodeAck
	given := reg.Proof
	err := c.callProved(ctx, wire.OpRegisterNode, func(nonce []byte) wire.ControlMessage {
		reg.Proof = given
		if len(given) == 0 {
			reg.Proof = token.NodeProof(c.opt.Secret, nonce, reg.Addr)
		}
		return &reg
	}, &ack)
	return &ack, err
}

// Heartbeat sends one node report. The proof is computed from
// Options.Secret and the connection's challenge when hb.Proof is empty. An
// ack with Known false means the node must register again.
func (c *Client) Heartbeat(ctx context.Context, hb wire.Heartbeat) (*wire.NodeAck, error) {
	var ack wire.NodeAck
	given := hb.Proof
	err := c.callProved(ctx, wire.OpHeartbeat, func(nonce []byte) wire.ControlMessage {
		hb.Proof = given
		if len(given) == 0 {
			hb.Proof = token.NodeProof(c.opt.Secret, nonce, hb.Addr)
		}
		return &hb
	}, &ack)
	return &ack, err
}

// Drain asks the controller to drain the node at nodeAddr within deadline
// (0: the controller's default) and returns the deadline it applied. The
// order is proved with Options.Secret over the connection's challenge
// (token.DrainProof): only an operator holding the secret can take nodes
// away, and a node's own proofs never pass as a drain order.
func (c *Client) Drain(ctx context.Context, nodeAddr string, deadline time.Duration) (time.Duration, error) {
	return c.DrainOrder(ctx, nodeAddr, deadline, 0)
}

// DrainOrder is Drain with the order's choices, a set of token.Drain*
// flags (the proof is token.DrainOrderProof with them):
//
//   - token.DrainDiscard lets the drain go ahead on a node that keeps
//     persist-after-job values of ended jobs, destroying them when it
//     leaves (wire.DrainNode.DiscardPersisted); without it the controller
//     refuses such a drain (wire.CodeConflict, naming the jobs and bytes);
//   - token.DrainLoseOverflow lets it go ahead when the nodes that would
//     take the node's values cannot hold them all, losing what does not
//     fit (wire.DrainNode.LoseOverflow); without it the controller refuses
//     such a drain (wire.CodeNoSpace, naming the node that would overflow).
func (c *Client) DrainOrder(ctx context.Context, nodeAddr string, deadline time.Duration, flags uint64) (time.Duration, error) {
	var resp wire.DrainNode
	err := c.callProved(ctx, wire.OpDrainNode, func(nonce []byte) wire.ControlMessage {
		return &wire.DrainNode{Addr: nodeAddr, Deadline: deadline,
			DiscardPersisted: flags&token.DrainDiscard != 0, LoseOverflow: flags&token.DrainLoseOverflow != 0,
			Proof: token.DrainOrderProof(c.opt.Secret, nonce, nodeAddr, deadline.Milliseconds(), flags)}
	}, &resp)
	return resp.Deadline, err
}

// call sends one request and decodes its reply into resp. req may be nil
// (a request without metadata). An error reply is returned as a
// *wire.Error; transport failures are wrapped with the op and address.
func (c *Client) call(ctx context.Context, op wire.Op, req, resp wire.ControlMessage) error {
	return c.do(ctx, op, false, func([]byte) wire.ControlMessage { return req }, resp)
}

// callProved is call for a request whose proof covers the connection's
// challenge: build makes the request for the nonce.
func (c *Client) callProved(ctx context.Context, op wire.Op, build func(nonce []byte) wire.ControlMessage, resp wire.ControlMessage) error {
	return c.do(ctx, op, true, build, resp)
}

func (c *Client) do(ctx context.Context, op wire.Op, proved bool, build func(nonce []byte) wire.ControlMessage, resp wire.ControlMessage) error {
	if c.bad != nil {
		return c.bad
	}
	via := func(one *Client) error { return one.do(ctx, op, proved, build, resp) }
	if c.route != nil {
		return c.route.Do(ctx, via)
	}
	if f := c.follow.Load(); f != nil {
		return f.Do(ctx, via)
	}
	err := c.doOne(ctx, op, proved, build, resp)
	if c.opt.RetryFor < 0 || !isNotLeader(err) {
		return err
	}
	f, err := c.following(leaderNamed(err))
	if err != nil {
		return err
	}
	return f.Do(ctx, via)
}

// isNotLeader reports whether err is a controller's "not leader" answer.
func isNotLeader(err error) bool {
	var we *wire.Error
	return errors.As(err, &we) && we.Code == wire.CodeNotLeader
}

// following returns the Controllers that c's calls go through after its
// controller answered "not leader" (a standby: the answer names the
// active one, or none during an election), made on first use: leader,
// when the answer named one, is tried first.
func (c *Client) following(leader string) (*Controllers, error) {
	c.lock()
	defer c.unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if f := c.follow.Load(); f != nil {
		return f, nil
	}
	addrs := []string{c.addr}
	if leader != "" && leader != c.addr {
		addrs = []string{leader, c.addr}
	}
	f, err := NewControllers(addrs, c.opt)
	if err != nil {
		return nil, err
	}
	f.single = true
	c.follow.Store(f)
	return f, nil
}

// doOne is one controller's call, with its retries.
func (c *Client) doOne(ctx context.Context, op wire.Op, proved bool, build func(nonce []byte) wire.ControlMessage, resp wire.ControlMessage) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opt.CallTimeout)
		defer cancel()
	}
	until := c.retryUntil(ctx)
	wait := retryFirst
	var why error // the last failure that was not the deadline's
	probed := false
	for attempt := 0; ; attempt++ {
		reused, sent, err := c.attempt(ctx, op, proved, build, resp)
		if busyListing(op, err) && c.pause(ctx, wait, until) {
			wait = min(2*wait, retryCap(ctx))
			continue
		}
		if err == nil || !isTransport(err) {
			return err
		}
		if mis := c.mismatch(ctx, reused, err, &probed); mis != nil {
			// Nothing done, whether sent (a TLS controller read the
			// plain request as a bad handshake) or not.
			return fmt.Errorf("metaclient: %s %s: %w", op, c.addr, mis)
		}
		if sent && !idempotent(op) {
			var undo undoingError
			return &OutcomeUnknownError{Op: op, Addr: c.addr, Err: err, Undo: errors.As(err, &undo)}
		}
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			if why != nil && !sent {
				// An attempt the deadline cut short says nothing the
				// earlier ones did not: report why they failed (say the
				// address refuses), not "i/o timeout" (pause stops retries
				// that would begin as ctx ends; a loaded machine may still
				// start one too late).
				return c.transportErr(op, why)
			}
			return c.transportErr(op, err)
		}
		why = err
		if reused && attempt == 0 && !errors.Is(err, ErrUnresponsive) {
			continue // the connection had served: retry at once on a new one
		}
		if !retrySafe(op, sent, err) || !c.pause(ctx, wait, until) {
			return c.transportErr(op, err)
		}
		wait = min(2*wait, retryCap(ctx))
	}
}

// busyListing reports whether err is the controller's busy answer to a
// listing (status, a page of jobs, a profile), which it builds a few at a
// time (controller/listings.go): asked again, within the call's retry
// bound, as a refused connection is. Nothing was done.
func busyListing(op wire.Op, err error) bool {
	if op != wire.OpStatus && op != wire.OpListJobs && op != wire.OpJobProfile {
		return false
	}
	var we *wire.Error
	return errors.As(err, &we) && we.Code == wire.CodeBusy
}

// Retry backoff: the first pause, doubling up to the last.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = time.Second
)

// retryCapKey is the context key of a call's cap on the pause between
// retries (withRetryCap).
type retryCapKey struct{}

// withRetryCap caps the pauses between ctx's call's retries at d: the
// node loop's calls are retried at least every heartbeat interval, as
// the loop itself would, so a node whose controller comes back is heard
// from before it counts as dead.
func withRetryCap(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, retryCapKey{}, d)
}

// retryCap is the longest pause between a call's retries: retryMax, or
// less when the call's context says so.
func retryCap(ctx context.Context) time.Duration {
	if d, ok := ctx.Value(retryCapKey{}).(time.Duration); ok && d > 0 && d < retryMax {
		return d
	}
	return retryMax
}

// attempt makes one exchange under c's lock and decodes its reply; it
// drops the connection after a transport error and reports whether the
// connection had been used before and whether any byte of op's request
// was written (so the controller may have acted on it). When ctx ends
// before the lock is free (another call holds the connection), it returns
// ctx's error having written nothing.
func (c *Client) attempt(ctx context.Context, op wire.Op, proved bool, build func(nonce []byte) wire.ControlMessage, resp wire.ControlMessage) (reused, sent bool, err error) {
	if err := c.lockCtx(ctx); err != nil {
		return false, false, fmt.Errorf("%w (waiting for another call on the connection)", err)
	}
	defer c.unlock()
	if c.closed {
		return false, false, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return false, false, err // nothing written: the connection stays
	}
	if !idempotent(op) {
		c.dropIfClosed()
	}
	reused = c.conn != nil
	rmeta, sent, err := c.exchange(ctx, op, proved, build)
	if err == nil {
		return reused, sent, resp.Decode(rmeta)
	}
	if op == wire.OpRegisterJob && sent && c.answerable(ctx, err) {
		c.undoLate()
		return reused, sent, undoingError{err}
	}
	if isTransport(err) || closedAfter(err) {
		c.dropConn()
	}
	return reused, sent, err
}

// closedAfter reports whether err is an answer after which the controller
// closes the connection (controller's server): "not leader" (a follower
// answers once per connection) and a limit's refusal (a connection
// admitted over its limits is served only as a node's). The client drops
// it at once. Before, it kept it, and its next call went out on it unless
// dropIfClosed's short look saw the close in time: on a busy machine a
// registration sent after a follower's answer failed with its outcome
// unknown (TestFollowerAnswersNotLeader, TestHAFailover under -race).
func closedAfter(err error) bool {
	var we *wire.Error
	return errors.As(err, &we) && (we.Code == wire.CodeNotLeader || we.Code == wire.CodeLimit)
}

// probeWait is how long dropIfClosed waits for the peer's close.
const probeWait = time.Millisecond

// dropIfClosed drops the connection when the controller has closed it
// (a restart since the last call) or sent something unasked, so that a
// request that must not be sent twice goes out on a fresh connection
// rather than on one that will fail after it is written.
func (c *Client) dropIfClosed() {
	if c.conn == nil {
		return
	}
	// A deadline already past would fail the read before trying it.
	c.conn.SetReadDeadline(time.Now().Add(probeWait))
	_, err := c.r.Peek(1)
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		c.dropConn()
	}
}

// isTransport reports whether err is a failure to reach the controller or
// read its answer, rather than its answer (a *wire.Error).
func isTransport(err error) bool {
	var we *wire.Error
	return !errors.As(err, &we)
}

// retrySafe reports whether a call may be sent again after err: op is
// idempotent, or nothing of it was sent (sent is false) and the
// controller refused or lost the connection (connLost), which a
// controller restarting does, or answered nothing (ErrUnresponsive: a
// client of one controller waits for it, within its context, as for
// one restarting; a review saw a deregistration fail at 2.5 s through a
// 4 s pause).
func retrySafe(op wire.Op, sent bool, err error) bool {
	return idempotent(op) || !sent && (connLost(err) || errors.Is(err, ErrUnresponsive))
}

// connLost reports whether err is the controller refusing or dropping
// the connection (refused, reset, aborted, a broken pipe, an early EOF),
// not a timeout or a TLS refusal (a certificate not trusted), which
// trying again would not mend.
func connLost(err error) bool {
	for _, e := range []error{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE, io.EOF, io.ErrUnexpectedEOF} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// transportErr is the error of op that failed on err, a transport error
// (isTransport) after which op is not sent again, with the op and the
// controller's address; for an op that is not idempotent (err came
// before any byte of it was written: doOne returns an
// *OutcomeUnknownError otherwise) it says that the controller did not
// act on it.
func (c *Client) transportErr(op wire.Op, err error) error {
	if idempotent(op) {
		return fmt.Errorf("metaclient: %s %s: %w", op, c.addr, err)
	}
	return fmt.Errorf("metaclient: %s %s: %w (the request was not sent: the controller did not act on it)", op, c.addr, err)
}

// idempotent reports whether sending op twice does what sending it once
// does: the reads.
func idempotent(op wire.Op) bool {
	switch op {
	case wire.OpGetMap, wire.OpStatus, wire.OpListJobs, wire.OpJobProfile:
		return true
	}
	return false
}

// retryUntil is when retries stop: the context's deadline, or sooner by
// Options.RetryFor (zero time: no retry).
func (c *Client) retryUntil(ctx context.Context) time.Time {
	dl, _ := ctx.Deadline()
	switch r := c.opt.RetryFor; {
	case r < 0:
		return time.Time{}
	case r > 0:
		if lim := time.Now().Add(r); lim.Before(dl) {
			return lim
		}
	}
	return dl
}

// pause waits d, or until until if that is sooner, before a retry, and
// reports false (no retry) when until has passed, or ctx ends or the
// client closes meanwhile.
func (c *Client) pause(ctx context.Context, d time.Duration, until time.Time) bool {
	left := time.Until(until)
	if until.IsZero() || left <= 0 {
		return false
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Add(min(d, left)).Before(dl) {
		// A retry would start as ctx ends and fail as "i/o timeout",
		// hiding why the attempts failed (say the address refuses).
		return false
	}
	t := time.NewTimer(min(d, left))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-c.done:
	}
	return false
}

// exchange sends the request on the connection (dialing first if there is
// none, and asking for a challenge first when the request is proved) and
// returns the reply's metadata, valid until the next call, and whether
// any byte of op's request was written.
func (c *Client) exchange(ctx context.Context, op wire.Op, proved bool, build func(nonce []byte) wire.ControlMessage) ([]byte, bool, error) {
	if err := c.dial(ctx); err != nil {
		return nil, false, err
	}
	if err := c.helloNode(ctx); err != nil {
		return nil, false, err
	}
	if !cuttable(op) {
		// A request whose wait is not cut once written (a job's
		// registration or deregistration, a drain) goes out just after
		// the controller answered on the connection (a fresh challenge,
		// whose wait is cut): a controller that answers nothing (a
		// stopped process) fails it unsent (ErrUnresponsive), so it moves
		// on to another controller. Before, one written on a pooled
		// connection to a stopped leader ended with its outcome unknown
		// (an HA trial).
		c.nonce = nil
	}
	if proved || !cuttable(op) {
		if err := c.challenge(ctx); err != nil {
			return nil, false, err
		}
	}
	var meta []byte
	if req := build(c.nonce); req != nil {
		meta = req.Encode(c.b)
	}
	c.wrote = false // the challenge's write is not op's
	rmeta, err := c.roundTrip(ctx, op, meta)
	return rmeta, c.wrote, err
}

// challenge asks for the connection's challenge nonce unless it has one.
func (c *Client) challenge(ctx context.Context) error {
	if c.nonce != nil {
		return nil
	}
	rmeta, err := c.roundTrip(ctx, wire.OpChallenge, (&wire.Challenge{}).Encode(c.b))
	if err != nil {
		return err
	}
	var ch wire.Challenge
	if err := ch.Decode(rmeta); err != nil {
		return err
	}
	c.nonce = ch.Nonce
	return nil
}

// helloNode proves the node role on a node's client's connection that has
// not yet (wire.OpNodeHello: token.NodeProof over the connection's
// challenge and the node's address), so the controller serves it as a
// node's: outside MaxConns, never evicted for idleness, served when it was
// admitted on probation over MaxConns. Without it a node's map fetches
// would go over a plain connection, which a flood of busy connections
// evicts and then keeps on probation, where a map fetch is refused. A
// controller that does not know the op (an older one) answers
// CodeUnknownOp, and the connection goes on as a plain one. It returns
// the controller's refusal of the proof (a wrong secret, a certificate
// without the node role) or a transport error.
func (c *Client) helloNode(ctx context.Context) error {
	addr := c.opt.node.get()
	if addr == "" || c.hello {
		return nil
	}
	if err := c.challenge(ctx); err != nil {
		return err
	}
	req := wire.NodeHello{Addr: addr, Proof: token.NodeProof(c.opt.Secret, c.nonce, addr)}
	if _, err := c.roundTrip(ctx, wire.OpNodeHello, req.Encode(c.b)); err != nil && wire.CodeOf(err) != wire.CodeUnknownOp {
		return err
	}
	c.hello = true
	return nil
}

// dial connects when there is no connection, over TLS with Options.TLS
// (its handshake bounded as handshake says).
func (c *Client) dial(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	conn, err := c.dialRaw(ctx, c.addr)
	if err != nil {
		return err
	}
	if err := handshake(ctx, conn); err != nil {
		conn.Close()
		return err
	}
	c.conn, c.r, c.nonce, c.hello = conn, bufio.NewReader(conn), nil, false
	return nil
}

// roundTrip writes one frame and reads its reply on the connection. The
// reply's metadata is valid until the next call.
func (c *Client) roundTrip(ctx context.Context, op wire.Op, meta []byte) ([]byte, error) {
	conn := c.conn
	dl, _ := ctx.Deadline()
	if err := conn.SetDeadline(dl); err != nil {
		return nil, err
	}
	// Cancelling ctx interrupts a blocked read or write.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var w *watch
	if cuttable(op) {
		w = c.watch(ctx, conn)
	}
	c.id++
	c.out = wire.AppendControlFrame(c.out[:0], op, c.id, wire.CodeOK, meta)
	n, err := conn.Write(c.out)
	c.wrote, c.wroteAll, c.replied = n > 0, err == nil && n == len(c.out), false
	if err != nil {
		c.broken = true
		if w.stop() && errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, ErrUnresponsive // the probe's cut
		}
		return nil, ctxErr(ctx, err)
	}
	if afterWrite != nil {
		afterWrite(op)
	}
	lim := wire.ControlLimits()
	h, rmeta, err := c.readReply(&lim)
	if w.stop() && errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, ErrUnresponsive // the probe's cut
	}
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			// A bad header leaves the stream unusable: not the
			// controller's answer, so not returned as one.
			return nil, fmt.Errorf("bad reply frame: %v", err)
		}
		return nil, ctxErr(ctx, err)
	}
	c.buf = wire.ReuseControlBuffer(rmeta)
	if h.ID == 0 && h.Op == wire.OpGoAway.Reply() {
		// The controller refused the connection (a limit) and closed it.
		err := wire.ReplyError(&h, rmeta)
		if err == nil {
			err = wire.Errorf(wire.CodeClosed, "controller closed the connection")
		}
		c.dropConn()
		return nil, err
	}
	if h.Op != op.Reply() || h.ID != c.id {
		return nil, fmt.Errorf("reply %s id %d to request %s id %d", h.Op, h.ID, op, c.id)
	}
	if err := wire.ReplyError(&h, rmeta); err != nil {
		return nil, err
	}
	return rmeta, nil
}

// afterWrite, when not nil, runs between a request's write and the read
// of its reply (tests: a stall of the client's process there).
var afterWrite func(wire.Op)

// arrivedWait bounds the look for a reply already received (readReply).
const arrivedWait = 2 * time.Millisecond

// readReply reads the reply frame on c's connection within its deadline,
// or, when that passed (the context's, or a probe's cut) before any byte
// of the reply was read, a reply already in the connection's buffer or
// socket: one that came while this process did not run (stopped, or not
// scheduled) is the controller's answer, not a timeout. Before, a
// registration's reply waiting in the socket of a client stopped past
// CallTimeout failed as an unknown outcome, the job registered and
// leaked (a hostile trial: 3 of 4 runs).
func (c *Client) readReply(lim *wire.Limits) (wire.Header, []byte, error) {
	if _, err := c.r.Peek(1); err != nil { // nothing consumed
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return wire.Header{}, nil, err
		}
		c.conn.SetReadDeadline(time.Now().Add(arrivedWait))
		if _, perr := c.r.Peek(1); perr != nil {
			return wire.Header{}, nil, err
		}
		// The rest of a reply sent whole is there too, or close behind.
		c.conn.SetReadDeadline(time.Now().Add(stallWait))
	}
	c.replied = true
	return wire.ReadControlFrame(c.r, lim, c.buf)
}

// ctxErr prefers the context's error when it caused the failure. The
// socket deadline equals the context's, so the socket may time out a
// moment before the context reports it: a socket timeout at or past the
// context's deadline is the context's.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}
