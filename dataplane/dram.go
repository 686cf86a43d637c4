package dataplane

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/pocketstore/pocket/dataplane/slab"
	"github.com/pocketstore/pocket/internal/sys"
	"github.com/pocketstore/pocket/wire"
)

// The DRAM tier keeps values in one slab arena (package slab) and indexes
// them per job.
//
// Index: jobs is a copy-on-write map (job name -> *dramJob) read without a
// lock; a job's keys are spread over dramShards shards by a hash of the
// key, each shard a map[string]*dramSlot under its own RWMutex, so two event
// loops touching the same job rarely meet on a lock. Lookups use
// m[string(keyBytes)], which the compiler performs without allocating.
//
// Versions: a committed value is a *dramVersion holding its chunks. The
// index holds one reference; each Open holds another. Overwrite and Delete
// unpublish the version under the shard lock and drop the index's
// reference; the chunks go back to the arena when the last reference goes.
// Versions and pendings are recycled through sync.Pools, and up to
// dramInlineSegs segments live in a fixed array inside the version, so a
// steady-state put (overwrite) or get allocates nothing.
//
// Lock order: d.jobsMu, then shard locks in index order. The arena's own
// locks are taken with none of these held except during Close.
//
// Lifetimes: slices from Pending.Buffers are valid until Commit or Abort;
// slices from Value.Segments until Release. Callers must not modify the
// [][]byte returned by either (they are shared with the tier). Chunks of a
// value are not zeroed: the filler writes every byte before Commit.

const (
	dramShards     = 16
	dramInlineSegs = 4
)

// DRAMOptions tune NewDRAM. The zero value is the default.
type DRAMOptions struct {
	// PageSize is the slab page size (default slab.DefaultPageSize,
	// one 2 MiB huge page). It is also the largest chunk.
	PageSize int
	// Huge chooses the arena's pages (default sys.HugeAuto: hugetlb
	// when reserved, else transparent huge pages).
	Huge sys.HugeMode
	// MaxJobLen and MaxKeyLen bound job ids and keys (defaults: the wire
	// protocol's limits). Longer ones get ErrBadKey.
	MaxJobLen, MaxKeyLen int
}

// DRAM is the in-memory tier. It never blocks on I/O, so the event loop
// calls it inline.
type DRAM struct {
	arena          *slab.Arena
	maxJob, maxKey int
	seed           maphash.Seed

	jobsMu sync.Mutex                          // serializes writers of jobs
	jobs   atomic.Pointer[map[string]*dramJob] // copy-on-write

	values atomic.Int64 // committed values
	// live counts versions not yet destroyed, plus one for the open tier.
	// The arena is unmapped when it reaches zero, so values still open at
	// Close stay readable until released.
	live   atomic.Int64
	closed atomic.Bool

	versions sync.Pool // *dramVersion
	pendings sync.Pool // *dramPending
}

var _ Tier = (*DRAM)(nil)

type dramJob struct {
	name   string
	used   atomic.Int64 // chunk bytes of committed values
	dead   atomic.Bool  // removed from d.jobs; writers must look up again
	shards [dramShards]dramShard
}

type dramShard struct {
	mu   sync.RWMutex
	keys map[string]*dramSlot
	_    [32]byte // 64 bytes a shard: keeps neighbouring shards' locks off one cache line
}

// dramSlot is the map's value: a pointer, so an overwrite replaces the
// version without re-inserting (and allocating) the key.
type dramSlot struct{ v *dramVersion }

