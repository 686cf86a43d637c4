package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pocketstore/pocket/controller/leader"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// Several controllers on etcd (HA).
//
// An HA is one of several controller processes that share their state in
// etcd and elect the active one (package controller/leader). It listens
// all the time; each connection it accepts goes to the controller of its
// current term when it leads, else to its follower:
//
//   - The follower is a Controller that answers every request, the
//     challenge included, with CodeNotLeader whose message is the elected
//     controller's client-facing address ("" while none is elected), and
//     closes the connection after the answer; clients move there
//     (metaclient.Controllers).
//   - On winning the election, HA opens the etcd store fenced by the term
//     (state.OpenEtcd), builds a new Controller from the stored state
//     (New loads it) and sends new connections to it.
//   - When the term ends (its lease lost or not renewed within the TTL,
//     its key deleted, or a write refused with state.ErrNotLeader), the
//     term's controller answers CodeNotLeader from then on, is closed (its
//     connections too: their clients reconnect and reach the follower) and
//     HA campaigns again; a later term builds a fresh Controller from the
//     state its successors left. It never serves the state of an ended
//     term.
//
// A controller that wins but cannot load the state (another cluster
// secret, a newer format, etcd failing) resigns and Run returns the error:
// the process exits, so another controller takes over.
type HA struct {
	cfg      HAConfig
	follower *Controller

	mu     sync.Mutex // guards the fields below
	cur    *Controller
	store  *state.Etcd
	lns    []net.Listener
	closed bool
	wg     sync.WaitGroup // accept loops
}

// HAConfig configures an HA.
type HAConfig struct {
	// Config is the configuration of each term's controller and of the
	// follower. Its Store must be nil: HA sets each term's.
	Config Config
	// Candidate is this controller in the election; its Addr is the
	// client-facing host:port the followers name. HA does not close it.
	Candidate *leader.Candidate
	// Etcd is the client the state is kept with (the Candidate's). HA does
	// not close it.
	Etcd *clientv3.Client
	// State configures the etcd store (prefix, limits); its Fence is set
	// to each term.
	State state.EtcdOptions
	// OnLead, when set, is called with each term's controller before it
	// serves (to start its autoscaler). An error ends the term.
	OnLead func(c *Controller) error
}

// haRole is what HA tells the controllers it runs.
type haRole struct {
	follower atomic.Bool     // answer every request CodeNotLeader
	leader   func() string   // the elected controller's address ("" while none)
	deposed  func(err error) // the store refused a write: the term is over
}

// NewHA checks cfg and makes the follower. It neither listens nor
// campaigns: call Listen (or Serve) and Run.
func NewHA(cfg HAConfig) (*HA, error) {
	if cfg.Candidate == nil || cfg.Etcd == nil {
		return nil, errors.New("controller: HA needs an election candidate and an etcd client")
	}
	if cfg.Config.Store != nil {
		return nil, errors.New("controller: HA keeps the state in etcd: Config.Store must be nil")
	}
	h := &HA{cfg: cfg}
	f, err := New(cfg.Config)
	if err != nil {
		return nil, err
	}
	role := &haRole{leader: h.leaderAddr, deposed: func(error) {}}
	role.follower.Store(true)
	f.srv.ha.Store(role)
	h.follower = f
	return h, nil
}

// leaderAddr is the elected controller's address as last observed, ""
// while none is elected or while it is this one (stepping down).
func (h *HA) leaderAddr() string {
	a := h.cfg.Candidate.Leader()
	if a == h.cfg.Candidate.Addr() {
		return ""
	}
	return a
}

// notLeader is the answer of a controller in follower mode, nil else.
// The error is an unwrapped *wire.Error, so its message (the leader's
// address) reaches the client as it is.
func (c *Controller) notLeader() error {
	r := c.srv.ha.Load()
	if r == nil || !r.follower.Load() {
		return nil
	}
	return &wire.Error{Code: wire.CodeNotLeader, Msg: r.leader()}
}

// deposed turns a write the store refused (state.ErrNotLeader) into the
// answer: CodeNotLeader with the leader's address. The controller stops
// serving: it answers CodeNotLeader from now on and HA ends its term.
func (c *Controller) deposed(err error) error {
	c.cfg.Logger.Error("controller: state not saved: no longer the leader", "err", err)
	r := c.srv.ha.Load()
	if r == nil {
		return &wire.Error{Code: wire.CodeNotLeader}
	}
	r.follower.Store(true)
	r.deposed(err)
	return &wire.Error{Code: wire.CodeNotLeader, Msg: r.leader()}
}

