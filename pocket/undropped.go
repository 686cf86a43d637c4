package pocket

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pocketstore/pocket/wire"
)

// undropped holds, per key, the manifest versions that deletes removed at
// the key's old owner during a change and could not drop: the live owner
// then failed without saying whether it holds the same version (refused
// as stale, and its stat too: deleteBoth, liveMayHold; a retired job's
// retiredKeyDo), and dropping the chunks of the live value would tear it.
// Before, their chunks stayed until the job ended: the delete sent again
// on the newer map deleted the live value only, and its answer named that
// value (a test of deletes refused stale by a live owner that had moved
// on to a held-back grow left 4 chunks of each deleted object).
//
// The next put, delete or consuming get of the key through the Job (the
// same call's last attempt, or a later call), or a prefix delete over it,
// settles them (settleUndropped, settleUnder): a version that neither of the key's owners holds
// now, asked in the order a mover empties them, is dropped; others wait
// for the next such call. No answer of the call itself is taken as proof:
// a review found a delete by another version answering "not found" while
// the old owner still held the kept version, whose chunks a first version
// of this code dropped (the key read corrupt).
//
// At most maxUndroppedKeys keys are held; past it a version is not held,
// and its chunks stay until the job ends, as before.
type undropped struct {
	n    atomic.Int32 // keys held: doReq's test without the lock
	mu   sync.Mutex
	keys map[string][]uint64
}

// maxUndroppedKeys bounds undropped: a few dozen bytes a key.
const maxUndroppedKeys = 4096

// add holds ver, removed at key's old owner, until it is settled.
func (u *undropped) add(key []byte, ver uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.keys == nil {
		u.keys = map[string][]uint64{}
	}
	held, ok := u.keys[string(key)]
	switch {
	case !ok && len(u.keys) >= maxUndroppedKeys, slices.Contains(held, ver):
		return
	case !ok:
		u.n.Add(1)
	}
	u.keys[string(key)] = append(held, ver)
}

// takeUnder removes and returns the versions held for keys under prefix.
func (u *undropped) takeUnder(prefix string) map[string][]uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := map[string][]uint64{}
	for k, vers := range u.keys {
		if strings.HasPrefix(k, prefix) {
			out[k] = vers
			delete(u.keys, k)
			u.n.Add(-1)
		}
	}
	return out
}

// take removes and returns the versions held for key.
func (u *undropped) take(key []byte) []uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	held, ok := u.keys[string(key)]
	if ok {
		delete(u.keys, string(key))
		u.n.Add(-1)
	}
	return held
}

// settleUndropped drops the versions held for key (undropped) that
// neither of its owners holds now, but for named, the version the call's
// answer names and its caller drops; it holds the others again. doReq
// calls it after a put, delete or consuming get of key, whatever its
// answer, within the caller's context: a review found a first version
// waiting out a busy stat for 10 s past the caller's deadline, on every
// later call of the key. It costs one atomic load while nothing is held.
func (j *Job) settleUndropped(ctx context.Context, key []byte, named uint64) {
	if j.undropped.n.Load() == 0 {
		return
	}
	j.settleVersions(ctx, key, j.undropped.take(key), named)
}

// settleUnder settles every key under prefix that holds undropped
// versions: RemoveAll's keys are deleted by the prefix, not one by one.
func (j *Job) settleUnder(ctx context.Context, prefix string) {
	if j.undropped.n.Load() == 0 {
		return
	}
	for key, vers := range j.undropped.takeUnder(prefix) {
		j.settleVersions(ctx, []byte(key), vers, 0)
	}
}

// settleVersions drops each of vers (held for key) that neither owner of
// key holds, but named, and holds the others again.
func (j *Job) settleVersions(ctx context.Context, key []byte, vers []uint64, named uint64) {
	for _, v := range vers {
		switch {
		case v == named:
		case j.versionGone(ctx, key, v):
			j.dropVersion(v)
		default:
			j.undropped.add(key, v)
		}
	}
}

// versionGone reports whether neither owner of key under the job's map
// holds version ver of it: both answered, with another version or none.
// The old owner is asked first: a mover puts the key at the live owner
// before it deletes its own copy, so a copy on its way is seen at one of
// them. A dead owner, one that does not answer or answers busy, and a
// caller gone say nothing.
func (j *Job) versionGone(ctx context.Context, key []byte, ver uint64) bool {
	t := j.route(key, 0)
	if t.none || t.dead || t.oldDead != "" || givenUp(ctx) != nil {
		return false
	}
	req := wire.Request{Job: t.job, Key: key, Token: t.token, Epoch: t.epoch}
	for _, addr := range []string{t.old, t.addr} {
		if addr == "" {
			continue
		}
		r, err := j.s.data.Do(ctx, addr, wire.OpStat, t.flags, &req, nil, nil)
		if err != nil && !errors.Is(err, wire.ErrNotFound) || err == nil && r.Meta.Version == ver {
			return false
		}
	}
	return true
}

// settles reports whether a request (op, flags) for a key's value is one
// after which doReq settles the key's undropped versions: a put of it, a
// delete of it, a consuming get.
func settles(op wire.Op, flags uint16) bool {
	switch op {
	case wire.OpDelete:
		return flags&wire.FlagPrefix == 0
	case wire.OpPut:
		return flags&wire.FlagChunk == 0
	case wire.OpGet:
		return flags&wire.FlagDeleteAfterRead != 0
	}
	return false
}
