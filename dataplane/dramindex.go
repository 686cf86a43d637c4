package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/pocketstore/pocket/dataplane/slab"
	"github.com/pocketstore/pocket/internal/sys"
	"github.com/pocketstore/pocket/wire"
)

// The DRAM tier's key index lives outside the Go heap, in memory advised
// for transparent huge pages, and points at records that sit in the value
// arena next to the bytes they describe. A get then costs two cache misses
// that rarely miss the TLB (the table slot, then the record, whose key and
// first value bytes share its cache lines) instead of the half-dozen
// dependent misses on 4 KiB heap pages of a map[string]*version: with 100k
// keys those misses were a third of a node's CPU time.
//
// Record: the first chunk of every value starts with a recHeader, then the
// key, then (padded to 8 bytes) either the value itself, when it fits the
// chunk (inline), or a table of the value's chunks (nseg > 0):
//
//	0   refs   int32   references: the index's one, plus one per open Value
//	4   flags  uint32  PutFlags
//	8   size   int64   value bytes
//	16  bytes  int64   chunk bytes of the whole value, the record included
//	24  nseg   uint32  chunks holding the value outside the record (0: inline)
//	28  keyLen uint32
//	32  version uint64 the object version the put carried (0: none)
//	40  object int64   the object's size as readers see it (Info.ObjectSize)
//	48  key, then the inline value or nseg {offset int64, length int64} pairs
//
// Offsets are arena offsets (slab.Arena.Offset), so the index holds no Go
// pointers and the garbage collector never scans it. Fields other than refs
// are written before the record is published (under the shard lock) and are
// immutable afterwards; refs changes only atomically.

// recHeader is the fixed part of a record; see above.
type recHeader struct {
	refs   atomic.Int32
	flags  uint32
	size   int64
	bytes  int64
	nseg   uint32
	keyLen uint32
	ver    uint64
	object int64
}

// info is the record's Info; the fields it reads are immutable once the
// record is published.
func (h *recHeader) info() Info {
	return Info{Size: h.size, Flags: PutFlags(h.flags), Version: h.ver, ObjectSize: h.object}
}

const (
	recHeaderLen = int(unsafe.Sizeof(recHeader{}))
	recSegLen    = 16 // one {offset, length} pair
)

// recBody is where a record's inline value or chunk table starts.
func recBody(keyLen int) int { return (recHeaderLen + keyLen + 7) &^ 7 }

// record is a view of one record: its header and the arena it lives in.
type record struct {
	h *recHeader
	a *slab.Arena
}

// recordAt views the record at arena offset off.
func recordAt(a *slab.Arena, off int64) record {
	return record{h: (*recHeader)(unsafe.Pointer(&a.At(off, recHeaderLen)[0])), a: a}
}

// span is the record's length in its chunk.
func (r record) span() int {
	n := recBody(int(r.h.keyLen))
	if r.h.nseg == 0 {
		return n + int(r.h.size)
	}
	return n + int(r.h.nseg)*recSegLen
}

func (r record) all() []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(r.h)), r.span())
}

func (r record) key() []byte {
	return r.all()[recHeaderLen : recHeaderLen+int(r.h.keyLen)]
}

// inline is the value bytes of an inline record.
func (r record) inline() []byte {
	b := recBody(int(r.h.keyLen))
	return r.all()[b : b+int(r.h.size)]
}

// seg returns the i-th chunk of a record with nseg > 0, cut to the value's
// bytes in it.
func (r record) seg(i int) []byte {
	p := r.all()[recBody(int(r.h.keyLen))+i*recSegLen:]
	off := *(*int64)(unsafe.Pointer(&p[0]))
	n := *(*int64)(unsafe.Pointer(&p[8]))
	return r.a.At(off, int(n))
}

// segOff is the arena offset of the record's i-th chunk (nseg > 0), for
// compaction's scan (seg, on the get path, reads it with the length).
func (r record) segOff(i int) int64 {
	p := r.all()[recBody(int(r.h.keyLen))+i*recSegLen:]
	return *(*int64)(unsafe.Pointer(&p[0]))
}

// setSeg records chunk c as the record's i-th.
func (r record) setSeg(i int, c []byte) {
	p := r.all()[recBody(int(r.h.keyLen))+i*recSegLen:]
	*(*int64)(unsafe.Pointer(&p[0])) = r.a.Offset(c)
	*(*int64)(unsafe.Pointer(&p[8])) = int64(len(c))
}

