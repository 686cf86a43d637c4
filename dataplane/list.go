package dataplane

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Paged listings (wire.OpList) read from sorted snapshots of key names
// that the node keeps between the pages of a listing, so that a listing of
// n keys costs one gather and sort of the n keys plus O(log n) per page and
// O(1) per key returned, instead of a gather of every key after the cursor
// on every page (issue 10, item 5: 5.7 s for 200,000 keys).
//
// A listing's first page (no cursor) always takes a fresh snapshot: the
// matching names of the job under the prefix, chunk keys left out, sorted
// and packed into one buffer. When the page ends with More, the snapshot
// is filed under the cursor the SDK sends next (the page's last key, or
// for a directory entry the directory followed by 0xFF: pocket/dir.go
// nextAfter). A request whose cursor is filed continues in that snapshot
// by binary search; any other cursor takes a fresh snapshot of the keys
// after it, so a client paging its own way gets the old results at the
// old cost.
//
// Every key is checked with Stat when its page is served, which also gives
// the size reported: a key deleted since the snapshot is never listed once
// deleted, and an overwritten key reports its current size. A key created
// after the listing's first page, in the part of the key space not yet
// listed, may be missed by that listing: the usual semantics of a paged
// listing (a new listing sees it).
//
// Memory: a snapshot keeps at most listSnapMaxBytes of names (bytes plus 4
// per name); past that it holds the first names only and the listing takes
// the next snapshot from its last name when it gets there. The node keeps
// at most listCacheMaxSnaps snapshots and listCacheMaxBytes in all; past
// those it drops the snapshot cheapest to take again, by GreedyDual-Size
// (Cao and Irani, USENIX Symposium on Internet Technologies and Systems
// 1997): each use gives a snapshot a credit of the cache's floor plus its
// names, the snapshot with the least credit goes and its credit becomes
// the floor. So one job's many short listings cannot push out another's
// long one page after page, as least-recently-used did (a hostile trial:
// ten jobs' one-name pages made a 300,000-name listing 21x slower), and a
// long listing left unused still ages out. A snapshot unused for
// listCacheTTL, or whose listing has ended, is dropped (a timer sweeps
// them when no listing comes).
const (
	listSnapMaxBytes  = 16 << 20
	listCacheMaxBytes = 64 << 20
	listCacheMaxSnaps = 8
	listCacheTTL      = 30 * time.Second
)

// listPage serves one page of a listing for list (ops.go): up to limit
// entries after r.After under the prefix r.Key, directories collapsed when
// r.Delimiter is set, within listMetaRoom bytes of metadata.
func listPage(tier Tier, r *wire.Request, limit int) (*wire.Response, error) {
	c := listCache.Load()
	// A tier is told apart by identity: any comparable type will do
	// (pointers, in this package); another is listed with no snapshot
	// kept between pages, as before.
	cacheable := reflect.TypeOf(tier).Comparable()
	var snap *listSnap
	if cacheable && len(r.After) > 0 {
		snap = c.get(tier, r.Job, r.Key, r.After)
	}
	if snap == nil {
		var err error
		if snap, err = newListSnap(tier, r.Job, r.Key, r.After, c.snapMax); err != nil {
			return nil, err
		}
	}
	from := snap
	resp := &wire.Response{}
	bytesUsed := 0
	var lastDir []byte
	pos := snap.search(r.After)
	for {
		if pos == snap.len() {
			if snap.complete {
				break
			}
			next, err := newListSnap(tier, r.Job, r.Key, snap.key(snap.len()-1), c.snapMax)
			if err != nil {
				return nil, err
			}
			snap, pos = next, 0
			continue
		}
		key := snap.key(pos)
		info, err := tier.Stat(r.Job, key)
		if errors.Is(err, ErrNotFound) {
			pos++
			continue
		}
		if err != nil {
			return nil, err
		}
		e := wire.Entry{Key: key, Size: info.ObjectSize}
		if r.Delimiter != 0 {
			if i := bytes.IndexByte(key[len(r.Key):], r.Delimiter); i >= 0 {
				e = wire.Entry{Key: key[:len(r.Key)+i+1], Dir: true}
			}
		}
		if e.Dir && (bytes.Equal(e.Key, lastDir) || bytes.Compare(e.Key, r.After) <= 0) {
			// Listed already: on this page, or on an earlier one (it sorts
			// at or before the cursor). The SDKs resume after a directory
			// with its name and 0xFF (pocket/dir.go nextAfter), and keys
			// under it that begin with 0xFF sort after that cursor: before,
			// the next page began with the same directory again, and a
			// listing whose page ended there asked for it forever.
			pos = snap.skip(pos, e.Key)
			continue
		}
		if len(resp.Entries) == limit || bytesUsed+len(e.Key)+32 > listMetaRoom {
			resp.More = true
			break
		}
		// The snapshot's buffer never changes: entries may share it.
		bytesUsed += len(e.Key) + 32
		resp.Entries = append(resp.Entries, e)
		if e.Dir {
			lastDir = e.Key
			pos = snap.skip(pos, e.Key)
		} else {
			pos++
		}
	}
	if !cacheable {
		return resp, nil
	}
	if !resp.More {
		c.drop(from)
		if snap != from {
			c.drop(snap)
		}
		return resp, nil
	}
	last := resp.Entries[len(resp.Entries)-1]
	cursor := last.Key
	if last.Dir {
		cursor = append(append(make([]byte, 0, len(cursor)+1), cursor...), 0xFF)
	}
	c.put(tier, r.Job, r.Key, cursor, snap)
	if snap != from {
		c.drop(from)
	}
	return resp, nil
}

