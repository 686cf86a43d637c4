package pocket

import (
	"context"
	"errors"
	"slices"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// Reads and writes while a node drains
//
// When the controller drains a node it bumps the job's map epoch and marks
// the node draining in the map. From then on the client places every
// (key, chunk) over the map without the draining nodes (the live set):
// the owner a key will have once the drain is over. Because rendezvous
// hashing moves only the keys the removed node owned, every other key
// keeps its owner. Meanwhile the draining node pushes each value it holds
// to that same owner, then deletes its copy (dataplane/migrate.go). So:
//
//   - puts go to the live owner (the draining node refuses them anyway);
//   - gets and stats ask the live owner; on "not found", and when the key's
//     owner under the whole map is a draining node, they ask that node,
//     and if it no longer has the value either (it has just moved it)
//     the live owner once more. A value is at one of the two at every
//     moment, and is moved owner-first then deleted, so one of the three
//     reads finds it;
//   - deletes go to the draining node first, then the live owner, so a
//     value being moved is not left behind at either; "not found" only if
//     neither had it.
//
// Once the node has left, the map's next epoch no longer names it and
// the live set is the whole map again.
//
// A job's map also changes while it runs (the controller's elastic.go):
// a node leaving one job's map is marked draining in that map only, and is
// handled as above. A node joining a job's map is marked joining: it owns
// its share of the keys at once (puts go to it), while the values it now
// owns are still at their owner under the map without the joining nodes
// (the prior set), which moves them to it. So the old owner of a key is
// its owner under the prior set; every rule above holds with "the
// draining node" read as "the old owner". When the move is over the next
// epoch marks the node active and the prior set is the whole map again.

// liveSet is the map's nodes without the draining ones: set itself when
// none drains, or when all do (then there is nowhere else to go and the
// nodes' answers decide).
func liveSet(m Map, set *placement.Set) *placement.Set {
	if len(m.Draining) == 0 {
		return set
	}
	var live []placement.Node
	for _, n := range m.Nodes {
		if !m.Draining[n.Addr] {
			live = append(live, placement.Node{ID: n.Addr, Weight: n.Weight})
		}
	}
	if len(live) == 0 {
		return set
	}
	return placement.NewSet(live)
}

// priorSet is the map's nodes without those values still move to: the
// joining ones, and a node the controller gave the job to take a
// draining node's share (active in the map, Since wire.SinceNotYet:
// controller/drain.go, adoptOrphansLocked), which holds none of the
// values it owns under the whole map until the drainer has moved them.
// Set itself when there are none (or all are). Before, the adopted node
// was in the prior set: a key it owns under the whole map had it as both
// live and old owner, so reads asked it alone and answered "not found"
// for values still on the draining node (393-476 of 400 keys in a trial
// draining a one-node job), and ErrLost when the adopted node was one
// the job had lost before (it restarted at its address), whose lost
// placement gives it exactly those keys (a new user's trial).
func priorSet(m Map, set *placement.Set) *placement.Set {
	moving := func(n Node) bool { return m.Joining[n.Addr] || n.Since == wire.SinceNotYet }
	if !slices.ContainsFunc(m.Nodes, moving) {
		return set
	}
	var prior []placement.Node
	for _, n := range m.Nodes {
		if !moving(n) {
			prior = append(prior, placement.Node{ID: n.Addr, Weight: n.Weight})
		}
	}
	if len(prior) == 0 {
		return set
	}
	return placement.NewSet(prior)
}

// drainDo runs a request for a key whose old owner (t.old: its owner under
// the prior set, a draining node or, while a node joins, the node that
// owned it before) differs from its live owner (t.addr).
func (j *Job) drainDo(ctx context.Context, t target, op wire.Op, flags uint16, key []byte, x reqExtra, payload, dst []byte) (client.Reply, error) {
	c := movingKey{j: j, ctx: ctx, t: t, key: key, x: x}
	switch {
	case op == wire.OpGet && flags&wire.FlagDeleteAfterRead != 0:
		return c.readDelete(flags, dst)
	case op == wire.OpGet, op == wire.OpStat:
		r, err := c.send(t.addr, op, flags, x.version, dst)
		if !errors.Is(err, wire.ErrNotFound) {
			return r, err
		}
		r, oldErr := c.send(t.old, op, flags, x.version, dst)
		if oldErr == nil {
			return r, nil
		}
		r, err = c.send(t.addr, op, flags, x.version, dst)
		return r, notFoundAtBoth(err, oldErr)
	case op == wire.OpDelete && flags&wire.FlagIfVersion != 0:
		return c.deleteVersion(flags, x.version)
	case op == wire.OpDelete:
		return c.deleteBoth(flags, 0)
	case ifAbsentPut(op, flags):
		return c.putIfAbsent(flags, payload, dst)
	}
	// A put goes to the live owner, sent again while it answers busy, as
	// outside a change (keyPatient): a busy node stored nothing (its DRAM
	// tier making room, dataplane/dram_compact.go, or the job's puts
	// still arriving there over their bound). Before, such a put failed
	// busy at once while the key's owner changed.
	r, err := j.keyPatient(ctx, func() (client.Reply, error) {
		return j.s.data.Do(ctx, t.addr, op, flags|t.flags, c.req(x.version), payload, dst)
	})
	if err == nil && op == wire.OpPut && flags&wire.FlagChunk == 0 {
		c.dropOld(x.version)
	}
	return r, err
}

// notFoundAtBoth is the answer of a read that asked a key's live owner
// (err, its last answer) after its old owner (oldErr): "not found" only
// when the old owner said so too. An old owner that could not be asked
// (unreachable, restarting, a map newer than the request's) may hold the
// value, so its error stands (doReq fetches a newer map on it, and tries
// again). Before, any failure of the old owner read as the key's absence:
// a hostile trial stopped (SIGSTOP) a job's only node while another joined
// its map, and 93 gets answered "not found" for values that read back
// once it went on.
func notFoundAtBoth(err, oldErr error) error {
	if errors.Is(err, wire.ErrNotFound) && oldErr != nil && !errors.Is(oldErr, wire.ErrNotFound) {
		return oldErr
	}
	return err
}

// answered reports whether err is the old owner's answer about the key
// itself (none, "not found", or with FlagIfVersion "conflict"), not a
// failure to ask it.
func answered(err error) bool {
	return err == nil || errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrConflict)
}

