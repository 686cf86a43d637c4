package dataplane

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
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
// lock; a job's keys are spread over dramShards shards by the top bits of a
// hash of the key, each shard an off-heap open-addressing table (ktable,
// see dramindex.go) under its own RWMutex, so two event loops touching the
// same job rarely meet on a lock. The table points at records: each value's
// first chunk begins with its header and key (dramindex.go), so a lookup
// touches the slot and then memory the reply reads anyway.
//
// References: a record's refs count the index's reference plus one per
// open Value. Overwrite and Delete unpublish the record under the shard
// lock and drop the index's reference; the chunks go back to the arena when
// the last reference goes. Values and pendings are recycled through
// sync.Pools, and up to dramInlineSegs segments live in a fixed array inside
// them, so a steady-state put (overwrite) or get allocates nothing.
//
// Lock order: d.jobsMu, then shard locks in index order. The arena's own
// locks are taken with none of these held except during Close.
//
// Lifetimes: slices from Pending.Buffers are valid until Commit or Abort;
// slices from Value.Segments until Release. Callers must not modify the
// [][]byte returned by either (they are shared with the tier). Chunks of a
// value are not zeroed: the filler writes every byte before Commit.

const (
	dramShardBits  = 4
	dramShards     = 1 << dramShardBits
	dramInlineSegs = 8 // a value of up to 8 MiB in 1 MiB pages (dramPageSize)
)

// DRAMOptions tune NewDRAM. The zero value is the default.
type DRAMOptions struct {
	// PageSize is the slab page size (default: 1 MiB below 2 GiB of
	// capacity, else 2 MiB; dramPageSize). It is also the largest chunk.
	PageSize int
	// Huge chooses the arena's pages (default sys.HugeAuto: hugetlb
	// when reserved, else transparent huge pages).
	Huge sys.HugeMode
	// MaxJobLen and MaxKeyLen bound job ids and keys (defaults: the wire
	// protocol's limits). Longer ones get ErrBadKey.
	MaxJobLen, MaxKeyLen int
}

// dramPageSize is the DRAM tier's slab page when none is given: 1 MiB
// (half a huge page; the region stays huge-page backed, the page is only
// the unit a size class takes from the pool) below smallTierBytes, else
// slab.DefaultPageSize (2 MiB). Every size class in use holds at least one
// page, partly empty, so values of many sizes strand up to a page per
// class, which a small tier feels: on a 256 MiB tier with 2 MiB pages,
// 1-64 KiB values of random sizes beside 1 MiB chunks ran out of space at
// 51-53 % of the arena used; with 1 MiB (or 512 or 256 KiB) pages the
// same puts never ran out, at a steady 65-68 % (TestMixedSizesFillTheTier).
// Large tiers keep 2 MiB pages: a few dozen stranded pages are a few
// percent of them, and 1 MiB GETs measured no better with 1 MiB pages
// (perf/regress.sh on a 2 GiB node, 0.73x, 0.73-1.08, busy machine).
func dramPageSize(capacity int64) int {
	if capacity < smallTierBytes {
		return 1 << 20
	}
	return slab.DefaultPageSize
}

// smallTierBytes is the DRAM capacity below which the tier's pages are
// 1 MiB (dramPageSize).
const smallTierBytes = 2 << 30