// Listen starts accepting connections on addr (host:port; port 0 picks
// one) in the background and returns the bound address.
func (h *HA) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := h.Serve(ln); err != nil && !errors.Is(err, ErrClosed) {
			h.cfg.Config.Logger.Error("controller: serve", "err", err)
		}
	}()
	return ln.Addr(), nil
}

// Serve accepts connections on ln until Close and hands each to the
// current term's controller, or to the follower. It returns ErrClosed
// after Close, or the listener's error when another closed it; other
// failed accepts are waited out (acceptRetry).
func (h *HA) Serve(ln net.Listener) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	h.lns = append(h.lns, ln)
	h.mu.Unlock()
	var retry acceptRetry
	for {
		conn, err := ln.Accept()
		if err != nil {
			if h.isClosed() {
				return ErrClosed
			}
			if retry.fail(err, h.cfg.Config.Logger) {
				return fmt.Errorf("controller: accept: %w", err)
			}
			continue
		}
		retry.ok()
		h.route(conn)
	}
}

// route gives conn to the term's controller, or to the follower when
// there is none or it closed meanwhile.
func (h *HA) route(conn net.Conn) {
	h.mu.Lock()
	c := h.cur
	h.mu.Unlock()
	if c != nil && c.accept(conn) {
		return
	}
	if !h.follower.accept(conn) {
		conn.Close()
	}
}

func (h *HA) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Leading returns the current term's controller, nil while this one
// follows.
func (h *HA) Leading() *Controller {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// Follower returns the controller that answers while this one follows.
func (h *HA) Follower() *Controller { return h.follower }

// Run campaigns, leads while elected, and campaigns again when a term
// ends, until ctx ends; then it steps down, resigns (another controller
// takes over at once) and returns nil. It returns an error when a won
// term's state cannot be loaded (after resigning).
func (h *HA) Run(ctx context.Context) error {
	log := h.cfg.Config.Logger
	if err := h.checkState(ctx); err != nil {
		return err
	}
	var backoff time.Duration // the pause after a term resigned as deaf
	for {
		term, err := h.cfg.Candidate.Campaign(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, leader.ErrClosed) {
				return nil
			}
			log.Warn("controller: campaign failed; retrying", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return nil
			}
			continue
		}
		c, err := h.lead(term)
		if err != nil {
			_ = term.Resign()
			return fmt.Errorf("controller: taking over as the leader: %w", err)
		}
		select {
		case <-term.Done():
			h.stepDown(c, context.Cause(term.Context()))
			backoff = 0
		case <-deaf(term, c):
			backoff = min(max(2*backoff, deafBackoff), deafBackoffMax)
			log.Error("controller: heard from none of the nodes in the cluster's state since taking over, and all are dead by now: "+
				"resigning, so that another controller can lead (is this controller's --advertise address one the nodes reach, "+
				"and its CA the cluster's? or are the nodes all down?); campaigning again after a pause",
				"addr", h.cfg.Candidate.Addr(), "pause", backoff)
			h.stepDown(c, errDeaf)
			if err := term.Resign(); err != nil {
				log.Warn("controller: resign", "err", err)
			}
			if !sleepCtx(ctx, backoff) {
				return nil
			}
		case <-ctx.Done():
			h.stepDown(c, errors.New("shutting down"))
			if err := term.Resign(); err != nil {
				log.Warn("controller: resign", "err", err)
			}
			return nil
		}
	}
}

// ErrOtherSecretHA is Run's error, before it campaigns, when the state in
// etcd names another cluster secret than this controller's.
var ErrOtherSecretHA = errors.New("the cluster's state in etcd was saved with another cluster secret than this controller's: " +
	"start it with the secret the other controllers use (--secret-file or $POCKET_SECRET)")

// ErrOtherCAHA is Run's error, before it campaigns, when the state in etcd
// names another CA than this controller's (Config.CAID).
var ErrOtherCAHA = errors.New("the cluster's state in etcd was saved by controllers of another CA than this controller's: " +
	"its nodes and clients could not reach it if it led. Give it a copy of the other controllers' TLS directory (DATA/tls)")