// listSnapSeq numbers snapshots in the order they are taken.
var listSnapSeq atomic.Uint64

// listSnap is a sorted snapshot of a job's key names under a prefix: all
// of those after `after` when complete, else the first of them only.
// Names are packed in order in buf, name i ending at ends[i]. It never
// changes once built, so any number of pages read it at once.
type listSnap struct {
	buf      []byte
	ends     []uint32
	complete bool

	seq uint64 // from listSnapSeq: a later snapshot has a larger one

	// Kept by the cache under its lock.
	used    time.Time
	credit  int64 // GreedyDual-Size's: the floor at its last use plus its names
	cursors []listCursor
	cached  bool
}

// newListSnap gathers and sorts the job's names under prefix after
// `after`, chunk keys left out, keeping at most maxBytes of them (as
// counted by listSnap.bytes, and at least one name).
func newListSnap(tier Tier, job, prefix, after []byte, maxBytes int) (*listSnap, error) {
	g := listGathers.Get().(*listGather)
	defer g.release()
	add := func(key []byte) {
		if !wire.IsChunkKey(key) {
			g.refs = append(g.refs, listRef{off: len(g.buf), n: len(key)})
			g.buf = append(g.buf, key...)
		}
	}
	if err := scanKeys(tier, job, prefix, after, func(key []byte, _ Info) { add(key) }); err != nil {
		return nil, err
	}
	buf, refs := g.buf, g.refs
	sortListRefs(buf, refs, 0)
	if _, ok := tier.(*NVMe); ok {
		// Its scan lets the tier's lock go now and then, so a key put
		// again meanwhile may have come twice (NVMe.scanKeys).
		refs = slices.CompactFunc(refs, func(a, b listRef) bool {
			return bytes.Equal(buf[a.off:a.off+a.n], buf[b.off:b.off+b.n])
		})
	}
	s := &listSnap{complete: true, seq: listSnapSeq.Add(1)}
	size := 0
	for i, r := range refs {
		if size+r.n+4 > maxBytes && i > 0 {
			refs = refs[:i]
			s.complete = false
			break
		}
		size += r.n + 4
	}
	s.buf = make([]byte, 0, size-4*len(refs))
	s.ends = make([]uint32, len(refs))
	for i, r := range refs {
		s.buf = append(s.buf, buf[r.off:r.off+r.n]...)
		s.ends[i] = uint32(len(s.buf))
	}
	return s, nil
}