// DRAM is the in-memory tier. It never blocks on I/O, so the event loop
// calls it inline.
type DRAM struct {
	arena          *slab.Arena
	idx            *indexMem
	maxJob, maxKey int
	seed           maphash.Seed

	jobsMu sync.Mutex                              // serializes writers of jobs
	jobs   [dramJobShards]atomic.Pointer[dramJobs] // copy-on-write, by jobShard
	// ownerOf names a job's owner (Node.ownerOf; nil: no owners counted),
	// set before the tier serves; owners are the jobs' owners by owner key
	// (dramowner.go), under jobsMu.
	ownerOf func(job []byte) []byte
	owners  map[string]*dramOwner
	// pins are the records unpublished while read, whose bytes leave
	// their job's count when the last read ends (retire), by offset,
	// under pinMu; npins counts them, so destroy looks only when some are.
	pinMu sync.Mutex
	pins  map[int64]pinned
	npins atomic.Int64

	values atomic.Int64 // committed values
	// live counts records not yet destroyed, plus one for the open tier.
	// The arenas are unmapped when it reaches zero, so values still open
	// at Close stay readable until released.
	live   atomic.Int64
	closed atomic.Bool

	opened   sync.Pool // *dramValue
	pendings sync.Pool // *dramPending

	// compaction's state (dram_compact.go): one at a time, and none again
	// for a while after one freed nothing. After the fields every request
	// reads, so that their cache lines stay as they were.
	compactMu   sync.Mutex   // held by the compaction running
	compactAt   atomic.Int64 // Unix ns before which no compaction starts...
	compactUsed atomic.Int64 // ...unless the arena's used bytes fall below this
	moved       atomic.Int64 // values compaction moved
	freedPages  atomic.Int64 // pages compaction gave back to the pool
	// background: Create does not compact itself, it starts a compaction
	// on a goroutine of its own and answers errCompacting
	// (SetBackgroundCompaction); compacting is set while one runs.
	background atomic.Bool
	compacting atomic.Bool
}

var _ Tier = (*DRAM)(nil)

type dramJob struct {
	name   string
	used   atomic.Int64 // chunk bytes of committed values
	dead   atomic.Bool  // removed from d.jobs; writers must look up again
	shards [dramShards]dramShard
	// owner is its owner's count (dramowner.go; nil: none), set when
	// entered. After the shards, whose padding keeps each lock on a cache
	// line of its own as laid out from the start of the struct.
	owner *dramOwner
}

type dramShard struct {
	mu sync.RWMutex
	_  [40]byte // the lock on a line of its own: readers of the table and its hint do not pull it away
	t  ktable
	_  [48]byte // and off the next shard's line
}

// indexMin is the least address space reserved for the key index; beyond
// it the index reserves as much as the tier's capacity. It is reserved, not
// committed: a table takes memory as it is touched. A table starts at 64
// bytes in a job's shard once the shard holds a key, so 64 MiB holds about
// 65,000 jobs with keys in all 16 shards; past that a put answers "no
// space" while the arena may still have room.
const indexMin = 64 << 20

// NewDRAM maps an arena of capacity bytes (rounded up to whole slab pages).
func NewDRAM(capacity int64, opts DRAMOptions) (*DRAM, error) {
	a, err := slab.New(capacity, slab.Options{PageSize: cmpOr(opts.PageSize, dramPageSize(capacity)), Huge: opts.Huge})
	if err != nil {
		return nil, fmt.Errorf("dram tier: %w", err)
	}
	if capacity >= 1<<recOffBits {
		_ = a.Close()
		return nil, fmt.Errorf("dram tier: capacity %d over the index's %d-bit offsets: %w", capacity, recOffBits, ErrTooLarge)
	}
	idx, err := newIndexMem(max(indexMin, capacity))
	if err != nil {
		_ = a.Close()
		return nil, err
	}
	d := &DRAM{
		arena:  a,
		idx:    idx,
		maxJob: cmpOr(opts.MaxJobLen, wire.DefaultMaxJobLen),
		maxKey: cmpOr(opts.MaxKeyLen, wire.DefaultMaxKeyLen),
		seed:   maphash.MakeSeed(),
	}
	for i := range d.jobs {
		d.jobs[i].Store(&dramJobs{})
	}
	d.live.Store(1)
	d.opened.New = func() any { return &dramValue{d: d} }
	d.pendings.New = func() any { return &dramPending{d: d} }
	return d, nil
}

