package dataplane

import (
	"strings"
	"time"
)

// Versions a prefix delete removed, until their drop
//
// A prefix delete answers with the versions of the manifests it removed
// (wire.Response.Versions), whose chunks, confirmed and spread over the
// job's nodes, the SDK then drops on every node (OpDropVersion). When that
// reply is lost (the connection fails after the node executed the delete),
// no one can name those versions again: the pass sent again, or the
// caller's retry, finds their keys gone, and the chunks, which no lease
// reclaims, stayed until the job ended (pocket's
// TestPrefixDeleteReplyLostDropsChunks: 15 chunks of 3 objects, 194 KiB,
// on one lost reply). So the node keeps each version a prefix delete
// removed until a drop of that version reaches it (versionTable.take), and
// every later prefix delete of the job answers the kept versions beside
// those it removed itself: the pass sent again, a retry, or any prefix
// delete of the job that comes later, from any client, drops them. Every
// version kept is garbage (its manifest is gone, and no version is
// published twice), so answering one twice, its first drop still on its
// way, costs a drop and nothing else.
//
// Kept versions are bounded (maxRemovedPerJob per job and tier,
// maxRemoved in all, about 40 bytes each, and maxRemovedPrefixBytes of
// the prefixes they were removed under): past a bound a version is not
// kept, and if its reply is lost its chunks stay until the job ends, as
// before. A job's drop forgets its kept versions (versionTable.dropJob).
//
// A kept version is named at once only to a prefix delete whose prefix
// covers the one it was removed under (the pass sent again, the caller's
// retry, a delete of a parent or of the whole job); to the job's other
// prefix deletes only once keptAlone has passed, when its remover's own
// drop, if it was coming, has come (the SDK drops within its settle, 10 s).
// Named to every prefix delete at once, the versions one client was still
// dropping went to every other client deleting at the same time, each of
// which dropped them again on every node: 32 clients each removing 16
// objects sent 25,344 drops instead of 1,536, and took 1.08 s instead of
// 39 ms (a review).
const (
	maxRemovedPerJob      = 2 * deletePrefixMax
	maxRemoved            = 1 << 18
	maxRemovedPrefixBytes = 32 << 20
)

// defaultKeptAlone is how long a kept version is named only to prefix
// deletes that cover its own prefix (versionTable.keptAlone, which tests
// change).
const defaultKeptAlone = 15 * time.Second

// keptVersion is a kept version's prefix delete: the prefix it was
// removed under and when.
type keptVersion struct {
	prefix string
	at     time.Time
}

// keepRemoved keeps vers, versions a prefix delete of job k under prefix
// removed.
func (v *versionTable) keepRemoved(k jobTier, prefix []byte, vers []uint64) {
	if len(vers) == 0 {
		return
	}
	kv := keptVersion{prefix: string(prefix), at: time.Now()}
	v.mu.Lock()
	defer v.mu.Unlock()
	kept := v.removed[k]
	for _, ver := range vers {
		if v.removedLen >= maxRemoved || len(kept) >= maxRemovedPerJob || v.removedBytes+len(kv.prefix) > maxRemovedPrefixBytes {
			return
		}
		if kept == nil {
			kept = map[uint64]keptVersion{}
			v.removed[k] = kept
		}
		if old, ok := kept[ver]; ok {
			v.removedBytes -= len(old.prefix)
		} else {
			v.removedLen++
		}
		kept[ver] = kv
		v.removedBytes += len(kv.prefix)
	}
}

// removedKept returns up to room of job k's kept versions (keepRemoved)
// that a prefix delete under prefix is to name: those removed under a
// prefix it covers, and the others kept longer than keptAlone.
func (v *versionTable) removedKept(k jobTier, prefix []byte, room int) []uint64 {
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []uint64
	for ver, kv := range v.removed[k] {
		if len(out) >= room {
			break
		}
		if strings.HasPrefix(kv.prefix, string(prefix)) || now.Sub(kv.at) >= v.keptAlone {
			out = append(out, ver)
		}
	}
	return out
}

// forgetRemovedLocked forgets version k's keeping: its drop reached the
// node.
func (v *versionTable) forgetRemovedLocked(k verKey) {
	jt := jobTier{k.tier, k.job}
	kept := v.removed[jt]
	kv, ok := kept[k.ver]
	if !ok {
		return
	}
	delete(kept, k.ver)
	v.removedLen--
	v.removedBytes -= len(kv.prefix)
	if len(kept) == 0 {
		delete(v.removed, jt)
	}
}

// dropRemovedLocked forgets every version kept for job.
func (v *versionTable) dropRemovedLocked(job string) {
	for jt, kept := range v.removed {
		if jt.job == job {
			v.removedLen -= len(kept)
			for _, kv := range kept {
				v.removedBytes -= len(kv.prefix)
			}
			delete(v.removed, jt)
		}
	}
}