// listGather is the scratch space of a snapshot being built, reused: the
// names in the order the tier gives them, then sorted refs to them.
type listGather struct {
	buf  []byte
	refs []listRef
}

var listGathers = sync.Pool{New: func() any { return new(listGather) }}

// listGatherKeep bounds the scratch space kept for the next snapshot.
const listGatherKeep = 32 << 20

func (g *listGather) release() {
	if cap(g.buf)+24*cap(g.refs) > listGatherKeep {
		return
	}
	g.buf, g.refs = g.buf[:0], g.refs[:0]
	listGathers.Put(g)
}

// listRef is a gathered name, n bytes at off in the gathering buffer, with
// the 8 bytes of it at the sort's current depth as a big-endian number.
type listRef struct {
	word   uint64
	off, n int
}

// sortListRefs sorts names that are longer than depth and share their
// first depth bytes, bytewise: a multikey sort taking 8 bytes a round, each
// round an integer sort, so that names sharing long prefixes (a directory,
// a counter's leading zeros) cost no byte-by-byte comparisons. On 200,000
// names of 18 bytes it took 43 ms of CPU against 73 ms for a sort
// comparing the names.
func sortListRefs(buf []byte, refs []listRef, depth int) {
	if len(refs) < 2 {
		return
	}
	for i := range refs {
		r := &refs[i]
		r.word = listWord(buf[r.off+depth : r.off+r.n])
	}
	slices.SortFunc(refs, func(a, b listRef) int { return cmp.Compare(a.word, b.word) })
	for i := 0; i < len(refs); {
		j := i + 1
		for j < len(refs) && refs[j].word == refs[i].word {
			j++
		}
		if g := refs[i:j]; len(g) > 1 {
			// Names ending within these 8 bytes are prefixes of the
			// longer ones (the word pads them with zeros): shortest
			// first, then the longer ones by their next 8 bytes.
			end := depth + 8
			slices.SortFunc(g, func(a, b listRef) int { return cmp.Compare(min(a.n, end+1), min(b.n, end+1)) })
			k := 0
			for k < len(g) && g[k].n <= end {
				k++
			}
			sortListRefs(buf, g[k:], end)
		}
		i = j
	}
}

// listWord is the first 8 bytes of b (zero-padded) as a big-endian number.
func listWord(b []byte) uint64 {
	if len(b) >= 8 {
		return binary.BigEndian.Uint64(b)
	}
	var w uint64
	for i, c := range b {
		w |= uint64(c) << (56 - 8*i)
	}
	return w
}

func (s *listSnap) len() int { return len(s.ends) }

// key returns name i (a slice of the snapshot's buffer: read only).
func (s *listSnap) key(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.buf[start:s.ends[i]:s.ends[i]]
}