func cmpOr[T int | int64](v, def T) T {
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

// dramJobs is one shard of the tier's jobs, by name.
type dramJobs = map[string]*dramJob

// dramJobShards is how many copy-on-write maps the tier's jobs are split
// over: entering or unlinking a job copies one. Copied whole, a node's
// new job cost a copy of every job it held, on the event loop that served
// its first put: a hostile trial measured 60 us with 1,000 jobs, 0.59 ms
// with 10,000 and 2.6 ms with 50,000 (ended jobs keeping persisted values
// count too).
const dramJobShards = 64

// jobShard is the shard of the job named name.
func (d *DRAM) jobShard(name []byte) *atomic.Pointer[dramJobs] {
	return &d.jobs[maphash.Bytes(d.seed, name)%dramJobShards]
}

// job returns the job's index, or nil.
func (d *DRAM) job(name []byte) *dramJob {
	return (*d.jobShard(name).Load())[string(name)]
}

// eachJob calls fn with every job's name and index, shard by shard, each
// shard as it was when reached.
func (d *DRAM) eachJob(fn func(name string, j *dramJob)) {
	for i := range d.jobs {
		for name, j := range *d.jobs[i].Load() {
			fn(name, j)
		}
	}
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
	shard := d.jobShard(name)
	old := *shard.Load()
	if j := old[string(name)]; j != nil {
		return j
	}
	j := &dramJob{name: string(name)}
	d.bindLocked(j)
	next := make(dramJobs, len(old)+1)
	maps.Copy(next, old)
	next[j.name] = j
	shard.Store(&next)
	return j
}

// unlinkJob removes j from the jobs map and marks it dead, so writers
// holding it look the job up again.
func (d *DRAM) unlinkJob(j *dramJob) {
	d.jobsMu.Lock()
	defer d.jobsMu.Unlock()
	j.dead.Store(true)
	shard := d.jobShard([]byte(j.name))
	old := *shard.Load()
	if old[j.name] != j {
		return
	}
	next := maps.Clone(old)
	delete(next, j.name)
	shard.Store(&next)
	d.unbindLocked(j)
}

func (d *DRAM) hash(key []byte) uint64 { return maphash.Bytes(d.seed, key) }

func shardOf(j *dramJob, h uint64) *dramShard {
	return &j.shards[h>>(64-dramShardBits)]
}

// Create implements Tier. A value whose record fits one chunk without
// wasting more than an eighth of it (or 4 KiB or less) is stored inline
// after its key; any other takes a small record chunk listing the value's
// chunks (see pieceSize).
func (d *DRAM) Create(job, key []byte, size int64, m Meta) (Pending, error) {
	if err := d.checkKey(job, key); err != nil {
		return nil, err
	}
	if size < 0 || size > d.arena.Capacity() {
		return nil, fmt.Errorf("dram tier: %d-byte value, capacity %d: %w", size, d.arena.Capacity(), ErrTooLarge)
	}
	p := d.pendings.Get().(*dramPending)
	p.ifAbsent = m.Flags&IfAbsent != 0
	err := p.fill(key, size, m.info(size))
	if errors.Is(err, errDRAMNoSpace) && d.background.Load() && d.compactSoon() {
		p.recycle()
		return nil, errCompacting
	}
	for try := 0; !d.background.Load() && errors.Is(err, errDRAMNoSpace) && try < compactTries; try++ {
		freed := d.compact()
		// Again even when this one freed nothing: it may have waited for
		// another put's compaction, which made room.
		err = p.fill(key, size, m.info(size))
		if !freed {
			break
		}
	}
	if err != nil {
		p.recycle()
		return nil, err
	}
	if p.job = d.jobFor(job); p.job == nil {
		p.Abort()
		return nil, ErrClosed
	}
	return p, nil
}

// fitsInline reports whether a record of n bytes goes in one chunk.
func (d *DRAM) fitsInline(n int) bool {
	if n > d.arena.MaxChunk() {
		return false
	}
	return n <= 4096 || d.arena.ChunkSize(n)-n <= n/8
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

// newRecord allocates a record chunk of n bytes and writes its header with
// the index's reference, counting it in live. It fails with ErrClosed once
// the tier is closed: live is raised before closed is checked, so Close
// cannot unmap the arena under a record being filled.
func (d *DRAM) newRecord(n int, key []byte, info Info, nseg int) (record, error) {
	d.live.Add(1)
	if d.closed.Load() {
		_ = d.unlive()
		return record{}, ErrClosed
	}
	b, err := d.arena.Alloc(n)
	if err != nil {
		_ = d.unlive()
		return record{}, allocErr(err)
	}
	r := recordAt(d.arena, d.arena.Offset(b))
	r.h.refs.Store(1)
	r.h.flags, r.h.size, r.h.bytes = uint32(info.Flags), info.Size, int64(cap(b))
	r.h.ver, r.h.object = info.Version, info.ObjectSize
	r.h.nseg, r.h.keyLen = uint32(nseg), uint32(len(key))
	copy(r.key(), key)
	return r, nil
}

// off is the record's arena offset.
func (r record) off() int64 { return r.a.Offset(r.all()) }

func allocErr(err error) error {
	switch {
	case errors.Is(err, slab.ErrNoSpace):
		return errDRAMNoSpace
	case errors.Is(err, slab.ErrClosed):
		return ErrClosed
	}
	return fmt.Errorf("dram tier: %w", err)
}

// errDRAMNoSpace is the slab arena's refusal: no free chunk of the
// value's size class and no free page, after compaction (dram_compact.go)
// freed none. A page stays with the size class that took it until its
// last chunk is freed; compaction moves values out of sparse pages, but
// not those being read or written, nor when the other pages of their
// class cannot take them. Before compaction a hostile trial's 24 MiB tier,
// filled with 100-byte values and then 63 in 64 deleted, refused every
// other size at 1.6 % used; the message says what can cause it, and that
// other jobs' values count (a hostile trial's job, at 9 of its 61 MiB
// allotted, was refused on a node another job had filled, and the
// message spoke only of its own values).
var errDRAMNoSpace = &wire.Error{Code: wire.CodeNoSpace, Msg: "dram tier full for this size: no free chunk of its size class and no free slab page, " +
	"and no page could be emptied by moving values (values being read or written stay put); " +
	"nothing stored was changed: the tier holds the values of every job on this node (a job's capacity allotment does not keep others from filling it); " +
	"delete values, or use another node"}

// unref drops one reference to the record at off and destroys it at zero.
func (d *DRAM) unref(off int64) {
	switch n := recordAt(d.arena, off).h.refs.Add(-1); {
	case n == 0:
		d.destroy(recordAt(d.arena, off))
	case n < 0:
		panic("dataplane: DRAM value released more often than opened")
	}
}

// destroy frees a record's value chunks, then the record itself.
func (d *DRAM) destroy(r record) {
	if d.npins.Load() > 0 {
		d.unpin(r.off())
	}
	for i := range int(r.h.nseg) {
		if err := d.arena.Free(r.seg(i)); err != nil {
			panic(fmt.Sprintf("dataplane: freeing DRAM chunk: %v", err))
		}
	}
	if err := d.arena.Free(r.all()); err != nil {
		panic(fmt.Sprintf("dataplane: freeing DRAM record: %v", err))
	}
	_ = d.unlive()
}

// Open implements Tier. The returned Value holds a reference that keeps the
// bytes until Release.
func (d *DRAM) Open(job, key []byte) (Value, error) {
	off, _, err := d.lookup(job, key, true)
	return d.opening(off, err)
}

// openIn is Open of key in job j, whose hash is h, both found by prefetch
// moments before. While j is not unlinked, it is the job's index (a job
// unlinked and entered again meanwhile has a new one); otherwise it is
// Open.
func (d *DRAM) openIn(j *dramJob, h uint64, job, key []byte) (Value, error) {
	if j.dead.Load() {
		return d.Open(job, key)
	}
	if err := d.checkLookup(job, key); err != nil {
		return nil, err
	}
	off, _, err := d.lookupIn(j, h, key, true)
	return d.opening(off, err)
}

// opening is the Value of the record at off, on which lookup took a
// reference, or err.
func (d *DRAM) opening(off int64, err error) (Value, error) {
	if err != nil {
		return nil, err
	}
	v := d.opened.Get().(*dramValue)
	v.open(recordAt(d.arena, off), off)
	return v, nil
}

// Stat implements Tier.
func (d *DRAM) Stat(job, key []byte) (Info, error) {
	_, info, err := d.lookup(job, key, false)
	return info, err
}

// lookup finds the committed record and reads its Info under the shard
// lock, taking a reference when ref is set.
func (d *DRAM) lookup(job, key []byte, ref bool) (int64, Info, error) {
	if err := d.checkLookup(job, key); err != nil {
		return 0, Info{}, err
	}
	j := d.job(job)
	if j == nil {
		return 0, Info{}, ErrNotFound
	}
	return d.lookupIn(j, d.hash(key), key, ref)
}

// checkLookup refuses a lookup of a bad job or key, or on a closed tier.
func (d *DRAM) checkLookup(job, key []byte) error {
	if err := d.checkKey(job, key); err != nil {
		return err
	}
	if d.closed.Load() {
		return ErrClosed
	}
	return nil
}

// lookupIn is lookup of key, whose hash is h, in job j.
func (d *DRAM) lookupIn(j *dramJob, h uint64, key []byte, ref bool) (int64, Info, error) {
	s := shardOf(j, h)
	s.mu.RLock()
	i := s.t.find(d.arena, h, key)
	if i < 0 {
		s.mu.RUnlock()
		return 0, Info{}, ErrNotFound
	}
	off := s.t.slots[i].off()
	r := recordAt(d.arena, off)
	info := r.h.info()
	if ref {
		r.h.refs.Add(1)
	}
	s.mu.RUnlock()
	return off, info, nil
}

// Delete implements Tier.
func (d *DRAM) Delete(job, key []byte) (Info, error) { return d.remove(job, key, false, 0) }

// DeleteVersion implements Tier.
func (d *DRAM) DeleteVersion(job, key []byte, v uint64) (Info, error) {
	return d.remove(job, key, true, v)
}

// remove unpublishes the value under (job, key), when cond is set only if
// its version is v, and returns its Info.
func (d *DRAM) remove(job, key []byte, cond bool, v uint64) (Info, error) {
	if err := d.checkKey(job, key); err != nil {
		return Info{}, err
	}
	if d.closed.Load() {
		return Info{}, ErrClosed
	}
	j := d.job(job)
	if j == nil {
		return Info{}, ErrNotFound
	}
	h := d.hash(key)
	s := shardOf(j, h)
	s.mu.Lock()
	i := s.t.find(d.arena, h, key)
	if i < 0 {
		s.mu.Unlock()
		return Info{}, ErrNotFound
	}
	off := s.t.slots[i].off()
	r := recordAt(d.arena, off)
	if cond && r.h.ver != v {
		s.mu.Unlock()
		return Info{}, ErrConflict
	}
	info := r.h.info()
	s.t.remove(i)
	s.t.shrink(d.idx)
	s.mu.Unlock()
	d.values.Add(-1)
	d.retire(j, off)
	return info, nil
}

// List implements Tier. It snapshots the matching keys shard by shard, then
// calls fn in ascending order without holding any lock, so fn may call the
// tier. Keys are handed out as fresh copies.
func (d *DRAM) List(job, prefix, after []byte, fn func(key []byte, info Info) bool) error {
	var h listHeap
	err := d.listScan(job, prefix, after, func(key []byte, info Info) {
		h = append(h, listEntry{string(key), info})
	})
	if err != nil {
		return err
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

// listScan calls fn for each of the job's keys that begins with prefix and
// sorts after `after` (empty: every one), in no particular order, shard by
// shard under the shard's read lock: fn must not call the tier, and the key
// slice is valid only during the call. List sorts what it gathers; the
// node's listing snapshots (list.go) gather keys only.
func (d *DRAM) listScan(job, prefix, after []byte, fn func(key []byte, info Info)) error {
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
	for i := range j.shards {
		s := &j.shards[i]
		s.mu.RLock()
		s.t.each(func(off int64) {
			r := recordAt(d.arena, off)
			if k := r.key(); bytes.HasPrefix(k, prefix) && bytes.Compare(k, after) > 0 {
				fn(k, r.h.info())
			}
		})
		s.mu.RUnlock()
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
//
// The walk holds a live count, so a Close meanwhile cannot unmap the
// arenas under it: once unlinked, the job is no longer in the map Close
// drops, and its tables are this call's to free.
func (d *DRAM) DropJob(job []byte, keepPersistent bool) Dropped {
	d.live.Add(1)
	defer d.unlive()
	j := d.job(job)
	if j == nil {
		return Dropped{}
	}
	if !keepPersistent {
		d.unlinkJob(j)
		if testHookDropUnlinked != nil {
			testHookDropUnlinked()
		}
	}
	var freed Dropped
	for i := range j.shards {
		freed = freed.add(d.dropShard(j, &j.shards[i], keepPersistent))
	}
	if keepPersistent {
		d.unlinkIfEmpty(j)
	}
	return freed
}

// testHookDropUnlinked, when set by a test, runs inside DropJob right after
// the job is unlinked: the window a concurrent Close could hit.
var testHookDropUnlinked func()

// dropShard removes the shard's values (but those stored with Persist when
// keepPersistent) and returns their count and bytes. Removing everything
// also gives the table's memory back.
func (d *DRAM) dropShard(j *dramJob, s *dramShard, keepPersistent bool) Dropped {
	var victims []int64
	s.mu.Lock()
	if !keepPersistent {
		s.t.each(func(off int64) { victims = append(victims, off) })
		s.t.reset(d.idx)
	} else {
		// remove shifts later slots back into i, so i is looked at again.
		for i := 0; i < len(s.t.slots); {
			sl := s.t.slots[i]
			if sl.rec == 0 || recordAt(d.arena, sl.off()).h.flags&uint32(Persist) != 0 {
				i++
				continue
			}
			victims = append(victims, sl.off())
			s.t.remove(i)
		}
		s.t.shrink(d.idx)
	}
	s.mu.Unlock()
	freed := Dropped{Values: int64(len(victims))}
	for _, off := range victims {
		freed.Bytes += recordAt(d.arena, off).h.bytes
		d.values.Add(-1)
		d.retire(j, off)
	}
	return freed
}

// unlinkIfEmpty unlinks a job that holds no keys, checking under every
// shard lock so no commit slips in between, and gives back its tables.
func (d *DRAM) unlinkIfEmpty(j *dramJob) {
	for i := range j.shards {
		j.shards[i].mu.Lock()
	}
	empty := true
	for i := range j.shards {
		empty = empty && j.shards[i].t.n == 0
	}
	if empty {
		d.unlinkJob(j)
		for i := range j.shards {
			j.shards[i].t.reset(d.idx)
		}
	}
	for i := range j.shards {
		j.shards[i].mu.Unlock()
	}
}

// Usage implements Tier. Used is the arena's chunk bytes: committed values
// with their records, open references to replaced or deleted values, and
// pending puts. The key index's tables are outside the arena.
func (d *DRAM) Usage() Usage {
	return Usage{Capacity: d.arena.Capacity(), Used: d.arena.Used(), Values: d.values.Load()}
}

// JobUsage implements Tier: the chunk bytes of the job's committed values,
// records included.
func (d *DRAM) JobUsage(job []byte) int64 {
	if j := d.job(job); j != nil {
		return j.used.Load()
	}
	return 0
}

// Close implements Tier. It drops every committed value; the arenas are
// unmapped once the values still open and the puts still pending are done.
func (d *DRAM) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.jobsMu.Lock()
	var jobs []*dramJob
	d.eachJob(func(_ string, j *dramJob) { jobs = append(jobs, j) })
	for i := range d.jobs {
		d.jobs[i].Store(&dramJobs{})
	}
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

// unlive drops one count from live and unmaps the arenas at zero.
func (d *DRAM) unlive() error {
	if d.live.Add(-1) == 0 {
		return errors.Join(d.arena.Close(), d.idx.close())
	}
	return nil
}

// segments is a value's chunk list, with room for dramInlineSegs inline.
type segments struct {
	segs   [][]byte
	inline [dramInlineSegs][]byte
	more   [][]byte
}

// load lists r's value bytes: the inline part or its chunks.
func (g *segments) load(r record) {
	g.segs = g.inline[:0]
	if r.h.nseg == 0 {
		if r.h.size > 0 {
			g.segs = append(g.segs, r.inline())
		}
		return
	}
	for i := range int(r.h.nseg) {
		g.add(r.seg(i))
	}
}

// add appends a segment, moving from the inline array to more when full.
func (g *segments) add(b []byte) {
	if len(g.segs) < dramInlineSegs {
		g.segs = append(g.segs, b) // stays within inline
		return
	}
	if len(g.segs) == dramInlineSegs {
		g.more = append(g.more[:0], g.segs...)
	}
	g.more = append(g.more, b)
	g.segs = g.more
}

// clear drops the segments. Only the inline slots in use are cleared (load
// and add fill them from the first): a small value's release no longer
// clears all dramInlineSegs slots.
func (g *segments) clear() {
	clear(g.inline[:min(len(g.segs), dramInlineSegs)])
	clear(g.more)
	g.segs, g.more = nil, g.more[:0]
}

// dramValue is an open reference to a record (Value).
type dramValue struct {
	d     *DRAM
	off   int64
	size  int64
	flags PutFlags
	ver   uint64
	segments
}

func (v *dramValue) open(r record, off int64) {
	v.off, v.size, v.flags, v.ver = off, r.h.size, PutFlags(r.h.flags), r.h.ver
	v.load(r)
}

// Size implements Value.
func (v *dramValue) Size() int64 { return v.size }

// Flags implements Value.
func (v *dramValue) Flags() PutFlags { return v.flags }

// Version implements Value.
func (v *dramValue) Version() uint64 { return v.ver }

// Segments implements Value: the value's bytes in order. Do not modify the
// returned slice.
func (v *dramValue) Segments() [][]byte { return v.segs }

// Release implements Value.
func (v *dramValue) Release() {
	d, off := v.d, v.off
	v.clear()
	d.opened.Put(v)
	d.unref(off)
}

// dramPending is a put between Create and Commit or Abort.
type dramPending struct {
	d    *DRAM
	job  *dramJob
	hash uint64
	key  []byte // copy of the key; capacity reused across puts
	rec  record
	// ifAbsent: publish only when the key holds no value (IfAbsent).
	ifAbsent bool
	// moving, when not 0, is one more than the offset of the record this
	// put moves (compact.go): it is published only in that record's place,
	// never over a newer value nor for a key deleted meanwhile. Plus one:
	// 0 is a valid offset (the arena's first chunk).
	moving int64
	segments
}

// fill allocates the record and chunks for size bytes under key. On error
// everything allocated is freed again.
func (p *dramPending) fill(key []byte, size int64, info Info) error {
	d := p.d
	p.key = append(p.key[:0], key...)
	p.hash = d.hash(key)
	body := recBody(len(key))
	if int64(body)+size <= int64(d.arena.MaxChunk()) && d.fitsInline(body+int(size)) {
		r, err := d.newRecord(body+int(size), key, info, 0)
		if err != nil {
			return err
		}
		p.rec = r
		p.load(r)
		return nil
	}
	nseg := 0
	for rem := size; rem > 0; rem -= int64(d.pieceSize(rem)) {
		nseg++
	}
	if body+nseg*recSegLen > d.arena.MaxChunk() {
		return fmt.Errorf("dram tier: %d-byte value needs %d chunks: %w", size, nseg, ErrTooLarge)
	}
	r, err := d.newRecord(body+nseg*recSegLen, key, info, nseg)
	if err != nil {
		return err
	}
	p.rec = r
	p.segs = p.inline[:0]
	rem := size
	for i := range nseg {
		b, err := d.arena.Alloc(d.pieceSize(rem))
		if err == nil {
			r.setSeg(i, b)
			p.add(b)
			r.h.bytes += int64(cap(b))
			rem -= int64(len(b))
			continue
		}
		r.h.nseg = uint32(i) // destroy frees only the chunks taken
		p.release()
		return allocErr(err)
	}
	return nil
}

// Buffers implements Pending. Do not modify the returned slice.
func (p *dramPending) Buffers() [][]byte { return p.segs }

// Commit implements Pending.
func (p *dramPending) Commit() (Info, error) {
	d := p.d
	old, err := p.publish()
	if err != nil {
		p.Abort()
		return Info{}, err
	}
	var replaced Info
	if old < 0 {
		d.values.Add(1)
	} else {
		replaced = recordAt(d.arena, old).h.info()
		d.retire(p.job, old)
	}
	p.recycle()
	return replaced, nil
}

// publish installs p's record under its key and returns the offset of the
// record it replaced, or -1. A job dropped since Create is looked up
// (re-created) again, so the value is never lost in an unlinked job; once
// the tier is closed there is no job to publish in and the answer is
// ErrClosed. A table that cannot grow answers ErrNoSpace.
func (p *dramPending) publish() (int64, error) {
	d := p.d
	off := p.rec.off()
	rec := packRec(off, p.rec.span())
	for {
		j := p.job
		s := shardOf(j, p.hash)
		s.mu.Lock()
		if j.dead.Load() {
			s.mu.Unlock()
			if p.moving != 0 {
				return -1, errMoveStale // the job was dropped: nothing to move
			}
			if p.job = d.jobFor([]byte(j.name)); p.job == nil {
				return -1, ErrClosed
			}
			continue
		}
		old := int64(-1)
		i := s.t.find(d.arena, p.hash, p.key)
		if p.moving != 0 && (i < 0 || s.t.slots[i].off() != p.moving-1) {
			s.mu.Unlock()
			return -1, errMoveStale
		}
		if i >= 0 {
			if p.ifAbsent {
				s.mu.Unlock()
				return -1, ErrExists
			}
			old = s.t.slots[i].off()
			s.t.slots[i].rec = rec // old's bytes leave j's count in Commit (retire)
		} else {
			if err := s.t.reserve(d.idx); err != nil {
				s.mu.Unlock()
				return -1, err
			}
			s.t.insert(p.hash, rec)
		}
		j.addUsed(p.rec.h.bytes)
		s.mu.Unlock()
		return old, nil
	}
}

// Abort implements Pending.
// Key implements Pending.
func (p *dramPending) Key() (job, key []byte) { return []byte(p.job.name), p.key }

func (p *dramPending) Abort() {
	p.release()
	p.recycle()
}

// release drops the pending record's only reference, freeing it.
func (p *dramPending) release() {
	p.d.unref(p.rec.off())
	p.rec = record{}
}

func (p *dramPending) recycle() {
	p.job, p.rec, p.ifAbsent, p.moving = nil, record{}, false, 0
	p.clear()
	p.d.pendings.Put(p)
}
