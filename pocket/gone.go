package pocket

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// Nodes gone from an ended job's map
//
// An ended job's map is frozen (its credential, persist.go): the
// controller forgets the job, so no newer map ever says that a node of it
// was retired or died, and the controller's node registry needs the
// operator role. A node's persisted values live in its process, so a
// node that refuses connections (nothing listens at its address) holds
// none of them any more: it was retired (drained with its persisted values
// discarded), or it died. A retired job's request to such a node dials it
// again for goneWait, the time a live job's fan-out waits for the map
// without a stopped node (staleWait), in case the refusal is brief (a
// proxy or service address with no ready endpoint a moment); a node still
// refusing then is gone for the handle: marked dead in its map, so that
// fan-outs skip it at once from then on, and named by GoneNodes. Then:
//
//   - listings, counts, usage and prefix deletes list (or delete) what the
//     reachable nodes hold and succeed; a node that cannot be reached
//     otherwise (a timeout, a connection lost: it may still hold values)
//     fails them with an error naming it, as before;
//   - a single-key read or delete whose owner is gone answers ErrLost
//     ("gone with node X: recompute it"), never a bare ErrUnavailable,
//     which reads as "retry"; RemoveAll takes it as nothing to delete;
//   - a node that answers revoked for a single-key read or delete holds
//     none of the job's values (dataplane: an ended job's entry is retired
//     while it keeps persisted values, revoked or gone once it keeps none),
//     so the key reads as ErrNotFound, not "token revoked".
//
// A node the map marks suspect (Map.Suspect: named dead by a credential's
// mark or by the controller at the job's deregistration, hints that a
// node coming back with its values outdates) is tried all the same, but
// without goneWait: refusing connections, it is gone at once (marked dead,
// named by GoneNodes); answering, it is an ordinary node of the map again.
//
// A live job's requests are unchanged: its nodes' retirement and death
// reach it through the controller's maps (lost.go, fanOutChanged).

// goneWait is how long a retired job's request keeps dialing a node that
// refuses connections before the node counts as gone.
const goneWait = staleWait

// goneError is the answer for a node found gone: wire.ErrLost, naming the
// node.
type goneError struct {
	addr string
	err  *wire.Error
}

func (e *goneError) Error() string { return e.err.Error() }
func (e *goneError) Unwrap() error { return e.err }

// goneErr is the error of a request to addr, a node gone from the retired
// job's map.
func goneErr(addr string) error {
	return &goneError{addr: addr, err: &wire.Error{Code: wire.CodeLost, Msg: fmt.Sprintf(
		"values on node %s are gone (retired or dead: it refused connections for %v after the job ended); recompute them",
		addr, goneWait)}}
}

// isGone reports whether err is a node found gone (goneErr).
func isGone(err error) bool {
	var g *goneError
	return errors.As(err, &g)
}

// goneCheck sends a request of the job to addr (send). For a retired job
// whose node cannot be reached, it finds out whether the node is gone:
// while the node refuses connections it tries again, with growing pauses,
// for up to goneWait, and then marks the node gone and answers goneErr.
// What it tries is the request itself when sending it again is safe
// (resend: it changes nothing twice, or it certainly never reached the
// node), else a listing of one key (probe), and then the request's first
// answer stands (its outcome is unknown) unless the node is gone. A
// suspect node (Map.Suspect) that refuses connections is gone at once; one
// that answers is no longer suspect. A live job's request is sent once.
func (j *Job) goneCheck(ctx context.Context, addr string, resend bool, send func() (client.Reply, error)) (client.Reply, error) {
	r, err := send()
	if !j.retired.Load() {
		return r, err
	}
	if !errors.Is(err, wire.ErrUnavailable) {
		j.answered(addr, err)
		return r, err
	}
	first, firstErr := r, err
	try, probing := send, !resend && !client.NotSent(err)
	if probing {
		try = func() (client.Reply, error) { return j.probe(ctx, addr) }
	}
	// A connection lost (each pooled one may be) is tried again, a few
	// times, so that a new dial tells whether the node is there: one the
	// node closed or reset, or one that failed before the request went
	// whole. One failed on silence is not: a frozen node takes the dial
	// and answers nothing, and each try would wait out the silence again
	// (a hostile check: 5 silences a call); its error stands.
	// A call whose caller has gone sends its request no more (givenUp);
	// probes are no requests of its own.
	gone := func() error {
		if g := givenUp(ctx); g != nil && !probing {
			return fmt.Errorf("%w (%w)", g, err)
		}
		return nil
	}
	for i := 0; i < max(lostTries, j.s.cfg.ConnsPerNode+1) && tryAgain(err); i++ {
		if g := gone(); g != nil {
			return r, g
		}
		r, err = try()
	}
	wait := goneWait
	if j.snapshot().Suspect[addr] {
		wait = 0
	}
	deadline := time.Now().Add(wait)
	for wait := 20 * time.Millisecond; client.Refused(err); wait = min(2*wait, 500*time.Millisecond) {
		if !time.Now().Before(deadline) {
			j.markGone(addr)
			return client.Reply{}, goneErr(addr)
		}
		select {
		case <-ctx.Done():
			return first, firstErr
		case <-time.After(min(wait, time.Until(deadline))):
		}
		if g := gone(); g != nil {
			return r, g
		}
		r, err = try()
	}
	j.answered(addr, err)
	if probing {
		return first, firstErr
	}
	return r, err
}

