package dataplane

import "maps"

// The NVMe tier's per-owner shares (nvmeShare): each job's keys are
// counted in its own entry (nvmeJob: what dropping the job frees) and in
// the share of its owner (ownerKey), which the index share, its slack and
// the read staging share bound. A job's owner may become known after it
// put keys (the table comes with heartbeats): bind moves the job's exact
// counts from the share it was bound to into its owner's, when the node
// says so (rebind) and at the job's next put, so nothing is left behind
// or counted twice. Reads give their staging back to the share they were
// charged to (chargeRead).

// setOwners implements ownedTier: ownerOf names each job's owner key (nil:
// none, the job is its own owner). Called before the tier serves.
func (t *NVMe) setOwners(ownerOf func(job []byte) []byte) { t.ownerOf = ownerOf }

// rebind implements ownedTier: it moves job's counts into its owner's
// share once the table names the owner.
func (t *NVMe) rebind(job string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if j := t.jobs[job]; j != nil {
		t.bind(j, job)
	}
}

// jobOf returns job's entry, entered when new, bound to its owner's share
// (bind); mu is held.
func (t *NVMe) jobOf(job string) *nvmeJob {
	j := t.jobs[job]
	if j == nil {
		j = &nvmeJob{keys: make(map[string]*nvmeVersion)}
		t.jobs[job] = j
	}
	t.bind(j, job)
	return j
}

// owner is job's owner key from ownerOf, nil when it names none.
func (t *NVMe) owner(job string) []byte {
	if t.ownerOf == nil {
		return nil
	}
	return t.ownerOf([]byte(job))
}

// bind counts j in its owner's share, moving its counts out of the share
// it was in when that is another owner's; mu is held.
func (t *NVMe) bind(j *nvmeJob, job string) {
	owner := t.owner(job)
	if j.share != nil && isOwnerKey(j.share.key, owner, job) {
		return
	}
	t.unbind(j)
	key := ownerKey(owner, job)
	s := t.shares[key]
	if s == nil {
		s = &nvmeShare{key: key}
		t.shares[key] = s
	}
	s.jobs++
	j.share = s
	t.over -= t.pooled(s)
	s.index += j.index
	s.used += j.used
	t.over += t.pooled(s)
}

// unbind takes j's counts out of its share, forgetting the share with its
// last job; mu is held.
func (t *NVMe) unbind(j *nvmeJob) {
	s := j.share
	if s == nil {
		return
	}
	t.over -= t.pooled(s)
	s.index -= j.index
	s.used -= j.used
	t.over += t.pooled(s)
	j.share = nil
	if s.jobs--; s.jobs == 0 {
		delete(t.shares, s.key)
	}
}

// count adds index bytes of index cost and used allocated bytes to j, its
// share and the tier (negative: takes them away); mu is held.
func (t *NVMe) count(j *nvmeJob, index, used int64) {
	s := j.share
	t.over -= t.pooled(s)
	t.index += index
	j.index += index
	j.used += used
	s.index += index
	s.used += used
	t.over += t.pooled(s)
}

// forgetEmpty forgets job's entry j once it holds no key, and copies its
// key map smaller once it holds under 1/8 of the most it held; mu is held.
func (t *NVMe) forgetEmpty(job string, j *nvmeJob) {
	switch {
	case len(j.keys) == 0:
		t.unbind(j)
		delete(t.jobs, job)
	case j.peak >= nvmeCompactMin && len(j.keys)*8 < j.peak && j.walks.Load() == 0:
		// A Go map keeps the buckets of its most keys: copied, the
		// job's keys take what they need. Before, a hostile trial's
		// jobs of 120,000 NVMe keys, ended keeping 10 persisted, held
		// 8-12 MB of a node's memory each, counted nowhere.
		keys := make(map[string]*nvmeVersion, len(j.keys))
		maps.Copy(keys, j.keys)
		j.keys, j.peak = keys, len(keys)
	}
}

// nvmeCompactMin is the fewest keys a job's map must have held before it
// is copied smaller (forgetEmpty): below it the buckets are few.
const nvmeCompactMin = 1024

// ownerUsage is the allocated bytes of the values of job's owner's jobs
// together in the tier (their share's used; Node.ownerBytes), each job
// counted jobEntryCost more.
func (t *NVMe) ownerUsage(job []byte) int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s := t.shares[ownerKey(t.owner(string(job)), string(job))]
	if j := t.jobs[string(job)]; j != nil && j.share != nil {
		s = j.share
	}
	if s == nil {
		return 0
	}
	return s.used + int64(s.jobs)*jobEntryCost
}
