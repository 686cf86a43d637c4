// Package leader elects one active controller among several over etcd
// (go.etcd.io/etcd/client/v3/concurrency) and tells the others where it is.
//
// Each controller makes a Candidate: an etcd session (a lease of TTL
// seconds that the client keeps alive) and, while it campaigns, a key
// PREFIX/<lease id> whose value is the controller's client-facing address.
// The candidate whose key was created first leads. A leader that dies
// (kill -9, lost network) stops renewing its lease; etcd deletes its key
// when the lease expires, TTL after the last renewal, and the next
// candidate's Campaign returns. A leader that stops cleanly (Close)
// deletes its key at once.
//
// # Terms and fencing
//
// Campaign returns a Term: the leader key and its creation revision (Key
// and Rev, what state.Etcd's Apply compares in the same Txn as its writes,
// so a deposed leader cannot write) and a context that ends when the term
// does: the session's lease was lost or not renewed for TTL, the key was
// deleted, or the candidate resigned or closed. A controller serves as
// leader only while its Term's context is live, and stops at once when it
// ends; its next Apply would fail with state.ErrNotLeader anyway.
//
// # Followers
//
// Every Candidate, leading or not, watches the election and keeps the
// current leader's address (Leader); a follower answers a client with that
// address so the client can move there (metaclient.Endpoints).
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/pocketstore/pocket/wire"
)

// DefaultTTL is the session TTL (the --election-ttl flag's default): a
// dead leader's key outlives it by at most this much, so another
// controller leads within about TTL plus one etcd round trip.
const DefaultTTL = 2 * time.Second

// MaxTTL bounds the TTL: past it a dead leader blocks the cluster too long.
const MaxTTL = time.Minute

// DefaultPrefix is the election's key prefix in etcd.
const DefaultPrefix = "/pocket/leader"

// ErrNoLeader is returned by CurrentLeader when no candidate leads.
var ErrNoLeader = errors.New("leader: no controller is elected")

// ErrClosed is returned by Campaign on a closed Candidate.
var ErrClosed error = &wire.Error{Code: wire.CodeClosed, Msg: "leader: candidate closed"}

// Config configures a Candidate.
type Config struct {
	// Client is the etcd client; the Candidate does not close it.
	Client *clientv3.Client
	// Prefix is the election's key prefix (DefaultPrefix when empty).
	// Controllers of one cluster share it; another cluster on the same
	// etcd uses another.
	Prefix string
	// TTL is the session's lease TTL (DefaultTTL when zero), rounded up
	// to whole seconds (etcd's unit), at most MaxTTL. etcd raises a TTL
	// below its own minimum (1.5 x its election timeout, 2 s with
	// etcd's defaults).
	TTL time.Duration
	// Addr is this controller's client-facing address (host:port),
	// published as the election's value while it leads.
	Addr string
	// Logger reports terms and lost leadership (nil: slog.Default()).
	Logger *slog.Logger
}

// ttlSeconds checks TTL and returns it in whole seconds.
func (c *Config) ttlSeconds() (int, error) {
	ttl := c.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < 0 || ttl > MaxTTL {
		return 0, fmt.Errorf("leader: election TTL %v out of range (0, %v]", c.TTL, MaxTTL)
	}
	return int(math.Ceil(ttl.Seconds())), nil
}

// Candidate is one controller in the election. It is safe for concurrent
// use; Campaign is called by one goroutine at a time.
type Candidate struct {
	cfg  Config
	ttl  int // seconds
	log  *slog.Logger
	life context.Context    // ends when the candidate closes: its sessions' context
	stop context.CancelFunc // ends life, the watcher with it
	wg   sync.WaitGroup

	mu      sync.Mutex
	session *concurrency.Session // nil until a Campaign, renewed after a loss
	endSess context.CancelFunc   // ends session's context (grant), once it is lost or dropped
	term    *Term                // the live or last term
	leader  string               // the observed leader's address
	closed  bool
}