// answered clears addr's suspect mark (Map.Suspect) when err, the error of
// a request to it, is an answer of the node: nil, or an error the node
// sent (not unavailable, not the context's).
func (j *Job) answered(addr string, err error) {
	var we *wire.Error
	if err != nil && (!errors.As(err, &we) || errors.Is(err, wire.ErrUnavailable)) {
		return
	}
	if !j.snapshot().Suspect[addr] {
		return
	}
	j.goneMu.Lock()
	defer j.goneMu.Unlock()
	m := j.snapshot()
	if !m.Suspect[addr] {
		return
	}
	m.Suspect = maps.Clone(m.Suspect)
	delete(m.Suspect, addr)
	j.setMap(m)
}

// tryAgain reports whether goneCheck tries a node again after err: its
// connection was lost, closed or reset by the node or before the request
// went whole, and the dial was not refused (refusals wait, goneWait).
func tryAgain(err error) bool {
	return errors.Is(err, wire.ErrUnavailable) && !client.Refused(err) && (client.ClosedByNode(err) || client.NotSent(err))
}

// lostTries bounds how many times goneCheck tries a node again whose
// connection was lost, before it has dialed anew: more than a Store's
// connections per node (2 by default; more when Config.ConnsPerNode is
// larger).
const lostTries = 4

// probe lists one key of the job at addr: a request that changes nothing,
// to learn whether the node is there.
func (j *Job) probe(ctx context.Context, addr string) (client.Reply, error) {
	t := j.targetOf(addr)
	req := wire.Request{Job: t.job, Token: t.token, Epoch: t.epoch, Limit: 1}
	return j.s.data.Do(ctx, addr, wire.OpList, t.flags, &req, nil, nil)
}

// markGone marks addr dead in the retired job's map: fan-outs skip it,
// single-key requests to it answer goneErr at once.
func (j *Job) markGone(addr string) {
	j.goneMu.Lock()
	defer j.goneMu.Unlock()
	m := j.snapshot()
	if m.Dead[addr] {
		return
	}
	dead := maps.Clone(m.Dead)
	if dead == nil {
		dead = map[string]bool{}
	}
	dead[addr] = true
	m.Dead = dead
	if m.Suspect[addr] {
		m.Suspect = maps.Clone(m.Suspect)
		delete(m.Suspect, addr)
	}
	j.setMap(m)
	j.gone = append(j.gone, addr)
}

// GoneNodes lists the nodes of an ended job's map that this handle found
// gone (retired or dead: they refused connections for goneWait, 5 s, or,
// suspect ones (Map.Suspect), when first dialed), in
// the order found: the values they held are gone, and listings, counts
// and deletes leave them out. Empty for a live job, whose maps leave such
// nodes out (lost.go).
func (j *Job) GoneNodes() []string {
	j.goneMu.Lock()
	defer j.goneMu.Unlock()
	return slices.Clone(j.gone)
}

// keyOp reports whether (op, flags) reads or deletes one key: a request a
// node that holds none of a retired job's values answers "not found".
func keyOp(op wire.Op, flags uint16) bool {
	return (op == wire.OpGet || op == wire.OpStat || op == wire.OpDelete) && flags&wire.FlagPrefix == 0
}

// keyAnswer is a retired job's single-key read or delete answer from
// addr: revoked (the node holds none of the job's values) reads as not
// found. Every other answer, and a live job's, is returned as it is.
func (j *Job) keyAnswer(op wire.Op, flags uint16, addr string, err error) error {
	if keyOp(op, flags) && j.retired.Load() && errors.Is(err, wire.ErrRevoked) {
		return &wire.Error{Code: wire.CodeNotFound, Msg: "the job has ended, and only its persist-after-job values remain: node " + addr + " keeps none of them"}
	}
	return err
}

