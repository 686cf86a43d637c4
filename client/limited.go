package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// A node at its connection limit
//
// A node whose connection slots are all taken serves a new connection one
// request on its reserve (dataplane/reserve.go): a data request of an owner
// below its fair share promotes the connection, any other is answered
// wire.CodeLimit, and the node closes the connection having served none of
// its requests. A job whose connections a node has cut to its fair share
// keeps the ones it has, and they work; but the pool dialled again for
// every slot whose connection had gone, and each such dial was refused. A
// hostile trial saw a job's SDK fail 80 % of its gets while it held 31
// connections that worked.
//
// So a refusal at the limit is not the request's end: the node served
// none of the refused connection's calls, and the pool sends each again
// on one of the connections it holds. A new connection's first call goes
// on it alone while the pool has others (untried): were the node to
// refuse it, the calls written after the refusal would meet the node's
// close, lost with an outcome unknown. A caller whose slot has no
// connection borrows a live one of another slot while the slot is
// dialled in the background, one dial at a time (borrowLocked); after a
// refusal, for a while (limitBackoff, doubling to limitBackoffMax while
// refusals go on) the pool does not dial at all. Once the while is over
// one dial finds out, and a connection dialled since the last refusal
// that is served ends the while. A pool with no live connection dials,
// and its callers wait, as before.

// limitBackoff is how long a pool borrows its live connections after its
// first refusal at a node's connection limit; limitBackoffMax bounds the
// doubling while refusals go on.
const (
	limitBackoff    = 250 * time.Millisecond
	limitBackoffMax = 5 * time.Second
)

// atLimit reports whether err is a node's refusal at its connection limit
// (wire.CodeLimit: the only limit a node answers with), of the call or of
// another call on the same connection.
func atLimit(err error) bool {
	var we *wire.Error
	return errors.As(err, &we) && we.Code == wire.CodeLimit
}

// failLimited fails mc after the node refused a call on it at its
// connection limit: the node closes the connection and serves none of
// its requests, so every other call on it fails with a CodeLimit error
// marked not sent, to be sent again.
func (mc *muxConn) failLimited() {
	mc.mu.Lock()
	if mc.err == nil {
		mc.err = notSent(&wire.Error{Code: wire.CodeLimit, Msg: fmt.Sprintf(
			"node %s at its connection limit refused the connection: it served none of the connection's requests", mc.addr)})
	}
	mc.mu.Unlock()
	mc.fail(nil)
}

// refused records a refusal at the node's connection limit: the pool
// borrows its live connections for the next while, twice the last one if
// the last refusal was within it.
func (p *pool) refused() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	switch {
	case p.backoff == 0:
		p.backoff = limitBackoff
	case now.Before(p.limited.Add(p.backoff)):
		p.backoff = min(2*p.backoff, limitBackoffMax)
	}
	p.limited = now.Add(p.backoff)
	p.limitGen++
}

// served records that mc answered a call with something other than a
// refusal at the limit: if mc was dialled since the pool's last refusal,
// the node takes connections again, and the pool dials as before.
func (p *pool) served(mc *muxConn) {
	if mc.limitGen == 0 {
		return // dialled while no refusal stood: nothing to end
	}
	p.mu.Lock()
	if mc.limitGen == p.limitGen {
		p.limited, p.backoff = time.Time{}, 0
	}
	p.mu.Unlock()
}

// borrowLocked returns a live connection of a slot other than i, for a
// caller whose slot i has none, when the pool has one: the call goes on it
// rather than waiting for a dial. A connection dialled in the background
// that no call has gone on yet is taken first: the node takes or refuses
// it on this call, and the pool grows by a connection a round trip. Slot i is dialled meanwhile, in the
// background, when no other dial is under way and the pool is not within
// a while after a refusal at the node's connection limit (when the while
// is over, this dial finds out whether the node takes connections again;
// the others go on borrowing), nor holds a connection the node has not
// answered on. So a pool that lost many connections at once (a node
// evicting them at its fair share) redials them one at a time, each
// proven before the next, never in a burst the node's reserve would
// refuse at accept (4 a peer address: a test's pool, dialling each
// empty slot as soon as the last dial ended, had a fifth closed at
// accept, and its call lost with an outcome unknown). Nil:
// the pool has no live connection, and the caller dials and waits. p.mu
// is held.
func (p *pool) borrowLocked(i int) *muxConn {
	var other, fresh *muxConn
	unanswered := false // a connection the node may yet refuse
	for k := 1; k < len(p.slots); k++ {
		s := &p.slots[(i+k)%len(p.slots)]
		switch {
		case s.mc == nil || s.mc.dead():
		case !s.mc.answered.Load():
			unanswered = true
			if fresh == nil && !s.mc.untried() {
				fresh = p.usableLocked(s)
			}
		case other == nil:
			other = p.usableLocked(s) // one look at the socket at most, for the one chosen
		}
	}
	if other == nil {
		return nil
	}
	if fresh != nil {
		return fresh // its first call: alone on it, sent again if refused
	}
	now := time.Now()
	if p.dials > 0 || unanswered || p.slots[i].dial != nil || p.slots[i].mc != nil && !p.slots[i].mc.dead() || now.Before(p.limited) {
		return other
	}
	if !p.limited.IsZero() {
		p.limited = now.Add(p.backoff) // this dial finds out; the others borrow
	}
	d := &dialing{done: make(chan struct{})}
	p.slots[i].dial = d
	p.dials++
	go p.dial(i, d)
	return other
}

// servedBy reports whether err, a call's outcome, is an answer of the node
// that served the connection: none, or an error it sent other than a
// refusal at the limit.
func servedBy(err error) bool {
	var we *wire.Error
	return err == nil || errors.As(err, &we) && we.Code != wire.CodeUnavailable && we.Code != wire.CodeLimit && we.Code != wire.CodeClosed
}

// lostUnsent reports whether err is the loss of a connection before the
// call's frame went whole (NotSent, CodeUnavailable): the node never saw
// the call, which may go on another connection. On a connection the node
// refused at its limit, the calls written after the refusal fail so
// (their writes meet the node's close) before its reply is read.
func lostUnsent(err error) bool {
	var we *wire.Error
	return NotSent(err) && errors.As(err, &we) && we.Code == wire.CodeUnavailable
}

// untried reports whether mc has a call on it, or handed it, and no reply
// yet: the node may still refuse it at its limit, and another call should
// go elsewhere while the pool has another connection.
func (mc *muxConn) untried() bool {
	if mc.answered.Load() {
		return false
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.inHand > 0 || len(mc.pending) > 0
}

// resendConn returns a connection for a call sent again: one the node has
// answered on, if the pool has one, else whatever conn gives. A call
// refused at the limit went, before, to the next slot's connection, which
// could be another the node had not yet refused: a test saw 4 refusals in
// a row for one call.
func (p *pool) resendConn(ctx context.Context) (*muxConn, error) {
	p.mu.Lock()
	start := int(p.next.Add(1))
	for k := range len(p.slots) {
		s := &p.slots[(start+k)%len(p.slots)]
		if mc := s.mc; mc != nil && mc.answered.Load() && p.usableLocked(s) != nil {
			mc.hand()
			p.mu.Unlock()
			return mc, nil
		}
	}
	p.mu.Unlock()
	return p.conn(ctx)
}
