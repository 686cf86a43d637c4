package dataplane

import (
	"errors"
	"sync"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// The controller's orders (wire.OpDropJob, and wire.OpVersions and
// wire.OpDropVersions: sweep.go) carry no admin token but a proof made
// with it (token.OrderProof): bound to this node's address (SetAdvertised,
// else the bound address) and incarnation, the order's opcode and header
// flags (FlagPrefix: the persist-after-job values too), a nonce, what it
// carries in Request.after (the versions to drop) and an expiry. The guard checks the proof and the expiry
// (Guard.CheckOrder); the node then refuses a nonce it has taken before
// (orderLog), so an order seen on the wire cannot be replayed: not to
// another node, not to another process at this address, not with other
// flags, not here again, and not after it expires.

// maxOrders bounds the nonces a node remembers: orders need the cluster
// secret, and the controller sends a few per job's end, so the bound is
// never reached in practice; beyond it, orders are refused as busy until
// old ones expire.
const maxOrders = 1 << 16

// orderLog remembers the nonces of the orders a node took, each until
// its order can no longer pass token.VerifyOrder (expiry plus
// token.OrderSkew by this node's clock).
type orderLog struct {
	mu   sync.Mutex
	seen map[string]int64 // nonce -> the order's expiry, Unix ms
	// sweepAt is the size at which take next forgets expired nonces, at
	// least maxOrders/8 takes after the last sweep, so a log holding many
	// live nonces is not walked whole on every take; swept is when the
	// last sweep ran (a full log sweeps again at most once a second).
	sweepAt int
	swept   time.Time
	visited int // nonces looked at by sweeps, for tests
}

var (
	errOrderReplayed = &wire.Error{Code: wire.CodeBadToken, Msg: "the controller's order was taken here before (a replay)"}
	errOrdersFull    = &wire.Error{Code: wire.CodeBusy, Msg: "too many orders taken within their validity; retry"}
)

// take records nonce for an order valid until expiresMs and reports nil,
// errOrderReplayed when the nonce was taken before, or errOrdersFull when
// maxOrders nonces are still valid. Its cost is amortized O(1): a sweep
// walks the log at most once per maxOrders/8 takes (or per second, full).
func (l *orderLog) take(nonce []byte, expiresMs int64, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = make(map[string]int64)
		l.sweepAt = maxOrders / 2
	}
	if _, ok := l.seen[string(nonce)]; ok {
		return errOrderReplayed
	}
	n := len(l.seen)
	if n >= l.sweepAt || (n >= maxOrders && now.Sub(l.swept) >= time.Second) {
		l.sweep(now)
	}
	if len(l.seen) >= maxOrders {
		return errOrdersFull
	}
	l.seen[string(nonce)] = expiresMs
	return nil
}

// sweep forgets the nonces whose orders can no longer pass; l.mu is held.
func (l *orderLog) sweep(now time.Time) {
	cut := now.UnixMilli() - token.OrderSkew.Milliseconds()
	l.visited += len(l.seen)
	for k, exp := range l.seen {
		if exp <= cut {
			delete(l.seen, k)
		}
	}
	l.swept = now
	l.sweepAt = max(maxOrders/2, len(l.seen)+maxOrders/8)
}

// SetAdvertised sets the address the node is known by in the cluster (the
// one it registers with the controller; agent.Run sets it): the
// controller's orders must be made for it. Until set, the bound address
// (Addr) is.
func (n *Node) SetAdvertised(addr string) { n.advert.Store(&addr) }

// advertised is the address orders must name: "" (no order passes)
// until NewNode has bound the listener.
func (n *Node) advertised() string {
	if a := n.advert.Load(); a != nil {
		return *a
	}
	return ""
}

// checkOrder admits the controller's order h (r's job, the proof in its
// token, the nonce in its key) if it was made for this node, as it is, and
// not taken before.
func (n *Node) checkOrder(h *wire.Header, r *wire.Request) error {
	if n.cfg.Guard == nil {
		return nil
	}
	now := time.Now()
	o := token.Order{Addr: n.advertised(), Incarnation: n.incarnation, Op: byte(h.Op), Flags: h.Flags, Nonce: r.Key, Carried: r.After}
	exp, err := n.cfg.Guard.CheckOrder(r.Job, o, r.Token, now)
	if err != nil {
		return err
	}
	return n.orders.take(r.Key, exp, now)
}

// orderError is the reply to an order VerifyOrder refused.
func orderError(err error) error {
	msg := "the controller's order is not valid here: " + err.Error()
	if errors.Is(err, token.ErrOrderExpired) || errors.Is(err, token.ErrOrderTooLong) {
		msg += " (check the clocks of the controller and the node)"
	}
	return &wire.Error{Code: wire.CodeBadToken, Msg: msg}
}
