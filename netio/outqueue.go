package netio

import "golang.org/x/sys/unix"

// Copy chunks for Conn.Write start at chunkMin and grow to fit one large
// write, up to chunkMax per chunk.
const (
	chunkMin = 16 << 10
	chunkMax = 1 << 20
)

// segment is one run of queued output.
//
// A copied segment (Conn.Write) points into a pooled chunk. Several copied
// segments may be carved one after another from the same chunk (a Write, a
// WriteRef, another Write); the chunk is owned by the last segment carved
// from it, which returns it to the pool when released. Segments are released
// in queue order, so every earlier user of the chunk is done by then.
//
// A referenced segment (Conn.WriteRef) points into the caller's memory and
// carries the caller's Releaser.
type segment struct {
	b   []byte   // bytes not yet sent; a copied one may grow into its chunk
	own []byte   // chunk to return to the pool on release, or nil
	r   Releaser // released once b is sent or the queue is dropped
}

// outQueue is a connection's FIFO of pending output. Segments are kept in a
// slice from head on; the slice is reused, so steady-state queuing does not
// allocate.
type outQueue struct {
	segs    []segment
	head    int
	pending int    // unsent bytes over all segments
	cur     []byte // chunk being filled by Write: len is used, cap is size
	curSeg  int    // index in segs of the segment owning cur
}

// has reports whether anything is queued, including zero-length references
// still waiting for their release.
func (q *outQueue) has() bool { return q.head < len(q.segs) }

// write copies p to the tail of the queue.
func (q *outQueue) write(p []byte, pool *bufPool) {
	q.pending += len(p)
	if q.cur != nil && q.curSeg == len(q.segs)-1 {
		// The tail segment was carved from cur and ends where cur's used
		// part ends: extend both.
		t := &q.segs[q.curSeg]
		k := min(cap(q.cur)-len(q.cur), len(p))
		t.b = append(t.b, p[:k]...)
		q.cur = q.cur[:len(q.cur)+k]
		p = p[k:]
	}
	for len(p) > 0 {
		if q.cur == nil || len(q.cur) == cap(q.cur) {
			q.cur = pool.get(min(max(len(p), chunkMin), chunkMax))
		} else {
			q.segs[q.curSeg].own = nil // ownership moves to the new segment
		}
		off := len(q.cur)
		k := min(cap(q.cur)-off, len(p))
		q.cur = append(q.cur, p[:k]...)
		q.segs = append(q.segs, segment{b: q.cur[off : off+k], own: q.cur[:0]})
		q.curSeg = len(q.segs) - 1
		p = p[k:]
	}
}

// writeRef queues p without copying it.
func (q *outQueue) writeRef(p []byte, r Releaser) {
	q.pending += len(p)
	q.segs = append(q.segs, segment{b: p[:len(p):len(p)], r: r})
}

// iovecs fills iov from the head of the queue and returns how many entries
// it used and how many bytes they cover. Zero-length segments are skipped
// here and released by consume once the queue head passes them.
func (q *outQueue) iovecs(iov []unix.Iovec) (int, int) {
	n, total := 0, 0
	for i := q.head; i < len(q.segs) && n < len(iov); i++ {
		b := q.segs[i].b
		if len(b) == 0 {
			continue
		}
		iov[n].Base = &b[0]
		iov[n].SetLen(len(b))
		n++
		total += len(b)
	}
	return n, total
}

// consume drops n sent bytes from the head, releasing every segment that is
// now fully sent, including zero-length ones it reaches.
func (q *outQueue) consume(n int, pool *bufPool) {
	q.pending -= n
	for q.head < len(q.segs) {
		s := &q.segs[q.head]
		if n < len(s.b) {
			s.b = s.b[n:]
			break
		}
		n -= len(s.b)
		q.release(s, pool)
		q.head++
	}
	q.compact()
}

// release gives back what s holds and clears it.
func (q *outQueue) release(s *segment, pool *bufPool) {
	if s.own != nil {
		if q.cur != nil && &q.cur[:1][0] == &s.own[:1][0] {
			q.cur = nil
		}
		pool.put(s.own)
	}
	if s.r != nil {
		s.r.Release()
	}
	*s = segment{}
}

// compact reuses the segment slice from its start once the head has moved
// far enough, so a queue that never fully drains does not grow without end.
func (q *outQueue) compact() {
	switch {
	case q.head == len(q.segs):
		q.segs = q.segs[:0]
		q.head = 0
	case q.head >= 64 && 2*q.head >= len(q.segs):
		n := copy(q.segs, q.segs[q.head:])
		clear(q.segs[n:])
		q.segs = q.segs[:n]
		q.curSeg -= q.head
		q.head = 0
	}
}

// appendQueue moves everything queued in o to the tail of q, in order, and
// leaves o empty. Copied segments keep their chunks; q goes on filling o's
// current chunk, if any.
func (q *outQueue) appendQueue(o *outQueue) {
	if o.has() {
		base := len(q.segs) - o.head
		q.segs = append(q.segs, o.segs[o.head:]...)
		q.pending += o.pending
		if o.cur != nil {
			q.cur, q.curSeg = o.cur, base+o.curSeg
		}
	}
	clear(o.segs)
	*o = outQueue{segs: o.segs[:0]}
}

// drop releases everything queued, sent or not (the connection is closing).
func (q *outQueue) drop(pool *bufPool) {
	for i := q.head; i < len(q.segs); i++ {
		q.release(&q.segs[i], pool)
	}
	q.segs = q.segs[:0]
	q.head = 0
	q.pending = 0
	q.cur = nil
}