// search returns the index of the first name after `after`.
func (s *listSnap) search(after []byte) int {
	lo, hi := 0, s.len()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.Compare(s.key(m), after) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// skip returns the index of the first name from i on that does not begin
// with dir; names from i to there all do (they sort together).
func (s *listSnap) skip(i int, dir []byte) int {
	lo, hi := i, s.len()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if bytes.HasPrefix(s.key(m), dir) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// bytes is what the snapshot holds, as counted against the cache's bounds.
func (s *listSnap) bytes() int { return len(s.buf) + 4*len(s.ends) }

// listCursor names where a listing continues: the tier (by identity), the
// job, the prefix and the cursor the client sends as After.
type listCursor struct {
	tier               Tier
	job, prefix, after string
}

// listSnaps files snapshots under cursors; one per node process, shared by
// every tier (tiers are told apart by identity).
type listSnaps struct {
	// Bounds: the bytes of one snapshot, of all, the snapshots kept,
	// and how long one is kept unused (the list constants; tests set
	// their own).
	snapMax, max, maxSnaps int
	ttl                    time.Duration
	now                    func() time.Time

	mu      sync.Mutex
	cursors map[listCursor]*listSnap
	snaps   []*listSnap
	bytes   int
	floor   int64       // the credit of the snapshot dropped last (GreedyDual-Size)
	sweeper *time.Timer // pending while snapshots are kept
}

// listCache is the node's cache (a pointer that tests replace).
var listCache atomic.Pointer[listSnaps]

func init() {
	listCache.Store(newListSnaps(listSnapMaxBytes, listCacheMaxBytes, listCacheMaxSnaps, listCacheTTL, time.Now))
}

func newListSnaps(snapMax, max, maxSnaps int, ttl time.Duration, now func() time.Time) *listSnaps {
	return &listSnaps{snapMax: snapMax, max: max, maxSnaps: maxSnaps, ttl: ttl, now: now, cursors: map[listCursor]*listSnap{}}
}

// get returns the snapshot filed under the cursor, or nil.
func (c *listSnaps) get(tier Tier, job, prefix, after []byte) *listSnap {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.cursors[listCursor{tier, string(job), string(prefix), string(after)}]
	if s == nil {
		return nil
	}
	now := c.now()
	if now.Sub(s.used) > c.ttl {
		c.remove(s)
		return nil
	}
	s.used = now
	c.touch(s)
	return s
}

// put files snap under a cursor, caching it first if it is new. A cursor
// already filed under a snapshot taken later stays there: both listings
// may continue in the later one, having started before it was taken, but
// not in the earlier one.
func (c *listSnaps) put(tier Tier, job, prefix, after []byte, snap *listSnap) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.expire(now)
	if !snap.cached {
		if snap.bytes() > c.max {
			return
		}
		snap.cached = true
		c.snaps = append(c.snaps, snap)
		c.bytes += snap.bytes()
		c.touch(snap)
		for len(c.snaps) > c.maxSnaps || c.bytes > c.max {
			c.evict()
		}
		if !snap.cached {
			return // itself the cheapest: its listing takes the next page afresh
		}
		if c.sweeper == nil {
			c.sweeper = time.AfterFunc(c.ttl, c.sweep)
		}
	}
	snap.used = now
	c.touch(snap)
	k := listCursor{tier, string(job), string(prefix), string(after)}
	if old := c.cursors[k]; old != nil && old.seq > snap.seq {
		return
	}
	c.cursors[k] = snap
	snap.cursors = append(snap.cursors, k)
}

// drop forgets a snapshot whose listing has ended.
func (c *listSnaps) drop(s *listSnap) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.cached {
		c.remove(s)
	}
}

// sweep drops expired snapshots when no listing comes to do it: a
// snapshot goes at most twice the ttl after its last use.
func (c *listSnaps) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(c.now())
	if len(c.snaps) > 0 {
		c.sweeper.Reset(c.ttl)
	} else {
		c.sweeper = nil
	}
}

// expire drops the snapshots unused for the cache's ttl.
func (c *listSnaps) expire(now time.Time) {
	for i := 0; i < len(c.snaps); {
		if s := c.snaps[i]; now.Sub(s.used) > c.ttl {
			c.remove(s)
			continue
		}
		i++
	}
}

// touch renews s's credit: the floor plus its names, plus one so that
// an empty snapshot's too rises with the floor.
func (c *listSnaps) touch(s *listSnap) {
	s.credit = c.floor + int64(s.len()) + 1
}

// evict drops the snapshot with the least credit (the first of them) and
// raises the floor to it.
func (c *listSnaps) evict() {
	s := slices.MinFunc(c.snaps, func(a, b *listSnap) int { return cmp.Compare(a.credit, b.credit) })
	c.floor = max(c.floor, s.credit)
	c.remove(s)
}

// remove forgets s and the cursors still filed under it.
func (c *listSnaps) remove(s *listSnap) {
	i := slices.Index(c.snaps, s)
	if i < 0 {
		return
	}
	c.snaps = slices.Delete(c.snaps, i, i+1)
	c.bytes -= s.bytes()
	for _, k := range s.cursors {
		if c.cursors[k] == s {
			delete(c.cursors, k)
		}
	}
	s.cursors, s.cached = nil, false
}
