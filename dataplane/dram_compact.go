package dataplane

import (
	"errors"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Compaction. A slab page goes back to the pool only when its last chunk
// is freed (package slab, "Moving chunks out of a page"), so a DRAM tier
// filled with values of one size and then mostly emptied kept refusing
// every other size while mostly free (a hostile trial: 24 MiB of 100-byte
// values, 63 in 64 deleted, every size but 100 bytes refused at 1.6 %
// used). When a put finds no room, compact moves the values out of the
// sparsest pages whose chunks fit in the other pages of their class, and
// the put tries again (compactTries times at most while pages go back).
//
// A value moves by being put again under its key, conditionally: the new
// record replaces the one found only if the key still holds that very
// record (dramPending.moving), so a move never overwrites a newer value
// nor brings back a deleted key. Readers of the old record keep it until
// they release it; its chunks, the page's last ones, are freed then, and
// the page with them. The move finds a page's records by scanning the
// tier's index (each job's shards under their read locks), so it costs
// time in proportion to the tier's keys, on the put that asked for room:
// a compaction that frees nothing keeps the next one off for
// compactBackoff, unless values were deleted meanwhile.

// compactBackoff is how long after a compaction that freed no page the
// next one may start.
const compactBackoff = time.Second

// compactRounds bounds the scans one compaction makes; compactTries the
// compactions one put asks for (a value of several chunks of different
// classes may need a page for each).
const (
	compactRounds = 4
	compactTries  = 4
	compactBatch  = 4    // pages emptied per scan of the index
	scanBatch     = 1024 // index slots looked at per hold of a shard's read lock
)

// Background compaction (SetBackgroundCompaction). A compaction scans
// the tier's index, every job's keys, and moves values: on the event loop
// of the put that asked for room, it held that loop, and every other
// request of its connections, for as long. A job that filled a 128 MiB
// tier with 2 million 8-byte values made one of its puts compact for 135
// to 550 ms, and another job's 1 KiB gets on that loop waited up to 481 ms
// (a hostile trial). With background compaction a put that finds no room
// starts a compaction on a goroutine of its own and is answered busy
// (errCompacting), which the SDKs send again shortly, by when the room is
// made; the loop goes on serving meanwhile. A compaction that frees
// nothing keeps the next one off as before (backingOff), and the put is
// then answered no space.

// errCompacting refuses a put that found no room while a background
// compaction makes some.
var errCompacting = &wire.Error{Code: wire.CodeBusy,
	Msg: "dram tier: no room for this size now; moving values out of sparse pages to make some: retry shortly"}

// SetBackgroundCompaction makes puts that find no room compact on a
// goroutine of their own and answer busy (errCompacting) instead of
// compacting in Create. The storage node sets it: its Create runs on an
// event loop.
func (d *DRAM) SetBackgroundCompaction(on bool) { d.background.Store(on) }

// compactSoon starts a background compaction unless one runs already,
// and reports whether one runs: false when compacting would not help now
// (backingOff) or the tier is closed.
func (d *DRAM) compactSoon() bool {
	if d.backingOff() {
		return false
	}
	if _, _, ok := d.arena.Sparsest(); !ok && !d.compacting.Load() {
		return false // no page whose values could move: no space, at once
	}
	if !d.compacting.CompareAndSwap(false, true) {
		return true
	}
	d.live.Add(1) // the arena stays mapped while it runs
	if d.closed.Load() {
		_ = d.unlive()
		d.compacting.Store(false)
		return false
	}
	go func() {
		defer d.compacting.Store(false)
		defer d.unlive()
		for try := 0; try < compactTries && d.compact(); try++ {
		}
	}()
	return true
}

// errMoveStale refuses a move whose key no longer holds the record moved.
var errMoveStale = errors.New("dram tier: the value moved was replaced or deleted meanwhile")

// compact tries to give slab pages back to the pool by moving the values
// out of the sparsest pages (compactBatch a scan, compactRounds scans at
// most) and reports whether a page went back. One compaction runs at a
// time: a put that finds no room meanwhile waits for it (and then tries
// its own put again, as Create does). One that freed nothing keeps the
// next off for compactBackoff, or until a page's worth of bytes is freed.
func (d *DRAM) compact() bool {
	if d.backingOff() {
		return false
	}
	if !d.compactMu.TryLock() {
		// Another put is compacting: wait for it, then try again the
		// put that asked, with the room it made, if any.
		d.compactMu.Lock()
		defer d.compactMu.Unlock()
		if d.backingOff() { // the one waited for found nothing to move
			return false
		}
		if d.arena.FreePages() > 0 {
			return true // the one waited for made room: try the put again
		}
	} else {
		// A free page is no reason to stop: the put that asked may need
		// more than one (its pieces are of different classes). Before,
		// any free page ended every compaction of the put at once, so a
		// value of two pieces on a tier with one free page answered no
		// space four times without a scan, while a compaction could have
		// freed what it lacked (a hostile trial: a 300 KiB put, pieces
		// of 256 and 44 KiB, refused on a 32 MiB tier 81 % free).
		defer d.compactMu.Unlock()
		if d.backingOff() {
			return false
		}
	}
	for range compactRounds {
		// The sparsest pages, each fenced before the next is chosen, so
		// no page counts another's room: one scan of the index moves the
		// values out of all of them (a scan costs time in proportion to
		// the tier's keys: about 80 ms for 1.7 million, a hostile trial).
		var pages []int32
		var chunks []int64
		for len(pages) < compactBatch {
			p, _, ok := d.arena.Sparsest()
			if !ok || !d.arena.Fence(p) {
				break
			}
			pages = append(pages, p)
			chunks = append(chunks, d.arena.Chunks(p)...)
		}
		if len(pages) == 0 {
			break
		}
		moved := d.moveOut(chunks)
		var freed int64
		for _, p := range pages {
			if d.arena.InPool(p) {
				freed++
			}
			d.arena.Unfence(p)
		}
		if freed > 0 {
			d.freedPages.Add(freed)
			return true
		}
		if moved == 0 {
			break // held by readers or by chunks outside the index: the next round would pick them again
		}
	}
	d.compactUsed.Store(d.arena.Used())
	d.compactAt.Store(time.Now().Add(compactBackoff).UnixNano())
	return false
}

// backingOff reports whether the last compaction freed nothing less than
// compactBackoff ago, and less than a page's worth of bytes went since.
func (d *DRAM) backingOff() bool {
	return time.Now().UnixNano() < d.compactAt.Load() && d.arena.Used() > d.compactUsed.Load()-int64(d.arena.PageSize())
}

// moveOut moves every committed value that has a chunk at one of the
// arena offsets chunks (a fenced page's) into new chunks.
func (d *DRAM) moveOut(chunks []int64) int {
	in := make(map[int64]bool, len(chunks))
	for _, off := range chunks {
		in[off] = true
	}
	type found struct {
		job, key []byte
		off      int64
	}
	var moves []found
	d.eachJob(func(name string, j *dramJob) {
		for i := range j.shards {
			// A shard's slots are looked at scanBatch at a time under its
			// read lock, which is let go in between: a shard of a job with
			// millions of keys took tens of milliseconds, and a put or
			// delete of that job on an event loop waited that long for the
			// write lock, and with it every request of that loop. A table
			// that grows in between may have a few of its keys missed or
			// seen twice: a missed value is not moved, a second move of
			// one finds its record gone (move).
			s := &j.shards[i]
			for at := 0; ; at += scanBatch {
				s.mu.RLock()
				if at >= len(s.t.slots) {
					s.mu.RUnlock()
					break
				}
				for _, sl := range s.t.slots[at:min(at+scanBatch, len(s.t.slots))] {
					if sl.rec == 0 {
						continue
					}
					off := sl.off()
					r := recordAt(d.arena, off)
					hit := in[off]
					for k := 0; !hit && k < int(r.h.nseg); k++ {
						hit = in[r.segOff(k)]
					}
					if hit {
						moves = append(moves, found{[]byte(name), append([]byte(nil), r.key()...), off})
					}
				}
				s.mu.RUnlock()
			}
		}
	})
	n := 0
	for _, m := range moves {
		if d.move(m.job, m.key, m.off) {
			n++
		}
	}
	return n
}

// move puts the value of job's key again, in new chunks, if the key still
// holds the record at off; it gives up, changing nothing, otherwise or
// when there is no room.
func (d *DRAM) move(job, key []byte, off int64) bool {
	cur, info, err := d.lookup(job, key, true)
	if err != nil {
		return false
	}
	defer d.unref(cur)
	if cur != off {
		return false // replaced meanwhile: the old record goes with its readers
	}
	r := recordAt(d.arena, off)
	p := d.pendings.Get().(*dramPending)
	if err := p.fill(key, info.Size, info); err != nil {
		p.recycle()
		return false
	}
	if p.job = d.job(job); p.job == nil { // dropped meanwhile: not made again
		p.Abort()
		return false
	}
	p.moving = off + 1 // 0 means no move
	dst := p.Buffers()
	if r.h.nseg == 0 {
		copyInto(dst, [][]byte{r.inline()})
	} else {
		src := make([][]byte, r.h.nseg)
		for k := range src {
			src[k] = r.seg(k)
		}
		copyInto(dst, src)
	}
	if _, err := p.Commit(); err == nil { // errMoveStale: the key changed meanwhile; nothing moved
		d.moved.Add(1)
		return true
	}
	return false
}

// Compacted returns how many values compaction moved, and how many slab
// pages it gave back to the pool, since the tier was made.
func (d *DRAM) Compacted() (moved, pages int64) { return d.moved.Load(), d.freedPages.Load() }

// copyInto copies the bytes of src, in order, into dst's buffers, which
// hold as many.
func copyInto(dst, src [][]byte) {
	di, doff := 0, 0
	for _, b := range src {
		for len(b) > 0 {
			n := copy(dst[di][doff:], b)
			b, doff = b[n:], doff+n
			if doff == len(dst[di]) {
				di, doff = di+1, 0
			}
		}
	}
}
