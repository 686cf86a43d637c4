package dataplane

// The version table's shares count per owner: a job's versions on a tier
// are counted in its own count (jobVersions: what its drop and its
// versions' removal take back) and in its owner's (ownerVersions, keyed
// like proveFor: the table's owner, else the job), which admit bounds by
// jobVersionSlack and jobVersionShare. Counted per job, one client's
// jobs each had 1 MiB of slack (the re-check's 225 jobs filled the
// shared quarter). A job whose owner the table names after its first
// chunks has its exact counts moved into its owner's (bindLocked: at its
// next chunk, and at once when the node learns the owner, rebind).

// jobVersions is one job's count on one tier and the owner count it is
// part of.
type jobVersions struct {
	jobCost
	owner *ownerVersions
}

// ownerVersions is the summed count of one owner's jobs on one tier.
type ownerVersions struct {
	jobCost
	key  jobTier // the tier and the owner key
	jobs int     // jobVersions bound to it; forgotten with the last
}

// ownerLocked is job's owner key from ownerOf, nil when it names none.
func (v *versionTable) ownerLocked(job string) []byte {
	if v.ownerOf == nil {
		return nil
	}
	return v.ownerOf([]byte(job))
}

// bindLocked counts jv (job jt's) in its owner's count, moving it out of
// the one it was in when that is another owner's; mu is held.
func (v *versionTable) bindLocked(jt jobTier, jv *jobVersions) {
	owner := v.ownerLocked(jt.job)
	if jv.owner != nil && isOwnerKey(jv.owner.key.job, owner, jt.job) {
		return
	}
	v.unbindLocked(jv)
	key := jobTier{jt.tier, ownerKey(owner, jt.job)}
	o := v.owners[key]
	if o == nil {
		o = &ownerVersions{key: key}
		v.owners[key] = o
	}
	o.jobs++
	jv.owner = o
	v.over -= o.over()
	o.cost += jv.cost
	o.data += jv.data
	v.over += o.over()
}

// unbindLocked takes jv's count out of its owner's, forgetting that with
// its last job; mu is held.
func (v *versionTable) unbindLocked(jv *jobVersions) {
	o := jv.owner
	if o == nil {
		return
	}
	v.over -= o.over()
	o.cost -= jv.cost
	o.data -= jv.data
	v.over += o.over()
	jv.owner = nil
	if o.jobs--; o.jobs == 0 {
		delete(v.owners, o.key)
	}
}

// ownerCostLocked is what the versions of jt's owner on its tier cost,
// with jt's job counted there (bindLocked); mu is held.
func (v *versionTable) ownerCostLocked(jt jobTier) jobCost {
	if jv := v.jobs[jt]; jv != nil {
		v.bindLocked(jt, jv)
		return jv.owner.jobCost
	}
	if o := v.owners[jobTier{jt.tier, ownerKey(v.ownerLocked(jt.job), jt.job)}]; o != nil {
		return o.jobCost
	}
	return jobCost{}
}

// rebind moves job's counts into its owner's once the table names the
// owner (Node.ownerLearned).
func (v *versionTable) rebind(job string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, tier := range []Kind{KindDRAM, KindNVMe} {
		jt := jobTier{tier, job}
		if jv := v.jobs[jt]; jv != nil {
			v.bindLocked(jt, jv)
		}
	}
}