// deadOldDo runs a request for a key whose old owner (under the prior
// set) the map marks dead: the node is not asked, and may come back with
// the value within the controller's grace (deadNodeAdvice). A read the live
// owner answers "not found" answers that the dead node's keys are
// unavailable; so do a delete and a read that deletes, which cannot be
// done at both owners, and are not sent. A put goes
// to the live owner: the dead node's older copy, if it comes back, is
// moved only where the key is absent (dataplane/migrate.go). Before, the
// live owner's "not found" was the answer, and deletes went to it alone:
// both said "not found" for values that read back once the node did.
func (j *Job) deadOldDo(ctx context.Context, t target, op wire.Op, flags uint16, key []byte, x reqExtra, payload, dst []byte) (client.Reply, error) {
	switch {
	case op == wire.OpDelete, op == wire.OpGet && flags&wire.FlagDeleteAfterRead != 0,
		ifAbsentPut(op, flags):
		// Nor a put if absent: the dead node may hold the key.
		return client.Reply{}, deadNodeErr(t.oldDead)
	}
	c := movingKey{j: j, ctx: ctx, t: t, key: key, x: x}
	send := func() (client.Reply, error) {
		return j.keyPatient(ctx, func() (client.Reply, error) {
			return j.s.data.Do(ctx, t.addr, op, flags|t.flags, c.req(x.version), payload, dst)
		})
	}
	r, err := j.resendLost(ctx, op, flags, send)
	if (op == wire.OpGet || op == wire.OpStat) && errors.Is(err, wire.ErrNotFound) {
		return client.Reply{}, deadNodeErr(t.oldDead)
	}
	return r, err
}