// retiredKeyDo runs a single-key request of a retired job whose key has
// an old owner (t.old: the map the job ended with drained or grew). No
// value of an ended job moves any more (drains leave them), so whatever
// the old owner holds is older than what the live owner holds, and each
// owner answers on its own:
//
//   - a read asks the live owner, then the old one;
//   - a delete deletes at both (the old copy would read again);
//   - a read that deletes looks at the live owner; holding a value, it
//     deletes the old owner's older copy and then reads and deletes at
//     the live owner (an old owner that fails fails the call, the value
//     untaken); the live owner holding nothing, it reads and deletes at
//     the old one.
//
// Answers combine as bestAnswer says.
func (j *Job) retiredKeyDo(ctx context.Context, t target, op wire.Op, flags uint16, key []byte, x reqExtra, payload, dst []byte) (client.Reply, error) {
	one := func(addr string, op wire.Op, flags uint16) (client.Reply, error) {
		if j.snapshot().Dead[addr] {
			return client.Reply{}, goneErr(addr)
		}
		req := wire.Request{Job: t.job, Key: key, Token: t.token, Epoch: t.epoch, Version: x.version, ObjectSize: x.objectSize}
		r, err := j.goneCheck(ctx, addr, resendable(op, flags), func() (client.Reply, error) {
			return j.retiredPatient(ctx, func() (client.Reply, error) {
				return j.s.data.Do(ctx, addr, op, flags|t.flags, &req, payload, dst)
			})
		})
		return r, j.keyAnswer(op, flags, addr, err)
	}
	switch {
	case op == wire.OpDelete:
		ro, eo := one(t.old, op, flags)
		if errors.Is(eo, errGivenUp) {
			return ro, eo // the older copy stays: so does the live owner's value
		}
		rl, el := one(t.addr, op, flags)
		if el == nil && eo == nil {
			// The caller drops the live owner's manifest version; an
			// older one deleted at the old owner is no one else's.
			j.dropOlder(ro, rl.Meta.Version)
		}
		if eo == nil && el != nil && !absent(el) {
			// Deleted at the old owner only: the live owner's value
			// stays, and reads. The call fails with the live owner's
			// error, and the version deleted at the old owner is
			// dropped only when the live owner holds another
			// (liveMayHold). Before, the old owner's success was the
			// answer, and the caller dropped its version.
			if ov := ro.Meta.Version; ov != 0 && !j.liveMayHold(t, key, ov) {
				j.dropVersion(ov)
			} else if ov != 0 {
				j.undropped.add(key, ov) // settled later (undropped.go)
			}
			return rl, el
		}
		return bestAnswer(rl, el, ro, eo)
	case op == wire.OpGet && flags&wire.FlagDeleteAfterRead != 0:
		// The live owner is looked at without deleting; holding a value,
		// the old owner's copy goes first, and only then is the value read
		// and deleted, so that an old owner that fails (refused, or its
		// reply lost) fails the call with the value still in place, as
		// movingKey.readDelete does. Before, the value was taken first and
		// the old owner's failure was then the call's answer: the value
		// gone, handed to no one (and the older copy, if its delete was
		// refused, read by the next get).
		sl, el := one(t.addr, wire.OpStat, flags&^wire.FlagDeleteAfterRead)
		if el == nil {
			ro, eo := one(t.old, wire.OpDelete, flags&^wire.FlagDeleteAfterRead)
			if eo != nil && !absent(eo) {
				return client.Reply{}, eo
			}
			if eo == nil {
				j.dropOlder(ro, sl.Meta.Version)
			}
			return one(t.addr, op, flags)
		}
		if !absent(el) {
			return sl, el
		}
		ro, eo := one(t.old, op, flags)
		return bestAnswer(sl, el, ro, eo)
	case op == wire.OpGet, op == wire.OpStat:
		rl, el := one(t.addr, op, flags)
		if !absent(el) {
			return rl, el
		}
		ro, eo := one(t.old, op, flags)
		return bestAnswer(rl, el, ro, eo)
	}
	return one(t.addr, op, flags) // a put: the node refuses it (read-only)
}

// dropOlder drops the chunks of the manifest an old owner's delete
// removed (old, its reply), unless it is the live owner's version live
// (the same object, which its own caller drops or keeps), as
// movingKey.deleteFound does: an older manifest no writer replaced is no
// one else's. Before, an ended job's old copy went and its chunks stayed
// until the job's sweep (a review: 4 records, 49,632 bytes).
func (j *Job) dropOlder(old client.Reply, live uint64) {
	if ov := old.Meta.Version; ov != 0 && ov != live {
		j.dropVersion(ov)
	}
}

// absent reports whether err says a key is not there: not found, or gone
// with its node.
func absent(err error) bool {
	return errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrLost)
}

// bestAnswer combines the answers of a key's live owner (rl, el) and old
// owner (ro, eo): a success (the live owner's first); else an error that
// is not "absent" (the node may hold the key: the caller must know); else
// gone (the key may have been on the gone node); else not found.
func bestAnswer(rl client.Reply, el error, ro client.Reply, eo error) (client.Reply, error) {
	switch {
	case el == nil:
		return rl, nil
	case eo == nil:
		return ro, nil
	case !absent(el):
		return rl, el
	case !absent(eo):
		return ro, eo
	case errors.Is(el, wire.ErrLost):
		return rl, el
	}
	return ro, eo
}
