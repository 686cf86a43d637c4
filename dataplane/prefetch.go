package dataplane

import (
	"unsafe"

	"github.com/pocketstore/pocket/internal/sys"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// Pipelined requests arrive many to a read. Served one after another, each
// get or put waits on its own cache misses (the index slot, then the
// record) with nothing overlapping them; with 100k keys those two misses
// were a quarter of a node's CPU time. So before serving a read's frames,
// the node peeks at the keys of up to prefetchMax of them and has the tier
// start all their misses at once (prefetcher). The hints change nothing:
// requests are then checked and served exactly as before. The peek is a
// whole decode (wire.DecodeRequest) whose result OnData takes for the
// frame instead of parsing and decoding it again (predecoded): reading
// each pipelined get's header and request twice was about 290 of the
// node's 3,600 user-space instructions per get (callgrind).

// prefetchMax bounds the frames warmed per read: a 16-deep pipeline's
// worth, enough to hide the latency of the first misses behind the rest.
const prefetchMax = 16

// prefetcher is implemented by tiers that can warm their caches for
// lookups about to happen (the DRAM tier).
type prefetcher interface {
	prefetch(b *prefetchBatch)
	// prefetchLines fetches lines [from, to) of the record at off.
	prefetchLines(off int64, from, to int)
}

// prefetchBatch is one read's keys, and the tier's scratch for them. One
// per event loop: only that loop's goroutine touches it.
//
// After the tier's passes it also remembers, per request id, where each
// record is and how many cache lines it spans, so that OnData, about to
// serve one get or put, can fetch the rest of the next one's record
// (ahead): fetching every record whole at once would queue more misses
// than the core tracks, and the prefetch instructions would stall instead.
// A put's record is the value it replaces, whose chunk the arena hands to
// the next allocation of its class once the put commits (prefetchAhead).
type prefetchBatch struct {
	n int
	// The frames' headers and decoded requests (whose job and key the
	// tier's passes read), and where each frame starts in the read (at)
	// whose first byte is base: valid only during the OnData call that
	// made them (forget drops them), for the
	// frame at that offset of that very read.
	hdr  [prefetchMax]wire.Header
	req  [prefetchMax]wire.Request
	at   [prefetchMax]int
	base *byte
	use  int // entries before it are behind OnData's position
	// The tier's scratch: each key's hash and DRAM job (nil: none, or
	// not looked up), which a get served from the entry looks up by
	// (Node.openFor) while that job is not unlinked, and its shard,
	// record and length.
	hash  [prefetchMax]uint64
	dj    [prefetchMax]*dramJob
	shard [prefetchMax]*dramShard
	rec   [prefetchMax]int64 // record offsets in the arena; -1: not found
	lines [prefetchMax]int
	conn  *netio.Conn // whose requests these are
}

// prefetch warms the tier for the keyed requests at the head of in, when
// there are at least two complete ones (a lone request has nothing to
// overlap with, so a read holding one frame stops after its header).
// Malformed frames are simply skipped: OnData reports them.
func (n *Node) prefetch(c *netio.Conn, in []byte) {
	i := c.Loop().Index()
	if n.pf == nil || i >= len(n.batches) || len(in) < 2*wire.HeaderLen {
		return
	}
	b := n.batches[i]
	if b == nil {
		b = new(prefetchBatch)
		n.batches[i] = b
	}
	b.n, b.use, b.conn, b.base = 0, 0, c, unsafe.SliceData(in)
	for at := 0; len(in)-at >= wire.HeaderLen && b.n < prefetchMax; {
		f := in[at:]
		h, err := wire.ParseHeader(f, &n.reqLim)
		body := wire.HeaderLen + int(h.MetaLen)
		if err != nil || len(f) < body || b.n == 0 && h.FrameLen()+wire.HeaderLen > int64(len(f)) {
			break
		}
		if keyed(h.Op) && h.Flags&wire.FlagTierNVMe == 0 && b.decode(h, f[wire.HeaderLen:body], &n.lim, at) {
			b.n++
		}
		if h.FrameLen() > int64(len(f)) {
			break
		}
		at += int(h.FrameLen())
	}
	if b.n >= 2 {
		n.pf.prefetch(b)
	}
}

// decode decodes the request meta of the frame at offset at, with header
// h, into entry b.n, and reports whether it holds a job and a key (a
// request that fails to decode, or names none, is left to OnData).
func (b *prefetchBatch) decode(h wire.Header, meta []byte, lim *wire.Limits, at int) bool {
	k := b.n
	r := &b.req[k]
	if wire.DecodeRequest(meta, lim, r) != nil || len(r.Job) == 0 || len(r.Key) == 0 {
		return false
	}
	b.hdr[k], b.at[k], b.dj[k] = h, at, nil
	return true
}

// predecoded is c's loop's batch when prefetch decoded frames of in, the
// read OnData serves, else nil.
func (n *Node) predecoded(c *netio.Conn, in []byte) *prefetchBatch {
	if b := n.batch(c); b != nil && b.n > 0 && b.base == unsafe.SliceData(in) {
		return b
	}
	return nil
}

// find returns the entry of the frame at offset at of the read, when
// prefetch decoded it, else -1. OnData asks in order of offset. A nil
// batch has no entry.
func (b *prefetchBatch) find(at int) int {
	if b == nil {
		return -1
	}
	for b.use < b.n && b.at[b.use] < at {
		b.use++
	}
	if b.use < b.n && b.at[b.use] == at {
		return b.use
	}
	return -1
}

// batch is c's loop's batch when it holds c's read, else nil.
func (n *Node) batch(c *netio.Conn) *prefetchBatch {
	i := c.Loop().Index()
	if i >= len(n.batches) {
		return nil
	}
	if b := n.batches[i]; b != nil && b.conn == c {
		return b
	}
	return nil
}

// forget drops the frames prefetch decoded for OnData's read, whose bytes
// are netio's again once OnData returns (a later read may reuse the
// buffer, and put a different frame at the same offset).
func (b *prefetchBatch) forget() {
	clear(b.req[:b.n])
	clear(b.dj[:b.n])
	b.base, b.n, b.use = nil, 0, 0
}

// prefetchAhead is called as OnData starts serving the get or put of
// entry k of b (find; -1 and nil b: not decoded by prefetch, and nothing
// is fetched): it fetches all of the next batched record but its first
// two lines (which the tier's pass fetched already). For a get that is the
// value the next get copies out. For a put it is the value the next put
// replaces: put k's commit frees the value it replaced, fetched here while
// put k-1 was served, and put k+1's allocation takes that chunk for its
// payload. Without it, with 1 KiB puts pipelined 16 deep, the payload
// copies waited for their lines to be fetched for ownership for 9-10 % of
// the node's CPU (perf record, AMD host; 8 % with one loop, so not chunks
// crossing cores), which the arena's warming at Free (slab's warm) began
// too late to hide; with it, 1-2 %.
func (n *Node) prefetchAhead(b *prefetchBatch, k int) {
	if k < 0 {
		return
	}
	if next := k + 1; next < b.n && b.rec[next] >= 0 {
		n.pf.prefetchLines(b.rec[next], 2, b.lines[next])
	}
}

// keyed reports whether op looks up one key in a tier.
func keyed(op wire.Op) bool {
	switch op {
	case wire.OpGet, wire.OpPut, wire.OpStat, wire.OpDelete:
		return true
	}
	return false
}

// prefetch implements prefetcher in two passes. The first starts the miss
// on each key's index slot, found through the table's hint without taking
// the shard lock (a locked instruction per key would also stop the misses
// from overlapping). By the second the first slots have arrived: it reads
// each slot under the shard's read lock and starts the miss on the record
// it names (its first two lines: header, key and the value's start), and
// notes the record's place and length for prefetchAhead. The lookups that
// follow find the lines in cache.
func (d *DRAM) prefetch(b *prefetchBatch) {
	for i := range b.n {
		b.shard[i] = nil
		j := d.job(b.req[i].Job)
		if j == nil {
			continue
		}
		h := d.hash(b.req[i].Key)
		s := shardOf(j, h)
		if p := s.t.slotAddr(h); p != nil {
			sys.Prefetch(p)
		}
		b.hash[i], b.shard[i], b.dj[i] = h, s, j
	}
	for i := range b.n {
		s := b.shard[i]
		b.rec[i], b.lines[i] = -1, 0
		if s == nil {
			continue
		}
		s.mu.RLock()
		if sl := s.t.peek(b.hash[i]); sl.rec != 0 {
			d.prefetchLines(sl.off(), 0, 2)
			b.rec[i], b.lines[i] = sl.off(), sl.lines()
		}
		s.mu.RUnlock()
		b.shard[i] = nil
	}
}

// prefetchLines implements prefetcher. The arena stays mapped while the
// node serves; a record freed meanwhile only wastes the hints.
func (d *DRAM) prefetchLines(off int64, from, to int) {
	p := unsafe.Pointer(&d.arena.At(off, 1)[0])
	sys.PrefetchLines(unsafe.Add(p, from*sys.LineSize), to-from)
}