// kslot is one slot of a key table: the key's 64-bit hash, and in rec its
// record's arena offset plus one in the low 48 bits (zero marks an empty
// slot) and the record's length in cache lines, capped at recMaxLines, in
// the high 16, so a prefetch can cover the record without reading it.
type kslot struct {
	hash uint64
	rec  uint64
}

const (
	recOffBits  = 48
	recMaxLines = 32 // prefetch at most this much of a record (2 KiB)
)

// packRec makes a slot's rec from a record's offset and length in bytes.
func packRec(off int64, n int) uint64 {
	return uint64(off) + 1 | uint64(min((n+63)/64, recMaxLines))<<recOffBits
}

// off is the slot's record offset; the slot must not be empty.
func (s kslot) off() int64 { return int64(s.rec&(1<<recOffBits-1)) - 1 }

// lines is the slot's record length in cache lines (at most recMaxLines).
func (s kslot) lines() int { return int(s.rec >> recOffBits) }

const kslotLen = int(unsafe.Sizeof(kslot{}))

// ktable is an open-addressing hash table with linear probing and
// backward-shift deletion (no tombstones), kept at most 3/4 full. Its slots
// live in index memory. The owning shard's lock guards it.
type ktable struct {
	slots []kslot
	n     int
	mem   indexChunk
	// hint mirrors slots for prefetch, which reads it without the lock:
	// a stale hint only aims a prefetch at the wrong line.
	hint atomic.Pointer[slotHint]
}

// slotHint is where a table's slots were when it last changed size.
type slotHint struct {
	base *kslot
	mask uint64
}

// slotAddr guesses the address of h's home slot from the hint, without the
// shard lock, or returns nil for an empty table.
func (t *ktable) slotAddr(h uint64) unsafe.Pointer {
	if sh := t.hint.Load(); sh != nil {
		return unsafe.Add(unsafe.Pointer(sh.base), (h&sh.mask)*uint64(kslotLen))
	}
	return nil
}

const ktableMinSlots = 4 // 64 bytes, the slab arena's smallest chunk

// find returns the slot index holding key, or -1.
func (t *ktable) find(a *slab.Arena, h uint64, key []byte) int {
	if t.n == 0 {
		return -1
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.rec == 0 {
			return -1
		}
		if s.hash == h && bytes.Equal(recordAt(a, s.off()).key(), key) {
			return int(i)
		}
	}
}

// insert adds a key known to be absent, with rec from packRec. The table
// must have room (see reserve).
func (t *ktable) insert(h, rec uint64) {
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].rec != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = kslot{hash: h, rec: rec}
	t.n++
}