// NewDRAM maps an arena of capacity bytes (rounded up to whole slab pages).
func NewDRAM(capacity int64, opts DRAMOptions) (*DRAM, error) {
	a, err := slab.New(capacity, slab.Options{PageSize: opts.PageSize, Huge: opts.Huge})
	if err != nil {
		return nil, fmt.Errorf("dram tier: %w", err)
	}
	d := &DRAM{
		arena:  a,
		maxJob: cmpOr(opts.MaxJobLen, wire.DefaultMaxJobLen),
		maxKey: cmpOr(opts.MaxKeyLen, wire.DefaultMaxKeyLen),
		seed:   maphash.MakeSeed(),
	}
	empty := map[string]*dramJob{}
	d.jobs.Store(&empty)
	d.live.Store(1)
	d.versions.New = func() any { return &dramVersion{d: d} }
	d.pendings.New = func() any { return &dramPending{d: d} }
	return d, nil
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// Kind implements Tier.
func (d *DRAM) Kind() Kind { return KindDRAM }

// Blocking implements Tier: the DRAM tier never waits for I/O.
func (d *DRAM) Blocking() bool { return false }

// Arena exposes the tier's slab arena, so the NVMe tier can take aligned
// buffers from it and tools can report its statistics.
func (d *DRAM) Arena() *slab.Arena { return d.arena }

func (d *DRAM) checkKey(job, key []byte) error {
	if len(job) == 0 || len(job) > d.maxJob || len(key) == 0 || len(key) > d.maxKey {
		return ErrBadKey
	}
	return nil
}

// job returns the job's index, or nil.
func (d *DRAM) job(name []byte) *dramJob {
	return (*d.jobs.Load())[string(name)]
}

// jobFor returns the job's index, creating it, or nil once the tier is
// closed (checked under jobsMu, which Close takes after setting closed, so
// no job is created after Close has emptied the map).
func (d *DRAM) jobFor(name []byte) *dramJob {
	if j := d.job(name); j != nil {
		return j
	}
	d.jobsMu.Lock()
	defer d.jobsMu.Unlock()
	if d.closed.Load() {
		return nil
	}
	old := *d.jobs.Load()
	if j := old[string(name)]; j != nil {
		return j
	}
	j := &dramJob{name: string(name)}
	for i := range j.shards {
		j.shards[i].keys = make(map[string]*dramSlot)
	}
	next := make(map[string]*dramJob, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[j.name] = j
	d.jobs.Store(&next)
	return j
}

// unlinkJob removes j from the jobs map and marks it dead, so writers
// holding it look the job up again.
func (d *DRAM) unlinkJob(j *dramJob) {
	d.jobsMu.Lock()
	defer d.jobsMu.Unlock()
	j.dead.Store(true)
	old := *d.jobs.Load()
	if old[j.name] != j {
		return
	}
	next := make(map[string]*dramJob, len(old))
	for k, v := range old {
		if k != j.name {
			next[k] = v
		}
	}
	d.jobs.Store(&next)
}

func (d *DRAM) shard(j *dramJob, key []byte) *dramShard {
	return &j.shards[maphash.Bytes(d.seed, key)%dramShards]
}

// Create implements Tier. Values up to the arena's largest chunk take one
// chunk unless that would waste more than an eighth of it; larger values,
// and those, are split into several chunks (see pieceSize).
func (d *DRAM) Create(job, key []byte, size int64, flags PutFlags) (Pending, error) {
	if err := d.checkKey(job, key); err != nil {
		return nil, err
	}
	if size < 0 || size > d.arena.Capacity() {
		return nil, fmt.Errorf("dram tier: %d-byte value, capacity %d: %w", size, d.arena.Capacity(), ErrTooLarge)
	}
	v := d.newVersion()
	if v == nil {
		return nil, ErrClosed
	}
	if err := v.fill(size, flags); err != nil {
		v.destroy()
		return nil, err
	}
	j := d.jobFor(job)
	if j == nil {
		v.unref()
		return nil, ErrClosed
	}
	p := d.pendings.Get().(*dramPending)
	p.job, p.v = j, v
	p.key = append(p.key[:0], key...)
	return p, nil
}

// pieceSize is the next chunk's size for rem bytes still to place: a full
// page while rem is that large, else one chunk for the rest when its class
// wastes at most an eighth (or rem is at most 4 KiB), else the largest class
// below rem, leaving a smaller remainder for the next chunk.
func (d *DRAM) pieceSize(rem int64) int {
	if maxc := d.arena.MaxChunk(); rem >= int64(maxc) {
		return maxc
	}
	r := int(rem)
	if r <= 4096 || d.arena.ChunkSize(r)-r <= r/8 {
		return r
	}
	return d.arena.FloorChunkSize(r)
}

// Open implements Tier. The returned Value holds a reference that keeps the
// bytes until Release.
func (d *DRAM) Open(job, key []byte) (Value, error) {
	v, _, err := d.lookup(job, key, true)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// Stat implements Tier.
func (d *DRAM) Stat(job, key []byte) (Info, error) {
	_, info, err := d.lookup(job, key, false)
	return info, err
}

// lookup finds the committed version and reads its Info under the shard
// lock. With ref it also takes a reference and returns the version; without
// one the version may be recycled as soon as the lock is dropped, so it is
// not returned.
func (d *DRAM) lookup(job, key []byte, ref bool) (*dramVersion, Info, error) {
	if err := d.checkKey(job, key); err != nil {
		return nil, Info{}, err
	}
	if d.closed.Load() {
		return nil, Info{}, ErrClosed
	}
	j := d.job(job)
	if j == nil {
		return nil, Info{}, ErrNotFound
	}
	s := d.shard(j, key)
	s.mu.RLock()
	slot := s.keys[string(key)]
	if slot == nil {
		s.mu.RUnlock()
		return nil, Info{}, ErrNotFound
	}
	v := slot.v
	info := Info{Size: v.size, Flags: v.flags}
	if ref {
		v.refs.Add(1)
	} else {
		v = nil
	}
	s.mu.RUnlock()
	return v, info, nil
}

// Delete implements Tier.
func (d *DRAM) Delete(job, key []byte) error {
	if err := d.checkKey(job, key); err != nil {
		return err
	}
	if d.closed.Load() {
		return ErrClosed
	}
	j := d.job(job)
	if j == nil {
		return ErrNotFound
	}
	s := d.shard(j, key)
	s.mu.Lock()
	slot := s.keys[string(key)]
	if slot == nil {
		s.mu.Unlock()
		return ErrNotFound
	}
	delete(s.keys, string(key))
	v := slot.v
	j.used.Add(-v.bytes)
	s.mu.Unlock()
	d.values.Add(-1)
	v.unref()
	return nil
}

// List implements Tier. It snapshots the matching keys shard by shard, then
// calls fn in ascending order without holding any lock, so fn may call the
// tier. Keys are handed out as fresh copies.
func (d *DRAM) List(job, prefix, after []byte, fn func(key []byte, info Info) bool) error {
	if len(job) == 0 || len(job) > d.maxJob || len(prefix) > d.maxKey || len(after) > d.maxKey {
		return ErrBadKey
	}
	if d.closed.Load() {
		return ErrClosed
	}
	j := d.job(job)
	if j == nil {
		return nil
	}
	var h listHeap
	for i := range j.shards {
		s := &j.shards[i]
		s.mu.RLock()
		for k, slot := range s.keys {
			if len(k) >= len(prefix) && k[:len(prefix)] == string(prefix) && k > string(after) {
				h = append(h, listEntry{k, Info{Size: slot.v.size, Flags: slot.v.flags}})
			}
		}
		s.mu.RUnlock()
	}
	// A heap, not a sort: a paged listing usually stops after a page, so
	// only the keys it takes are ordered.
	heap.Init(&h)
	for h.Len() > 0 {
		e := heap.Pop(&h).(listEntry)
		if !fn([]byte(e.key), e.info) {
			break
		}
	}
	return nil
}

type listEntry struct {
	key  string
	info Info
}

type listHeap []listEntry

func (h listHeap) Len() int           { return len(h) }
func (h listHeap) Less(i, k int) bool { return h[i].key < h[k].key }
func (h listHeap) Swap(i, k int)      { h[i], h[k] = h[k], h[i] }
func (h *listHeap) Push(x any)        { *h = append(*h, x.(listEntry)) }
func (h *listHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// DropJob implements Tier. Without keepPersistent the job is unlinked first,
// so a put committing meanwhile lands in a fresh job rather than being lost
// in the dropped one; with it, a job left empty is unlinked too.
func (d *DRAM) DropJob(job []byte, keepPersistent bool) int64 {
	j := d.job(job)
	if j == nil {
		return 0
	}
	if !keepPersistent {
		d.unlinkJob(j)
	}
	var freed int64
	for i := range j.shards {
		freed += d.dropShard(j, &j.shards[i], keepPersistent)
	}
	if keepPersistent {
		d.unlinkIfEmpty(j)
	}
	return freed
}

func (d *DRAM) dropShard(j *dramJob, s *dramShard, keepPersistent bool) int64 {
	var victims []*dramVersion
	s.mu.Lock()
	for k, slot := range s.keys {
		if keepPersistent && slot.v.flags&Persist != 0 {
			continue
		}
		delete(s.keys, k)
		victims = append(victims, slot.v)
	}
	s.mu.Unlock()
	var freed int64
	for _, v := range victims {
		freed += v.bytes
		j.used.Add(-v.bytes)
		d.values.Add(-1)
		v.unref()
	}
	return freed
}

// unlinkIfEmpty unlinks a job that holds no keys, checking under every
// shard lock so no commit slips in between.
func (d *DRAM) unlinkIfEmpty(j *dramJob) {
	for i := range j.shards {
		j.shards[i].mu.Lock()
	}
	empty := true
	for i := range j.shards {
		empty = empty && len(j.shards[i].keys) == 0
	}
	if empty {
		d.unlinkJob(j)
	}
	for i := range j.shards {
		j.shards[i].mu.Unlock()
	}
}

// Usage implements Tier. Used is the arena's chunk bytes: committed values,
// open references to replaced or deleted values, and pending puts.
func (d *DRAM) Usage() Usage {
	return Usage{Capacity: d.arena.Capacity(), Used: d.arena.Used(), Values: d.values.Load()}
}

// JobUsage implements Tier: the chunk bytes of the job's committed values.
func (d *DRAM) JobUsage(job []byte) int64 {
	if j := d.job(job); j != nil {
		return j.used.Load()
	}
	return 0
}

// Close implements Tier. It drops every committed value; the arena is
// unmapped once the values still open and the puts still pending are done.
func (d *DRAM) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.jobsMu.Lock()
	jobs := *d.jobs.Load()
	empty := map[string]*dramJob{}
	d.jobs.Store(&empty)
	for _, j := range jobs {
		j.dead.Store(true)
	}
	d.jobsMu.Unlock()
	for _, j := range jobs {
		for i := range j.shards {
			d.dropShard(j, &j.shards[i], false)
		}
	}
	return d.unlive()
}

// unlive drops one count from live and unmaps the arena at zero.
func (d *DRAM) unlive() error {
	if d.live.Add(-1) == 0 {
		return d.arena.Close()
	}
	return nil
}

// newVersion returns an empty version holding one live count, or nil when
// the tier is closed. live is raised before closed is checked, so Close
// cannot unmap the arena under a version being filled.
func (d *DRAM) newVersion() *dramVersion {
	d.live.Add(1)
	if d.closed.Load() {
		_ = d.unlive()
		return nil
	}
	v := d.versions.Get().(*dramVersion)
	v.refs.Store(1)
	return v
}

// dramVersion is one value's chunks. size, flags, bytes and segs are set
// before publication and not changed until the version is recycled.
type dramVersion struct {
	d      *DRAM
	refs   atomic.Int32
	size   int64
	flags  PutFlags
	bytes  int64 // chunk bytes (class sizes)
	segs   [][]byte
	inline [dramInlineSegs][]byte
	more   [][]byte // segments when there are more than dramInlineSegs
}

// fill allocates the chunks for size bytes.
func (v *dramVersion) fill(size int64, flags PutFlags) error {
	v.size, v.flags = size, flags
	v.segs = v.inline[:0]
	for rem := size; rem > 0; {
		n := v.d.pieceSize(rem)
		b, err := v.d.arena.Alloc(n)
		if err != nil {
			return allocErr(err)
		}
		v.add(b)
		v.bytes += int64(cap(b))
		rem -= int64(n)
	}
	return nil
}

func allocErr(err error) error {
	switch {
	case errors.Is(err, slab.ErrNoSpace):
		return ErrNoSpace
	case errors.Is(err, slab.ErrClosed):
		return ErrClosed
	}
	return fmt.Errorf("dram tier: %w", err)
}

// add appends a segment, moving from the inline array to more when full.
func (v *dramVersion) add(b []byte) {
	if len(v.segs) < dramInlineSegs {
		v.segs = append(v.segs, b) // stays within inline
		return
	}
	if len(v.segs) == dramInlineSegs {
		v.more = append(v.more[:0], v.segs...)
	}
	v.more = append(v.more, b)
	v.segs = v.more
}

// unref drops one reference and destroys the version at zero.
func (v *dramVersion) unref() {
	switch n := v.refs.Add(-1); {
	case n == 0:
		v.destroy()
	case n < 0:
		panic("dataplane: DRAM value released more often than opened")
	}
}

// destroy frees the chunks and recycles the version.
func (v *dramVersion) destroy() {
	d := v.d
	for i, b := range v.segs {
		if err := d.arena.Free(b); err != nil {
			panic(fmt.Sprintf("dataplane: freeing DRAM chunk: %v", err))
		}
		v.segs[i] = nil
	}
	clear(v.inline[:])
	v.segs, v.more = nil, v.more[:0]
	v.size, v.flags, v.bytes = 0, 0, 0
	d.versions.Put(v)
	_ = d.unlive()
}

// Size implements Value.
func (v *dramVersion) Size() int64 { return v.size }

// Flags implements Value.
func (v *dramVersion) Flags() PutFlags { return v.flags }

// Segments implements Value: the chunks in order, each cut to the value's
// bytes in it. Do not modify the returned slice.
func (v *dramVersion) Segments() [][]byte { return v.segs }

// Release implements Value.
func (v *dramVersion) Release() { v.unref() }

// dramPending is a put between Create and Commit or Abort.
type dramPending struct {
	d   *DRAM
	job *dramJob
	key []byte // copy of the key; capacity reused across puts
	v   *dramVersion
}

// Buffers implements Pending. Do not modify the returned slice.
func (p *dramPending) Buffers() [][]byte { return p.v.segs }

// Commit implements Pending.
func (p *dramPending) Commit() error {
	d := p.d
	old, err := p.publish()
	if err != nil {
		p.Abort()
		return err
	}
	if old == nil {
		d.values.Add(1)
	} else {
		old.unref()
	}
	p.recycle()
	return nil
}

// publish installs p's version under its key and returns the version it
// replaced, or nil. A job dropped since Create is looked up (re-created)
// again, so the value is never lost in an unlinked job; once the tier is
// closed there is no job to publish in and the answer is ErrClosed.
func (p *dramPending) publish() (*dramVersion, error) {
	for {
		j := p.job
		s := p.d.shard(j, p.key)
		s.mu.Lock()
		if j.dead.Load() {
			s.mu.Unlock()
			if p.job = p.d.jobFor([]byte(j.name)); p.job == nil {
				return nil, ErrClosed
			}
			continue
		}
		var old *dramVersion
		slot := s.keys[string(p.key)]
		if slot == nil {
			s.keys[string(p.key)] = &dramSlot{v: p.v}
		} else {
			old, slot.v = slot.v, p.v
			j.used.Add(-old.bytes)
		}
		j.used.Add(p.v.bytes)
		s.mu.Unlock()
		return old, nil
	}
}

// Abort implements Pending.
func (p *dramPending) Abort() {
	p.v.unref()
	p.recycle()
}

func (p *dramPending) recycle() {
	p.job, p.v = nil, nil
	p.d.pendings.Put(p)
}
