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
// on a connection the node has answered on (answeredConn; with none, the
// refusal is the call's answer, marked not sent). A refusal is believed
// only on a connection not yet answered on: the reserve refuses a
// connection's first request, and a node that answers CodeLimit later
// refuses that call alone (a hostile check's fake node had 8 puts under
// way executed twice when every call on the connection was sent again).
// A new connection's first call goes on it alone, the others borrowing
// another connection or waiting for its reply up to firstReplyWait:
// were the node to refuse it, the calls written after the refusal would
// meet the node's close, lost with an outcome unknown. A caller whose slot
// has no connection borrows a live one of another slot while the slot is
// dialled in the background, at most maxGrowing at a time
// (borrowLocked); after a refusal, for a while (limitBackoff, doubling to
// limitBackoffMax while refusals go on) the pool does not dial at all.
// Once the while is over one dial finds out, and a connection dialled
// since the last refusal that is served ends the while. A pool with no
// live connection dials, at most maxGrowing at a time, and its callers
// wait.

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

// refused records a refusal at the node's connection limit of mc: the
// pool borrows its live connections for the next while. A connection
// dialled since the last refusal (the dial that found out) doubles the
// while; one dialled before it, in the same burst, leaves it as it is.
// Before, each refused connection of one burst doubled it: a hostile
// check's 4 refusals at once made it 2 s, not 250 ms.
func (p *pool) refused(mc *muxConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if mc.limitGen < p.limitGen {
		return
	}
	if p.backoff == 0 {
		p.backoff = limitBackoff
	} else {
		p.backoff = min(2*p.backoff, limitBackoffMax)
	}
	p.limited = time.Now().Add(p.backoff)
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
// it on this call. Slot i is dialled meanwhile, in the background, while
// fewer than maxGrowing connections are being dialled or not yet answered
// on, and the pool is not within a while after a refusal at the node's
// connection limit (when the while is over, this dial finds out whether
// the node takes connections again; the others go on borrowing). So a
// pool that lost many connections at once (a node evicting them at its
// fair share) redials them a few at a time, never in a burst the node's
// reserve would refuse at accept (4 a peer address: a test's pool,
// dialling every empty slot at once, had a fifth closed at accept, and
// its call lost with an outcome unknown). Nil: the pool has no
// connection to lend, and the caller dials (or waits for a dial). p.mu is
// held.
func (p *pool) borrowLocked(i int) *muxConn {
	var other, fresh *muxConn
	growing := p.dials // dials under way, and connections not yet answered on
	for k := 1; k < len(p.slots); k++ {
		s := &p.slots[(i+k)%len(p.slots)]
		switch {
		case s.mc == nil || s.mc.dead():
		case !s.mc.answered.Load():
			growing++
			if fresh == nil && !s.mc.untried() {
				fresh = p.usableLocked(s)
			}
		case other == nil:
			other = p.usableLocked(s) // one look at the socket at most, for the one chosen
		}
	}
	if fresh != nil {
		return fresh // its first call: alone on it, sent again if refused
	}
	if other == nil {
		return nil
	}
	now := time.Now()
	if growing >= maxGrowing || p.slots[i].dial != nil || p.slots[i].mc != nil && !p.slots[i].mc.dead() || now.Before(p.limited) {
		return other
	}
	if !p.limited.IsZero() {
		p.limited = now.Add(p.backoff) // this dial finds out; the others borrow
	}
	d := &dialing{done: make(chan struct{}), gen: p.limitGen}
	p.slots[i].dial = d
	p.dials++
	go p.dial(i, d)
	return other
}

// maxGrowing bounds a pool's connections being dialled or not yet answered
// on: the node's reserve takes 4 a peer address (dataplane's
// DefaultReserveConns / 4).
const maxGrowing = 4

// firstReplyWait bounds how long a call waits for the first reply on a
// new connection before it goes on the connection too (the node's reserve
// answers in a round trip): a slow first call (a large value, a node
// busy) does not hold the others for longer. A hostile check saw 8 fast
// gets wait 950 ms behind a slow first get on a pool of one connection,
// when they waited for its reply unbounded.
const firstReplyWait = 5 * time.Millisecond

// waitFirst waits for tried (a new connection's first reply, or its
// failure) at most firstReplyWait, reporting whether it came, or for ctx.
func waitFirst(ctx context.Context, tried <-chan struct{}) (bool, error) {
	t := time.NewTimer(firstReplyWait)
	defer t.Stop()
	select {
	case <-tried:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// growingLocked returns how many of the pool's connections are being
// dialled or not yet answered on, and a channel that closes when one of
// them is done (a dial's, or a connection's first reply or failure); nil
// when none. A connection no call has gone on yet is not growing: nothing
// will answer on it until one does. p.mu is held.
func (p *pool) growingLocked() (int, <-chan struct{}) {
	n, wait := 0, (<-chan struct{})(nil)
	for k := range p.slots {
		s := &p.slots[k]
		switch {
		case s.dial != nil:
			n, wait = n+1, s.dial.done
		case s.mc != nil && !s.mc.answered.Load() && !s.mc.dead() && s.mc.untried():
			n, wait = n+1, s.mc.tried
		}
	}
	return n, wait
}

// awaitAnswered returns a connection the node has answered on, or, when
// there is none, one no call has gone on yet, waiting, up to the client's
// DialTimeout, while the pool has connections being dialled or not yet
// answered on; nil when none comes. A refused call whose pool had no
// answered connection yet (a cold start at a full node) was answered the
// refusal, though the pool's other new connections were taken
// milliseconds later (a hostile check: 1-3 of 400 calls a run). It looks
// every millisecond or so, not at one connection's end: another may be
// answered first (a hostile check's call waited 2 s on a slow one).
func (p *pool) awaitAnswered(ctx context.Context) *muxConn {
	deadline := time.Now().Add(p.c.opts.DialTimeout)
	for look := time.Millisecond; ; look = min(2*look, 20*time.Millisecond) {
		if mc := p.answeredConn(); mc != nil {
			return mc
		}
		p.mu.Lock()
		n, _ := p.growingLocked()
		var fresh *muxConn
		if n == 0 {
			fresh = p.freshLocked()
		}
		p.mu.Unlock()
		left := time.Until(deadline)
		if n == 0 || left <= 0 {
			return fresh
		}
		t := time.NewTimer(min(look, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// freshLocked returns, handed out, a live connection no call has gone on
// yet, or nil. p.mu is held.
func (p *pool) freshLocked() *muxConn {
	for k := range p.slots {
		s := &p.slots[k]
		if mc := s.mc; mc != nil && !mc.answered.Load() && !mc.untried() && p.usableLocked(s) != nil {
			mc.hand()
			return mc
		}
	}
	return nil
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

// answeredConn returns a live connection the node has answered on, or
// nil, for a call sent again (refused at the limit, or lost before its
// frame went whole) or whose dial failed. Only such a one: a call refused
// at the limit went, before, to the next slot's connection, which could
// be another the node had not yet refused (a test saw 4 refusals in a row
// for one call), and a pool with none dialled again for each try (a
// hostile check: 4 connections a call to a full node).
func (p *pool) answeredConn() *muxConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := int(p.next.Add(1))
	for k := range len(p.slots) {
		s := &p.slots[(start+k)%len(p.slots)]
		if mc := s.mc; mc != nil && mc.answered.Load() && p.usableLocked(s) != nil {
			mc.hand()
			return mc
		}
	}
	return nil
}