// remove empties slot i and shifts later members of its probe run back, so
// lookups never need tombstones.
func (t *ktable) remove(i int) {
	mask := len(t.slots) - 1
	for j := (i + 1) & mask; t.slots[j].rec != 0; j = (j + 1) & mask {
		home := int(t.slots[j].hash) & mask
		// Slot j may move to i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = kslot{}
	t.n--
}

// reserve makes room for one more key, doubling the table when it would
// pass 3/4 full. It fails with ErrNoSpace when index memory is exhausted;
// the table is then unchanged.
func (t *ktable) reserve(m *indexMem) error {
	if (t.n+1)*4 <= len(t.slots)*3 {
		return nil
	}
	return t.resize(m, max(ktableMinSlots, 2*len(t.slots)))
}

// shrink halves the table, as often as it takes, while it is under 1/4
// full: after deletes, and after a revoked job's drop that kept its
// persisted values. A table that grew for keys since deleted kept its
// size before: a hostile trial's jobs each put 800,000 keys, deleted all
// but 2,000 and ended keeping them persisted; ten such jobs held the whole
// index memory, and every other job's puts to that node were refused "no
// space" at 1.2 MiB of 256 MiB used. An empty table gives its memory back
// whole. Under 1/4 full a key costs the index at most 64 bytes, no more
// than its record's least chunk in the value arena, whose capacity the
// index has: halving at 1/8 let a re-check's live jobs, deleted down to
// just above it, fill the index at 68% of the tier used. Halving leaves a
// table under 1/2 full and it grows past 3/4, so it does not shrink and
// grow again on alternate puts and deletes. When index memory has no room
// for the smaller table the table stays as it is.
func (t *ktable) shrink(m *indexMem) {
	if len(t.slots) <= ktableMinSlots || t.n*4 >= len(t.slots) {
		return
	}
	if t.n == 0 {
		t.reset(m)
		return
	}
	n := len(t.slots)
	for n > ktableMinSlots && t.n*4 < n {
		n /= 2
	}
	_ = t.resize(m, n)
}

// resize moves the table's keys to a table of n slots (a power of two,
// more than 4/3 of its keys).
func (t *ktable) resize(m *indexMem, n int) error {
	mem, slots, err := m.alloc(n)
	if err != nil {
		return err
	}
	old, oldMem := t.slots, t.mem
	t.slots, t.mem, t.n = slots, mem, 0
	t.hint.Store(&slotHint{base: &slots[0], mask: uint64(n - 1)})
	for _, s := range old {
		if s.rec != 0 {
			t.insert(s.hash, s.rec)
		}
	}
	m.free(oldMem)
	return nil
}

// reset empties the table and returns its memory.
func (t *ktable) reset(m *indexMem) {
	m.free(t.mem)
	t.slots, t.n, t.mem = nil, 0, indexChunk{}
	t.hint.Store(nil)
}

// each calls fn with every record offset in the table.
func (t *ktable) each(fn func(rec int64)) {
	for _, s := range t.slots {
		if s.rec != 0 {
			fn(s.off())
		}
	}
}

// indexMem hands out slot arrays: from a slab arena of its own for tables
// up to a slab page, so small tables share huge pages, and from a region
// of their own for larger ones. Neither is on the Go heap or counted in the
// tier's usage. The regions count against the arena's capacity with what
// the arena holds, and the arena's tables against it with the regions:
// before, nothing bounded the regions, and a hostile trial's
// jobs of 3.2 million keys each, ended with a few kept persisted, grew a
// node by 131 MiB of regions per job, which the node reported nowhere.
type indexMem struct {
	arena   *slab.Arena
	regions atomic.Int64 // bytes of the tables in regions of their own
}

// errIndexFull refuses a new key when the key index's memory has no room
// for its table's next size; before, the refusal was the value arena's,
// which blamed the tier's values while the node reported it nearly empty.
var errIndexFull = &wire.Error{Code: wire.CodeNoSpace, Msg: "dram tier's key index full: the tables of the keys its jobs hold " +
	"(and of keys deleted since, until their tables shrink) fill its index memory; nothing stored was changed: " +
	"delete keys, or use another node"}

// indexChunk is the memory behind one table: an arena chunk or a region.
type indexChunk struct {
	chunk  []byte
	region *sys.Region
}

func newIndexMem(capacity int64) (*indexMem, error) {
	a, err := slab.New(capacity, slab.Options{Huge: sys.HugeAdvise})
	if err != nil {
		return nil, fmt.Errorf("dram tier: key index: %w", err)
	}
	return &indexMem{arena: a}, nil
}

// alloc returns n zeroed slots (n a power of two).
func (m *indexMem) alloc(n int) (indexChunk, []kslot, error) {
	size := n * kslotLen
	var c indexChunk
	if size <= m.arena.MaxChunk() {
		if m.regions.Load()+m.arena.Used()+int64(size) > m.arena.Capacity() {
			return c, nil, errIndexFull // the regions took the rest
		}
		b, err := m.arena.Alloc(size)
		if err != nil {
			if errors.Is(err, slab.ErrNoSpace) {
				return c, nil, errIndexFull
			}
			return c, nil, allocErr(err)
		}
		clear(b)
		c.chunk = b
	} else {
		if m.regions.Add(int64(size))+m.arena.Used() > m.arena.Capacity() {
			m.regions.Add(-int64(size))
			return c, nil, errIndexFull
		}
		r, err := sys.Map(int64(size), sys.HugeAdvise)
		if err != nil {
			m.regions.Add(-int64(size))
			return c, nil, fmt.Errorf("dram tier: key index of %d slots: %w", n, ErrNoSpace)
		}
		c.region, c.chunk = r, r.Bytes()[:size]
	}
	return c, unsafe.Slice((*kslot)(unsafe.Pointer(&c.chunk[0])), n), nil
}

func (m *indexMem) free(c indexChunk) {
	switch {
	case c.region != nil:
		m.regions.Add(-int64(len(c.chunk)))
		_ = c.region.Close()
	case c.chunk != nil:
		if err := m.arena.Free(c.chunk); err != nil {
			panic(fmt.Sprintf("dataplane: freeing key table: %v", err))
		}
	}
}

func (m *indexMem) close() error { return m.arena.Close() }

// peek returns the first slot whose hash is h, or an empty one: a guess at
// find's answer that reads no record, for prefetching.
func (t *ktable) peek(h uint64) kslot {
	if t.n == 0 {
		return kslot{}
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; t.slots[i].rec != 0; i = (i + 1) & mask {
		if t.slots[i].hash == h {
			return t.slots[i]
		}
	}
	return kslot{}
}
