package dataplane

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
// maxRemoved in all, about 40 bytes each): past a bound a version is not
// kept, and if its reply is lost its chunks stay until the job ends, as
// before. A job's drop forgets its kept versions (versionTable.dropJob).
const (
	maxRemovedPerJob = 2 * deletePrefixMax
	maxRemoved       = 1 << 18
)

// keepRemoved keeps vers, versions a prefix delete of job k removed.
func (v *versionTable) keepRemoved(k jobTier, vers []uint64) {
	if len(vers) == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	kept := v.removed[k]
	for _, ver := range vers {
		if v.removedLen >= maxRemoved || len(kept) >= maxRemovedPerJob {
			return
		}
		if kept == nil {
			kept = map[uint64]struct{}{}
			v.removed[k] = kept
		}
		if _, ok := kept[ver]; !ok {
			kept[ver] = struct{}{}
			v.removedLen++
		}
	}
}

// removedKept returns up to room of job k's kept versions (keepRemoved).
func (v *versionTable) removedKept(k jobTier, room int) []uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []uint64
	for ver := range v.removed[k] {
		if len(out) >= room {
			break
		}
		out = append(out, ver)
	}
	return out
}

// forgetRemovedLocked forgets version k's keeping: its drop reached the
// node.
func (v *versionTable) forgetRemovedLocked(k verKey) {
	jt := jobTier{k.tier, k.job}
	kept := v.removed[jt]
	if _, ok := kept[k.ver]; !ok {
		return
	}
	delete(kept, k.ver)
	v.removedLen--
	if len(kept) == 0 {
		delete(v.removed, jt)
	}
}

// dropRemovedLocked forgets every version kept for job.
func (v *versionTable) dropRemovedLocked(job string) {
	for jt, kept := range v.removed {
		if jt.job == job {
			v.removedLen -= len(kept)
			delete(v.removed, jt)
		}
	}
}