// checkState refuses, before the first campaign, a state in etcd whose
// Meta names another cluster secret (secretID). Before, such a standby ran
// silently until it was elected and only then exited on ErrOtherSecret
// (a new user's trial), after taking the leadership from a working
// controller. A store without a Meta yet (a new cluster) passes; an etcd
// that cannot be read now is left to the campaign, which waits for it.
//
// It refuses likewise a Meta naming another CA than Config.CAID: a
// controller started on a fresh data directory makes a CA of its own, and
// elected, no node or client could reach it. A
// hostile trial's such controller, given a node of its own, was deaf in
// its first term, saved the cluster's nodes dead, heard its own node in
// its second term and lost every value (300 of 300); without a node, or
// with no job yet, it kept the leadership and the cluster unusable.
func (h *HA) checkState(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, ok, err := state.EtcdMeta(rctx, h.cfg.Etcd, h.cfg.State)
	if err != nil {
		h.cfg.Config.Logger.Warn("controller: could not read the cluster's state to check the secret; campaigning anyway", "err", err)
		return nil
	}
	if ok && m.SecretID != "" && m.SecretID != secretID(h.cfg.Config.Secret) {
		return ErrOtherSecretHA
	}
	if ca := h.cfg.Config.CAID; ok && m.CAID != "" && ca != "" && m.CAID != ca {
		return fmt.Errorf("%w (saved: CA %s; this controller's: %s)", ErrOtherCAHA, m.CAID, ca)
	}
	return nil
}

// errDeaf is why a term that heard from no node ended (Controller.Deaf).
var errDeaf = errors.New("heard from no node")

// deafPoll is how often a term's controller is asked whether it is deaf.
const deafPoll = time.Second

// deafBackoff is the pause before a controller that resigned as deaf
// campaigns again, doubling at each such term in a row up to
// deafBackoffMax: the others, campaigning meanwhile, lead first. When
// every node is down in fact, every controller is deaf, and without it
// the leadership went round them every few seconds (a hostile trial: 42
// terms in 43 s); with it there may be no leader for a while, and none is
// of use until a node is back.
const (
	deafBackoff    = 10 * time.Second
	deafBackoffMax = 2 * time.Minute
)

// deaf is closed once c is deaf (Controller.Deaf), checked every
// deafPoll until term ends. Before, a controller elected with an
// --advertise address the nodes could not reach kept its term while every
// node's lease lapsed and the cluster refused every request (a new user's
// trial; the other controllers stayed standbys). Resigned, it campaigns
// again behind them: etcd's election takes the candidates in the order
// they campaigned.
func deaf(term *leader.Term, c *Controller) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		t := time.NewTicker(deafPoll)
		defer t.Stop()
		for {
			select {
			case <-term.Done():
				return
			case <-t.C:
				if c.Deaf() {
					close(out)
					return
				}
			}
		}
	}()
	return out
}

// lead opens the state fenced by term, builds its controller from it and
// routes new connections to it.
func (h *HA) lead(term *leader.Term) (*Controller, error) {
	start := time.Now()
	opt := h.cfg.State
	opt.Fence = term
	st, err := state.OpenEtcd(h.cfg.Etcd, opt)
	if err != nil {
		return nil, err
	}
	cfg := h.cfg.Config
	cfg.Store = st
	c, err := New(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	role := &haRole{leader: h.leaderAddr, deposed: func(error) { go term.Resign() }}
	c.srv.ha.Store(role)
	if h.cfg.OnLead != nil {
		if err := h.cfg.OnLead(c); err != nil {
			c.Close()
			st.Close()
			return nil, err
		}
	}
	h.mu.Lock()
	h.cur, h.store = c, st
	h.mu.Unlock()
	cfg.Logger.Info("controller: leading", "addr", h.cfg.Candidate.Addr(), "term", term.Key(),
		"jobs", c.Status().JobCount, "took", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// stepDown makes the term's controller answer CodeNotLeader, routes new
// connections to the follower and closes the controller and its store.
func (h *HA) stepDown(c *Controller, cause error) {
	if r := c.srv.ha.Load(); r != nil {
		r.follower.Store(true)
	}
	h.mu.Lock()
	st := h.store
	h.cur, h.store = nil, nil
	h.mu.Unlock()
	c.Close()
	if st != nil {
		st.Close()
	}
	h.cfg.Config.Logger.Warn("controller: stepped down", "addr", h.cfg.Candidate.Addr(), "cause", cause)
}

// Close stops accepting, closes the follower and the term's controller
// (without resigning: Run does that when its ctx ends) and waits for the
// accept loops.
func (h *HA) Close() error {
	h.mu.Lock()
	h.closed = true
	lns, c, st := h.lns, h.cur, h.store
	h.cur, h.store = nil, nil
	h.mu.Unlock()
	for _, ln := range lns {
		ln.Close()
	}
	h.wg.Wait()
	if c != nil {
		c.Close()
	}
	if st != nil {
		st.Close()
	}
	return h.follower.Close()
}

// sleepCtx waits d, or reports false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