// New checks cfg and starts watching the election. It does not campaign.
func New(cfg Config) (*Candidate, error) {
	if cfg.Client == nil {
		return nil, errors.New("leader: no etcd client")
	}
	if cfg.Addr == "" {
		return nil, errors.New("leader: no address to publish (the controller's client-facing host:port)")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	ttl, err := cfg.ttlSeconds()
	if err != nil {
		return nil, err
	}
	c := &Candidate{cfg: cfg, ttl: ttl, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	c.life, c.stop = ctx, stop
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.watch(ctx) }()
	return c, nil
}

// TTL is the session TTL in use, in whole seconds.
func (c *Candidate) TTL() time.Duration { return time.Duration(c.ttl) * time.Second }

// Addr is the address this candidate publishes.
func (c *Candidate) Addr() string { return c.cfg.Addr }

// Campaign blocks until this candidate leads, and returns its term. It
// fails when ctx ends first or etcd refuses; a candidate whose term ended
// campaigns again on a new session.
func (c *Candidate) Campaign(ctx context.Context) (*Term, error) {
	var t *Term
	for t == nil {
		s, err := c.liveSession(ctx)
		if err != nil {
			return nil, err
		}
		e := concurrency.NewElection(s, c.cfg.Prefix)
		if err := e.Campaign(ctx, c.cfg.Addr); err != nil {
			return nil, fmt.Errorf("leader: campaign for %s: %w", c.cfg.Prefix, err)
		}
		// A session lost while waiting leaves Campaign returning with
		// its key gone: campaign again on a new session.
		if t, err = c.check(ctx, s, e); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.term = t
	}
	c.mu.Unlock()
	if closed {
		t.resign()
		return nil, ErrClosed
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); t.guard(c.cfg.Client, c.log) }()
	c.log.Info("elected leader", "addr", c.cfg.Addr, "key", t.key, "rev", t.rev, "ttl", c.TTL())
	return t, nil
}

// check returns the term Campaign won, or nil when its key is gone.
func (c *Candidate) check(ctx context.Context, s *concurrency.Session, e *concurrency.Election) (*Term, error) {
	r, err := c.cfg.Client.Get(ctx, e.Key())
	if err != nil {
		return nil, fmt.Errorf("leader: campaign for %s: %w", c.cfg.Prefix, err)
	}
	if len(r.Kvs) == 0 || r.Kvs[0].CreateRevision != e.Rev() {
		c.log.Warn("campaign won with a lost session; campaigning again", "key", e.Key())
		c.dropSession(s)
		return nil, nil
	}
	return newTerm(s, e), nil
}

// liveSession returns the candidate's session, granting a new lease when
// there is none or the last one was lost. Granting waits for etcd, which
// may be down for long: it runs without c.mu (Leader, which every request
// to the controller reads, takes it; it used to wait as long as etcd was
// away) and ends when ctx ends. The session itself lives until the
// candidate closes (its lease is revoked in Close), not with ctx.
func (c *Candidate) liveSession(ctx context.Context) (*concurrency.Session, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if s := c.session; s != nil {
		select {
		case <-s.Done():
			c.forgetSessionLocked()
		default:
			c.mu.Unlock()
			return s, nil
		}
	}
	c.mu.Unlock()
	s, end, err := c.grant(ctx)
	if err != nil {
		return nil, fmt.Errorf("leader: etcd session (lease of %d s): %w", c.ttl, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		s.Close()
		end()
		return nil, ErrClosed
	}
	c.session, c.endSess = s, end
	return s, nil
}

// forgetSessionLocked drops the candidate's session and ends its context
// (each would otherwise stay a child of the candidate's until Close).
func (c *Candidate) forgetSessionLocked() {
	if c.endSess != nil {
		c.endSess()
	}
	c.session, c.endSess = nil, nil
}

// grant starts a session on a context of its own under the candidate's
// life context, giving up when ctx ends while the lease is granted; end
// ends the session's context once the session is done with.
func (c *Candidate) grant(ctx context.Context) (s *concurrency.Session, end context.CancelFunc, err error) {
	sctx, cancel := context.WithCancel(c.life)
	detach := context.AfterFunc(ctx, cancel)
	s, err = concurrency.NewSession(c.cfg.Client, concurrency.WithTTL(c.ttl), concurrency.WithContext(sctx))
	if !detach() {
		// ctx ended (sctx with it): the session, if any, is dead.
		if err == nil {
			s.Orphan()
		}
		return nil, nil, context.Cause(ctx)
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return s, cancel, nil
}

// dropSession stops renewing s and forgets it, so the next Campaign
// grants a new lease.
func (c *Candidate) dropSession(s *concurrency.Session) {
	s.Orphan()
	c.mu.Lock()
	if c.session == s {
		c.forgetSessionLocked()
	}
	c.mu.Unlock()
}

// Leader returns the address of the current leader as last observed (""
// when none is elected or none has been seen yet). It may lag etcd by a
// watch event.
func (c *Candidate) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// CurrentLeader reads the leader's address from etcd, or ErrNoLeader.
func CurrentLeader(ctx context.Context, cli *clientv3.Client, prefix string) (string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	r, err := cli.Get(ctx, prefix+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("leader: read %s: %w", prefix, err)
	}
	if len(r.Kvs) == 0 {
		return "", ErrNoLeader
	}
	return string(r.Kvs[0].Value), nil
}

// Close resigns (deleting the leader key, so a follower takes over at
// once), revokes the session's lease and stops watching. It does not
// close the etcd client.
func (c *Candidate) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	t, s := c.term, c.session
	c.mu.Unlock()
	var err error
	if t != nil {
		err = t.resign()
	}
	if s != nil {
		if cerr := s.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("leader: revoke lease: %w", cerr)
		}
	}
	c.stop()
	c.wg.Wait()
	return err
}

