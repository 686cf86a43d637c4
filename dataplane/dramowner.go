package dataplane

import "sync/atomic"

// The DRAM tier's bytes per owner (owner.go's owner keys): what the jobs
// of one owner hold in the tier together, for the byte quota's bound on
// one node (wire.JobEpoch.MaxBytes, Node.ownerBytes). A job is bound to
// its owner when the tier enters it, at its first put: a node takes no
// put of a job the controller has not listed (errPendingStore), and the
// listing names the owner. A job an older controller's table named no
// owner for stays its own until it holds nothing (rebind takes no later
// owner: moving a count that puts change without the shards' locks could
// leave part of it behind).

// dramOwner is what the jobs of one owner hold in the tier: the bytes of
// their committed values, records included (the sum of their
// dramJob.used), and how many of the tier's jobs are bound to it (changed
// under DRAM.jobsMu; it is forgotten with the last).
type dramOwner struct {
	key  string
	used atomic.Int64
	jobs atomic.Int64
}

// setOwners implements ownedTier. Called before the tier serves.
func (d *DRAM) setOwners(ownerOf func(job []byte) []byte) { d.ownerOf = ownerOf }

// rebind implements ownedTier: a job keeps the owner it was entered with
// (see the top of the file).
func (d *DRAM) rebind(string) {}

// bindLocked binds a new job to its owner; jobsMu is held.
func (d *DRAM) bindLocked(j *dramJob) {
	if d.ownerOf == nil {
		return
	}
	key := ownerKey(d.ownerOf([]byte(j.name)), j.name)
	o := d.owners[key]
	if o == nil {
		if d.owners == nil {
			d.owners = make(map[string]*dramOwner)
		}
		o = &dramOwner{key: key}
		d.owners[key] = o
	}
	o.jobs.Add(1)
	j.owner = o
}

// unbindLocked unbinds a job leaving the tier, forgetting its owner with
// the owner's last job unless values read still hold bytes of it
// (retire); jobsMu is held. What the job's drop gives back after this is
// taken from the owner it was bound to. An owner kept so stays in the map
// (at most one entry per owner).
func (d *DRAM) unbindLocked(j *dramJob) {
	if o := j.owner; o != nil {
		if o.jobs.Add(-1) == 0 && o.used.Load() <= 0 && d.owners[o.key] == o {
			delete(d.owners, o.key)
		}
	}
}

// addUsed counts b more bytes (negative: fewer) of j's committed values,
// in j and in its owner.
func (j *dramJob) addUsed(b int64) {
	j.used.Add(b)
	if j.owner != nil {
		j.owner.used.Add(b)
	}
}

// ownerUsage is what the jobs of job's owner hold in the tier together,
// each job counted jobEntryCost more (the job's own bytes when the tier knows
// no owners).
func (d *DRAM) ownerUsage(job []byte) int64 {
	if j := d.job(job); j != nil {
		if o := j.owner; o != nil {
			return o.used.Load() + o.jobs.Load()*jobEntryCost
		}
		return j.used.Load() + jobEntryCost
	}
	if d.ownerOf == nil {
		return 0
	}
	key := ownerKey(d.ownerOf(job), string(job))
	d.jobsMu.Lock()
	defer d.jobsMu.Unlock()
	if o := d.owners[key]; o != nil {
		return o.used.Load() + o.jobs.Load()*jobEntryCost
	}
	return 0
}

// jobEntryCost is what a job holding values on a node costs its owner's bound
// on the node (Node.ownerBytes) in each tier beyond its values' bytes:
// about the memory its entries take there. A hostile trial's tenant ended
// jobs by the thousand, each keeping one persisted byte, and the node's
// memory grew by about 7 KB a job (123 to 215 MB over 11,500 jobs) while
// its quota counted the bytes alone.
const jobEntryCost = 8 << 10

// pinned is a record unpublished while open: its job and its bytes.
type pinned struct {
	j     *dramJob
	bytes int64
}

// retire drops the index's reference to the record at off, which the
// caller has unpublished from job j. Its bytes leave j's count, and its
// owner's, when its last reference goes: at once when no read has it
// open (none can open it any more), else when the last read releases it
// (destroy). Before, they left at once, and a value overwritten while a
// get's reply held it stayed in the arena uncounted: a hostile trial's
// job overwrote a 4 MiB value 63 times, each version held by a get on a
// connection that read nothing, and filled a 256 MiB node while it
// counted 4 MiB against its 64 MiB quota; another tenant's puts failed
// "dram tier full".
func (d *DRAM) retire(j *dramJob, off int64) {
	r := recordAt(d.arena, off)
	if r.h.refs.Load() > 1 {
		d.pinMu.Lock()
		if d.pins == nil {
			d.pins = make(map[int64]pinned)
		}
		d.pins[off] = pinned{j: j, bytes: r.h.bytes}
		d.npins.Add(1)
		d.pinMu.Unlock()
	} else {
		j.addUsed(-r.h.bytes)
	}
	d.unref(off)
}

// unpin takes a retired record's bytes off its job's count as the record
// goes (destroy), if retire pinned it.
func (d *DRAM) unpin(off int64) {
	d.pinMu.Lock()
	p, ok := d.pins[off]
	if ok {
		delete(d.pins, off)
		d.npins.Add(-1)
	}
	d.pinMu.Unlock()
	if ok {
		p.j.addUsed(-p.bytes)
	}
}
