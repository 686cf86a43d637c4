package pocket

import (
	"context"
	"errors"

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

// priorSet is the map's nodes without the joining ones: set itself when
// none joins (or all do).
func priorSet(m Map, set *placement.Set) *placement.Set {
	if len(m.Joining) == 0 {
		return set
	}
	var prior []placement.Node
	for _, n := range m.Nodes {
		if !m.Joining[n.Addr] {
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
	send := func(addr string) (client.Reply, error) {
		req := wire.Request{Job: t.job, Key: key, Token: t.token, Epoch: t.epoch, Version: x.version, ObjectSize: x.objectSize}
		do := func() (client.Reply, error) { return j.s.data.Do(ctx, addr, op, flags|t.flags, &req, payload, dst) }
		if addr != t.old {
			return do()
		}
		// The old owner may be moving this very key: wait until it has,
		// so a delete is not undone.
		return untilNotBusy(ctx, do)
	}
	switch op {
	case wire.OpGet, wire.OpStat:
		r, err := send(t.addr)
		if !errors.Is(err, wire.ErrNotFound) {
			return r, err
		}
		if r, err := send(t.old); err == nil {
			return r, nil
		}
		return send(t.addr)
	case wire.OpDelete:
		return j.deleteBoth(send, t)
	}
	return send(t.addr)
}

// deleteBoth deletes a key at its old owner, then at its live owner (a
// value being moved is left at neither), and answers for the key: "not
// found" only if neither had it (with FlagIfVersion, a conflict only if
// neither held the version). The caller drops the chunks of the manifest
// version the reply names; a second manifest version, deleted at the old
// owner while the live owner held another value (written after the map
// changed, and not yet met by the move), is no one else's to drop, so it
// is dropped here: its chunks would otherwise outlive the job's values.
func (j *Job) deleteBoth(send func(addr string) (client.Reply, error), t target) (client.Reply, error) {
	oldR, oldErr := send(t.old)
	r, err := send(t.addr)
	if oldErr == nil && (errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrConflict)) {
		// Deleted at the old owner only: its reply names the version
		// deleted, whose chunks the caller drops (object.go).
		return oldR, nil
	}
	if ov := oldR.Meta.Version; oldErr == nil && ov != 0 && (err != nil || r.Meta.Version != ov) {
		j.dropVersion(ov)
	}
	return r, err
}
