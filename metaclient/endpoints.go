package metaclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// ParseControllers parses a controller address list: comma-separated
// host:port entries, as given to --controller or in POCKET_CONTROLLER
// ("10.0.0.1:7070,10.0.0.2:7070"). Spaces around entries are ignored and
// repeated entries dropped. An empty list or entry, or an entry without a
// valid port, is an error naming it.
func ParseControllers(list string) ([]string, error) {
	var addrs []string
	seen := map[string]bool{}
	for i, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("metaclient: controller list %q: entry %d is empty (want host:port,host:port,...)", list, i+1)
		}
		if err := checkHostPort(a); err != nil {
			return nil, fmt.Errorf("metaclient: controller list %q: %w", list, err)
		}
		if !seen[a] {
			seen[a] = true
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", a, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || host == "" {
		return fmt.Errorf("%q: want a host and a port in 1..65535", a)
	}
	return nil
}

// Controllers is the client of a set of controllers of which one, elected
// over etcd, is active: each call goes to the one that last answered as
// the leader, and moves on when that one cannot be reached, is shutting
// down, or answers that it is not the leader (going to the leader it
// names, which is remembered even if it is not in the list). Between
// passes over every address it waits (100 ms, doubling to 1 s), so a
// failover in progress (no leader yet) is waited out until the call's
// context ends. It is safe for concurrent use.
//
// A call that is not idempotent does not move on once it was written to a
// controller (Client returns an *OutcomeUnknownError): the controller may
// have acted on it, so a job is never registered twice.
type Controllers struct {
	opt Options

	mu      sync.Mutex
	addrs   []string           // the list, then leaders learned from answers
	cur     int                // the index of the one to try first
	clients map[string]*Client // one per address, made on first use
	closed  bool
	single  bool // made for one address that answered "not leader" (Client)
}

// NewControllers returns a client of the controllers at addrs (from
// ParseControllers), tried first in their order. It does not connect
// until the first call.
func NewControllers(addrs []string, opt Options) (*Controllers, error) {
	if len(addrs) == 0 {
		return nil, errors.New("metaclient: no controller address")
	}
	return &Controllers{opt: opt, addrs: append([]string(nil), addrs...), clients: map[string]*Client{}}, nil
}

// Leader returns the address calls go to first: the one that last
// answered as the leader, or the first of the list before any did.
func (cs *Controllers) Leader() string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.addrs[cs.cur]
}