// dropOld deletes at the old owner what it holds of a key just put at its
// live owner (whose manifest, if any, is version ver), and drops the
// chunks of a manifest deleted there. Until the move reaches the key, the
// old owner holds the value the put replaced; if the live owner were then
// lost (killed, or restarted empty), that older value would read again,
// at the old owner or wherever its mover puts it, after the newer one was
// acknowledged. With it gone, the key answers the newer value, or "lost".
// The delete waits while the old owner moves the key (busy), like every
// delete in a change. It is best effort: an old owner that cannot be
// reached leaves the put acknowledged (it was stored), its copy in place.
func (c movingKey) dropOld(ver uint64) {
	// Cleanup: on a context of its own, as dropVersion, so that a caller
	// gone (givenUp) does not cut it short and leave the older copy to
	// read again should the live owner be lost.
	ctx, cancel := context.WithTimeout(context.Background(), settle) // no caller: givenUp never cuts it short
	defer cancel()
	c.ctx = ctx
	r, err := c.send(c.t.old, wire.OpDelete, 0, 0, nil)
	if ov := r.Meta.Version; err == nil && ov != 0 && ov != ver {
		c.j.dropVersion(ov) // no writer replaced it at the live owner: its chunks are no one else's
	}
}

// ifAbsentPut reports whether (op, flags) is a put with FlagIfAbsent of
// a key (not a chunk put: a chunk names its writer's own version).
func ifAbsentPut(op wire.Op, flags uint16) bool {
	return op == wire.OpPut && flags&(wire.FlagIfAbsent|wire.FlagChunk) == wire.FlagIfAbsent
}

// putIfAbsent is a put with FlagIfAbsent (stored only where the key holds
// nothing) while the key's owner changes. The live owner may not hold the
// key's value yet: the old owner, or its mover, does. So the old owner is
// asked first, waiting while it moves the key (busy): a value there
// answers "exists"; none there means none is left to move (the mover puts
// at the live owner before it deletes its own copy, and no write reaches
// the old owner during the change), and the put goes to the live owner,
// whose own check then decides. Before, the put went to the live owner
// alone: a hostile trial's if-absent puts, during a grow, on 3,000 keys
// that all held values, stored 449 of them over those values (the mover's
// own put-if-absent then found the key taken).
func (c movingKey) putIfAbsent(flags uint16, payload, dst []byte) (client.Reply, error) {
	_, err := c.send(c.t.old, wire.OpStat, 0, 0, nil)
	switch {
	case err == nil:
		return client.Reply{}, &wire.Error{Code: wire.CodeExists,
			Msg: "the key holds a value (at " + c.t.old + ", its owner before the job's map changed)"}
	case !errors.Is(err, wire.ErrNotFound):
		return client.Reply{}, client.MarkNotSent(err) // nothing was put
	}
	return c.j.keyPatient(c.ctx, func() (client.Reply, error) {
		return c.j.s.data.Do(c.ctx, c.t.addr, wire.OpPut, flags|c.t.flags, c.req(c.x.version), payload, dst)
	})
}

// movingKey is one request for a key whose owner changes (drainDo).
type movingKey struct {
	j   *Job
	ctx context.Context
	t   target
	key []byte
	x   reqExtra
}

func (c movingKey) req(version uint64) *wire.Request {
	t := c.t
	return &wire.Request{Job: t.job, Key: c.key, Token: t.token, Epoch: t.epoch, Version: version, ObjectSize: c.x.objectSize}
}

// send sends op for the key to addr (the old or the live owner), waiting
// while the old owner answers busy: it may be moving this very key, and a
// delete must wait until it has, so that it is not undone. The live owner
// is sent to again while it answers busy as outside a change
// (keyPatient): a busy node did nothing. Before, a get, stat or delete
// answered busy there (its device queue full, the job's NVMe staging
// share held) failed at once while the key's owner changed.
func (c movingKey) send(addr string, op wire.Op, flags uint16, version uint64, dst []byte) (client.Reply, error) {
	req := c.req(version)
	do := func() (client.Reply, error) { return c.j.s.data.Do(c.ctx, addr, op, flags|c.t.flags, req, nil, dst) }
	send := func() (client.Reply, error) { return c.j.keyPatient(c.ctx, do) }
	if addr == c.t.old {
		send = func() (client.Reply, error) { return untilNotBusy(c.ctx, do) }
	}
	return c.j.resendLost(c.ctx, op, flags, send) // a read whose connection was cut goes again
}

