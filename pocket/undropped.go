package pocket

import (
	"errors"
	"sync"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// undropped holds, per key, the manifest versions that deletes removed at
// the key's old owner during a change and could not drop: the live owner
// then failed without saying whether it holds the same version (refused
// as stale, and its stat too: deleteBoth, liveMayHold), and dropping the
// chunks of the live value would tear it. A later delete of the key
// through the Job (the same call's attempt on a newer map, or the
// caller's next try) settles them once its answer shows the key deleted
// everywhere it could be: "not found" makes every one dead; a success
// every one but the version it names, which its caller drops; a conflict
// of a delete by version, that version. Before, their chunks stayed until
// the job ended (the retry on the newer map deleted the live value, and
// its answer named that value only): in a test of deletes refused stale by
// a live owner that had moved on to a held-back grow, 4 chunks of each
// deleted object.
//
// At most maxUndroppedKeys keys are held; past it a version is not held,
// and its chunks stay until the job ends, as before.
type undropped struct {
	mu   sync.Mutex
	keys map[string][]uint64
}

// maxUndroppedKeys bounds undropped: a few dozen bytes a key.
const maxUndroppedKeys = 4096

// add holds ver, removed at key's old owner, until a delete settles it.
func (u *undropped) add(key []byte, ver uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.keys == nil {
		u.keys = map[string][]uint64{}
	}
	if _, ok := u.keys[string(key)]; !ok && len(u.keys) >= maxUndroppedKeys {
		return
	}
	u.keys[string(key)] = append(u.keys[string(key)], ver)
}

// settle drops the versions held for key that the answer (r, err) of a
// delete of it (flags, by version ver with FlagIfVersion) shows dead.
func (u *undropped) settle(j *Job, key []byte, flags uint16, ver uint64, r client.Reply, err error) {
	var dead func(uint64) bool
	switch {
	case err == nil:
		dead = func(v uint64) bool { return v != r.Meta.Version }
	case errors.Is(err, wire.ErrNotFound):
		dead = func(uint64) bool { return true }
	case errors.Is(err, wire.ErrConflict) && flags&wire.FlagIfVersion != 0:
		dead = func(v uint64) bool { return v == ver }
	default:
		return
	}
	u.mu.Lock()
	held := u.keys[string(key)]
	var drop, keep []uint64
	for _, v := range held {
		if dead(v) {
			drop = append(drop, v)
		} else {
			keep = append(keep, v)
		}
	}
	if len(keep) == 0 {
		delete(u.keys, string(key))
	} else {
		u.keys[string(key)] = keep
	}
	u.mu.Unlock()
	for _, v := range drop {
		j.dropVersion(v)
	}
}
