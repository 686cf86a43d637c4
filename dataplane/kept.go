package dataplane

import (
	"errors"

	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// keptKeys is what a node in a job's map takes of the map handed out
// before its entry's epoch: the requests of one key, at epoch from, for
// the keys it wins over set (set.Node(0) is this node), which are its own
// under both maps (controller/keep.go says why that is safe, and how the
// controller builds the set). So while the controller holds the newer map
// back for a node that has not confirmed it (up to that node's lease), the
// job's clients, who hold the older map, read and write every key that
// does not move; before, every request of theirs answered stale epoch at
// every node that had the newer one, and the SDKs, who could fetch no
// newer map, failed them all.
type keptKeys struct {
	at   uint64 // the entry's epoch the controller sent them with
	from uint64 // the older map's epoch (wire.JobEpoch.KeepEpoch)
	set  *placement.Set
}

// keep records the kept keys je brings (wire.JobEpoch.KeepEpoch, Keep);
// an entry that brings none at another epoch clears them. One that brings
// none at the same epoch leaves them: the map at it has been handed out
// since, and the older map's clients' requests for those keys are as safe
// as before.
func (e *jobEntry) keep(je *wire.JobEpoch) {
	switch {
	case je.KeepEpoch != 0 && je.KeepEpoch < je.Epoch && len(je.Keep) > 0 && !je.Out:
		ns := make([]placement.Node, len(je.Keep))
		for i, n := range je.Keep {
			ns[i] = placement.Node{ID: n.Addr, Weight: n.Weight}
		}
		e.kept.Store(&keptKeys{at: je.Epoch, from: je.KeepEpoch, set: placement.NewSet(ns)})
	default:
		if k := e.kept.Load(); k != nil && k.at != je.Epoch {
			e.kept.Store(nil)
		}
	}
}

// keeps reports whether a request of class op at epoch, for key (nil: a
// request of many keys), is one the entry at epoch cur keeps taking: at
// the kept map's epoch, for a key this node wins (a chunk key is placed
// by its chunk number, ChunkOf). A chunked put's confirm and a version's
// drop (opConfirm, opDropVersion) are not: the SDK sends a version's drop
// to every node of its map and counts on a node that moved on refusing
// it, so that it fetches the newer map and reaches the nodes a move may
// have taken chunks to (pocket/version.go, drainingFirst; a review found
// them left behind).
func (e *jobEntry) keeps(cur, epoch uint64, op opClass, key []byte) bool {
	k := e.kept.Load()
	if k == nil || k.at != cur || k.from != epoch || op == opConfirm || op == opDropVersion {
		return false
	}
	return len(key) > 0 && k.set.Pick(key, ChunkOf(key)) == 0
}

// errKept is checkEpoch's answer to a request it keeps taking (keeps):
// admitted once keptChange finds it changes no manifest.
var errKept = errors.New("dataplane: a request of the map before, for a kept key")

// keptChange refuses, as stale (naming the entry's epoch), a request of
// the map before that would write a manifest, or replace or remove one
// (a put, a delete, a get that deletes, of a key holding one): the SDKs
// drop the chunks of the version so replaced with a version's drop, which
// every node that moved on refuses at the older epoch, and, with the newer
// map held back, they give up on it (a review: 24 chunks of 11 objects
// deleted by the map before left on the job's nodes for good). Refused,
// the SDK fetches the newer map and runs the call on it, as before kept
// keys. Reads, and writes of plain values, pass. While the newer map is
// held back no client holds it, so no manifest is written at a kept key
// between the look at the tier and the request (kept-key manifest puts
// are refused); once it is out, a drop that a node refuses at the older
// epoch finds it and goes on there.
func keptChange(t Tier, h *wire.Header, r *wire.Request, e *jobEntry) error {
	stale := &wire.Error{Code: wire.CodeStaleEpoch, Epoch: e.epoch.Load(),
		Msg: "placement map is stale, and the request would replace or remove a chunked object; fetch the job's map again"}
	switch {
	case h.Op == wire.OpPut && h.Flags&wire.FlagManifest != 0:
		return stale
	case h.Op == wire.OpPut, h.Op == wire.OpDelete, h.Op == wire.OpGet && h.Flags&wire.FlagDeleteAfterRead != 0:
		if info, err := t.Stat(r.Job, r.Key); err == nil && info.Flags&Manifest != 0 {
			return stale
		}
	}
	return nil
}