// liveMayHold reports whether the key's live owner (t.addr) may hold
// version ver after its delete failed, a delete at the old owner having
// removed ver there: the old owner's copy of ver (a mover's, put at the
// live owner and not yet deleted at home, or a move a job's end cut
// short) is then the live value's too, whose chunks must stay. A stat
// that answers another version or none says no; any other answer, yes
// (chunks kept rather than a value torn). Before, such a failed delete
// dropped ver: a review's delete cut short by its caller's end (givenUp)
// at a busy live owner holding the same version left the key reading
// "corrupt object" (live jobs: deleteBoth; retired ones: retiredKeyDo).
// The stat, a read, waits out busy on a context of its own: one cut short
// with the call kept a dead version's chunks for good (a third review).
func (j *Job) liveMayHold(t target, key []byte, ver uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	req := wire.Request{Job: t.job, Key: key, Token: t.token, Epoch: t.epoch}
	r, err := untilNotBusyFor(ctx, settle, func() (client.Reply, error) {
		return j.s.data.Do(ctx, t.addr, wire.OpStat, t.flags, &req, nil, nil)
	})
	switch err = j.keyAnswer(wire.OpStat, 0, t.addr, err); {
	case absent(err):
		return false
	case err != nil:
		return true
	}
	return r.Meta.Version == ver
}

// Deletes while the key's owner changes
//
// During a change every write goes to the live owner, so whatever the old
// owner holds is older than what the live owner holds. A delete of the
// key must leave neither: the old owner's value would read again (reads
// ask the old owner on "not found") and its mover would put it at the
// emptied live owner (put-if-absent). So every delete deletes at the old
// owner first, waiting while it answers busy, then at the live owner.
// The order is what makes it safe against the mover, which marks the key
// at the old owner, puts the value at the live owner if absent, deletes
// its own copy and unmarks (dataplane/migrate.go): a delete at the old
// owner before the mark leaves nothing to move; one during the move
// waits (busy) until the old copy is gone, and the moved value, if it
// landed, is at the live owner when the delete reaches it; after the move
// the old owner has nothing. Once the old owner has answered it holds
// nothing of the key, and nothing can put the key there again (writes go
// to the live owner), so nothing can move to the live owner after the
// second delete. The other order would lose: a delete at the live owner
// first empties it for the mover's put-if-absent of the older value.

// readDelete is a get that deletes what it read (FlagDeleteAfterRead). The
// live owner is looked at without deleting. If it holds a value, the key
// is deleted at the old owner (whatever is there is older), then read and
// deleted at the live owner in one step, whose answer is the caller's: of
// readers racing, exactly one gets the value, the others "not found" (or
// a value written meanwhile), as outside a change (a delete by the version
// looked at would let every racer return it). A manifest is left for the
// caller, who deletes it by version once its chunks are read
// (deleteVersion). If the live owner has nothing, the old owner reads and
// deletes as usual (its mover deletes at the live owner a value it moved
// meanwhile), and failing that the live owner, where the value may just
// have moved.
func (c movingKey) readDelete(flags uint16, dst []byte) (client.Reply, error) {
	r, err := c.send(c.t.addr, wire.OpGet, flags&^wire.FlagDeleteAfterRead|wire.FlagVersion, 0, dst)
	switch {
	case errors.Is(err, wire.ErrNotFound):
		// The old owner's read-and-delete: a failure that may have
		// consumed the value (a lost reply) ends the call, outcome
		// unknown; only one that certainly changed nothing goes on.
		r, oldErr := c.send(c.t.old, wire.OpGet, flags, 0, dst)
		if oldErr == nil || !unexecuted(oldErr) {
			return r, oldErr
		}
		r, err = c.send(c.t.addr, wire.OpGet, flags, 0, dst)
		return r, notFoundAtBoth(err, oldErr)
	case err != nil || r.Flags&wire.FlagManifest != 0:
		return r, err
	}
	oldR, err := c.send(c.t.old, wire.OpDelete, 0, 0, nil)
	if err != nil && !errors.Is(err, wire.ErrNotFound) {
		return client.Reply{}, err
	}
	if ov := oldR.Meta.Version; err == nil && ov != 0 && ov != r.Meta.Version {
		c.j.dropVersion(ov) // an older manifest no writer replaced: its chunks are no one else's
	}
	return c.send(c.t.addr, wire.OpGet, flags, 0, dst)
}