// Term is one period of leadership.
type Term struct {
	key     string
	rev     int64
	session *concurrency.Session
	e       *concurrency.Election
	ctx     context.Context
	end     context.CancelCauseFunc
	once    sync.Once
}

func newTerm(s *concurrency.Session, e *concurrency.Election) *Term {
	ctx, end := context.WithCancelCause(context.Background())
	return &Term{key: e.Key(), rev: e.Rev(), session: s, e: e, ctx: ctx, end: end}
}

// Key is the leader key in etcd (PREFIX/<lease id in hex>).
func (t *Term) Key() string { return t.key }

// Rev is the leader key's creation revision: a Txn that compares
// CreateRevision(Key) with Rev succeeds only during this term.
func (t *Term) Rev() int64 { return t.rev }

// Context ends when the term does; context.Cause says why.
func (t *Term) Context() context.Context { return t.ctx }

// Done is Context().Done().
func (t *Term) Done() <-chan struct{} { return t.ctx.Done() }

// Resign ends the term and deletes the leader key (within 2 s), so
// another candidate leads at once. The session lives on for a later
// Campaign.
func (t *Term) Resign() error { return t.resign() }

func (t *Term) resign() error {
	var err error
	t.once.Do(func() {
		t.end(errors.New("resigned"))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if rerr := t.e.Resign(ctx); rerr != nil {
			err = fmt.Errorf("leader: resign %s: %w", t.key, rerr)
		}
	})
	return err
}

// guard ends the term when the session's lease is lost or the leader key
// is deleted (or the watch on it fails: a term is never assumed).
func (t *Term) guard(cli *clientv3.Client, log *slog.Logger) {
	wctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	gone := make(chan error, 1)
	// clientv3's Watch blocks until etcd has set the watch up, so it
	// runs beside the wait on the session: with etcd unreachable, the
	// lease still ends the term.
	go func() { gone <- t.watchKey(wctx, cli) }()
	var cause error
	select {
	case <-t.ctx.Done():
		return
	case <-t.session.Done():
		cause = errors.New("etcd session lease lost or not renewed within its TTL")
	case cause = <-gone:
	}
	t.end(cause)
	log.Warn("leadership lost", "key", t.key, "rev", t.rev, "cause", cause)
}

// watchKey returns when the leader key is deleted, the watch fails, or
// ctx ends (then with ctx's error).
func (t *Term) watchKey(ctx context.Context, cli *clientv3.Client) error {
	wch := cli.Watch(ctx, t.key, clientv3.WithRev(t.rev+1))
	for {
		wr, ok := <-wch
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := keyGone(wr, ok); err != nil {
			return err
		}
	}
}

// keyGone returns why a watch response ends the term, or nil.
func keyGone(wr clientv3.WatchResponse, ok bool) error {
	if !ok {
		return errors.New("watch on the leader key closed")
	}
	if err := wr.Err(); err != nil {
		return fmt.Errorf("watch on the leader key: %w", err)
	}
	for _, ev := range wr.Events {
		if ev.Type == clientv3.EventTypeDelete {
			return errors.New("leader key deleted")
		}
	}
	return nil
}