// Do calls f with the leader's Client, moving through the controllers as
// described on Controllers until f succeeds, fails with an answer that is
// not "not leader" or "closed", or ctx ends (then the last error is
// returned, with ctx's), or Options.RetryFor has passed. A ctx without a
// deadline is bounded by Options.CallTimeout (15 s).
func (cs *Controllers) Do(ctx context.Context, f func(c *Client) error) error {
	if _, ok := ctx.Deadline(); !ok {
		timeout := cs.opt.CallTimeout
		if timeout <= 0 {
			timeout = 15 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	wait := 100 * time.Millisecond
	var until time.Time // Options.RetryFor's end
	if cs.opt.RetryFor > 0 {
		until = time.Now().Add(cs.opt.RetryFor)
	}
	var moved error           // the last error that moved the call on
	own := map[string]error{} // each controller's latest failure that moved the call on
	for {
		err := cs.pass(ctx, f, &moved, own)
		if err == nil || errors.Is(err, ErrOutcomeUnknown) || !movesOn(err) && (!isCtxErr(err) || moved == nil) {
			return err
		}
		if !until.IsZero() && time.Now().After(until) {
			return fmt.Errorf("metaclient: %s within %v: %w", cs.noLeader(moved), cs.opt.RetryFor, moved)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("metaclient: %s: %w (last: %w)", cs.noLeader(moved), ctx.Err(), moved)
		case <-time.After(wait):
		}
		wait = min(2*wait, retryCap(ctx))
	}
}

// NoLeaderHint is the advice given when controllers answer "not leader"
// without naming a leader: one is being elected.
const NoLeaderHint = "no active controller yet (election in progress); retry, or list every controller in " + EnvController + "=a,b,c"

// noLeader says why a call found no leader, after the error moved: an
// election in progress when the last answer was "not leader" without a
// leader's address (with the advice to list every controller when it was
// given one address), or none answering as the leader.
func (cs *Controllers) noLeader(moved error) string {
	if !isNotLeader(moved) || leaderNamed(moved) != "" {
		return "no controller answered as the leader"
	}
	if cs.single {
		return NoLeaderHint
	}
	return "no active controller yet (election in progress); retry"
}

// pass tries each controller once, starting with the remembered leader
// and following "not leader" answers that name another, and returns the
// first answer that does not move on, or the last error. moved is set to
// each error that moves on, and own[addr] to the controller at addr's.
func (cs *Controllers) pass(ctx context.Context, f func(c *Client) error, moved *error, own map[string]error) error {
	start, n, err := cs.start()
	if err != nil {
		return err
	}
	next, tried := start, 0
	var last error
	for tried < n+1 && ctx.Err() == nil {
		c, i := cs.client(next)
		tried++
		last = f(c)
		if errors.Is(last, ErrUnresponsive) {
			cs.passOver(i) // the next call tries another first
		}
		if last == nil || !movesOn(last) {
			cs.setLeader(i, last)
			return last
		}
		own[next] = last
		*moved = withLeaderFailure(last, own)
		if named := leaderNamed(last); named != "" && named != next {
			next = named
			continue
		}
		next = cs.after(next)
	}
	if last == nil {
		last = ctx.Err()
	}
	return last
}

// withLeaderFailure is err, a controller's answer, with the failure of
// the leader it names when that one failed otherwise than naming another
// (own: each controller's latest). Before, a call whose standbys named a
// leader it could not reach (another cluster's CA, an --advertise address
// nothing listens on) ended "no controller answered as the leader: not
// leader: ADDR", the x509 or dial error that explained it left out (a new
// user's trial).
func withLeaderFailure(err error, own map[string]error) error {
	named := leaderNamed(err)
	ferr := own[named]
	if named == "" || ferr == nil || isNotLeader(ferr) {
		return err
	}
	return fmt.Errorf("%w (%s itself: %v)", err, named, ferr)
}

// start returns the address to try first and how many are known.
func (cs *Controllers) start() (string, int, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return "", 0, ErrClosed
	}
	return cs.addrs[cs.cur], len(cs.addrs), nil
}

// client returns the Client of addr, adding addr to the known addresses
// when a follower named it, and addr's index.
func (cs *Controllers) client(addr string) (*Client, int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	i := indexOf(cs.addrs, addr)
	if i < 0 {
		cs.addrs = append(cs.addrs, addr)
		i = len(cs.addrs) - 1
	}
	c := cs.clients[addr]
	if c == nil {
		// Each controller's client does not wait for its controller:
		// Do moves on to the next one instead.
		opt := cs.opt
		opt.RetryFor = -1
		c = newOne(addr, opt) // RetryFor < 0: returns "not leader" answers for Do to follow
		cs.clients[addr] = c
	}
	return c, i
}

// after returns the address after addr in the list, wrapping around.
func (cs *Controllers) after(addr string) string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.addrs[(indexOf(cs.addrs, addr)+1)%len(cs.addrs)]
}

// passOver makes the controller after the one at i the first to try,
// when the one at i still is: it answered nothing (ErrUnresponsive).
func (cs *Controllers) passOver(i int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.cur == i {
		cs.cur = (i + 1) % len(cs.addrs)
	}
}

// setLeader remembers the controller at i after it answered err: nil, or
// an answer of its own (not the end of the call's context, nor
// ErrUnresponsive).
func (cs *Controllers) setLeader(i int, err error) {
	if isCtxErr(err) || errors.Is(err, ErrUnresponsive) {
		return
	}
	cs.mu.Lock()
	cs.cur = i
	cs.mu.Unlock()
}

func indexOf(xs []string, x string) int {
	for i, y := range xs {
		if x == y {
			return i
		}
	}
	return -1
}

// Close closes every Client; later calls return ErrClosed.
func (cs *Controllers) Close() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closed = true
	for _, c := range cs.clients {
		c.Close()
	}
	return nil
}

// movesOn reports whether err sends a call to another controller: a "not
// leader" or "closed" answer, or no answer at all (a transport error), but
// not the end of the call's context, this side's Close, nor a call that
// may have been acted on (ErrOutcomeUnknown).
func movesOn(err error) bool {
	if isCtxErr(err) || errors.Is(err, ErrOutcomeUnknown) {
		return false
	}
	var we *wire.Error
	if !errors.As(err, &we) {
		return true
	}
	if we == ErrClosed {
		return false
	}
	return we.Code == wire.CodeNotLeader || we.Code == wire.CodeClosed
}

// isCtxErr reports whether err is the end of a call's context.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// leaderNamed returns the leader's address a "not leader" answer names,
// or "".
func leaderNamed(err error) string {
	var we *wire.Error
	if errors.As(err, &we) && we.Code == wire.CodeNotLeader && checkHostPort(we.Msg) == nil {
		return we.Msg
	}
	return ""
}