// deleteFound deletes the key at the old owner, whatever it holds there,
// then at the live owner if it still holds version ver, which it held
// when the caller looked, and answers for the live owner (a conflict: a
// newer value was written meanwhile, and stays; "not found": another
// delete came first). A manifest deleted at the old owner is dropped here:
// no writer replaced it (the writes of the change replaced nothing at the
// live owner), so no one else will drop its chunks.
func (c movingKey) deleteFound(ver uint64) (client.Reply, error) {
	oldR, err := c.send(c.t.old, wire.OpDelete, 0, 0, nil)
	if err != nil && !errors.Is(err, wire.ErrNotFound) {
		return client.Reply{}, err
	}
	if ov := oldR.Meta.Version; err == nil && ov != 0 && ov != ver {
		c.j.dropVersion(ov)
	}
	return c.send(c.t.addr, wire.OpDelete, wire.FlagIfVersion, ver, nil)
}

// deleteVersion deletes the key if it holds version ver (FlagIfVersion:
// the delete that ends a delete-after-read of a chunked object). When the
// live owner holds ver, anything at the old owner is older and goes too
// (deleteFound); else ver, if anywhere, is at the old owner or on its way
// from it, and deleteBoth deletes it by version at both.
func (c movingKey) deleteVersion(flags uint16, ver uint64) (client.Reply, error) {
	st, err := c.send(c.t.addr, wire.OpStat, 0, 0, nil)
	switch {
	case err == nil && st.Meta.Version == ver:
		return c.deleteFound(ver)
	case err != nil && !errors.Is(err, wire.ErrNotFound):
		return st, err
	}
	return c.deleteBoth(flags, ver)
}

// deleteBoth deletes a key at its old owner, then at its live owner (a
// value being moved is left at neither), and answers for the key: "not
// found" only if neither had it (with FlagIfVersion, a conflict only if
// neither held the version), and the old owner's failure when it may have
// deleted (outcome unknown). The caller drops the chunks of the manifest
// version the reply names; a second manifest version, deleted at the old
// owner while the live owner held another value (written after the map
// changed, and not yet met by the move), is no one else's to drop, so it
// is dropped here: its chunks would otherwise outlive the job's values.
func (c movingKey) deleteBoth(flags uint16, ver uint64) (client.Reply, error) {
	oldR, oldErr := c.send(c.t.old, wire.OpDelete, flags, ver, nil)
	if !answered(oldErr) {
		// The old owner may have deleted the value (a lost reply), or
		// could not be asked and may hold it: "not found" from the live
		// owner would be a lie, and deleting there alone would leave the
		// old owner's value to be moved back. Nothing is deleted: a
		// failure that certainly changed nothing is tried again on a
		// newer map (doReq), any other is the caller's.
		return client.Reply{}, oldErr
	}
	r, err := c.send(c.t.addr, wire.OpDelete, flags, ver, nil)
	if oldErr == nil && (errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrConflict)) {
		// Deleted at the old owner only: its reply names the version
		// deleted, whose chunks the caller drops (object.go).
		return oldR, nil
	}
	if ov := oldR.Meta.Version; oldErr == nil && ov != 0 && (err != nil || r.Meta.Version != ov) {
		if err == nil || !c.j.liveMayHold(c.t, c.key, ov) {
			c.j.dropVersion(ov)
		} else {
			c.j.undropped.add(c.key, ov) // dropped once the key is known deleted (undropped.go)
		}
	}
	if oldErr == nil && err != nil && c.x.deletedOld != nil {
		*c.x.deletedOld = true // doReq may send it again: see reqExtra
	}
	return r, err
}
