package dataplane

import (
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// putSink receives a put's payload straight into the Pending's buffers
// (slab chunks for DRAM, aligned staging buffers for NVMe). One lives in
// each connState and is reused, so a large put allocates nothing here.
type putSink struct {
	node *Node
	c    *netio.Conn
	h    wire.Header
	tier Tier
	p    Pending
	bufs [][]byte
	idx  int // current buffer
	off  int // bytes filled in bufs[idx]
	// ref is set by the node after start (ops.go).
	ref putRef
	// held is what is counted in its owner's unfinished puts until the
	// payload is complete or the put is dropped (unfinished.go).
	held unfinishedHold
}

func (s *putSink) start(c *netio.Conn, h wire.Header, tier Tier, p Pending) {
	s.c, s.h, s.tier, s.p = c, h, tier, p
	s.bufs, s.idx, s.off = p.Buffers(), 0, 0
}

// fill copies bytes that already arrived with the header.
func (s *putSink) fill(b []byte) {
	for len(b) > 0 {
		dst := s.Next()
		k := copy(dst, b)
		s.Advance(k)
		b = b[k:]
	}
}

// Next implements netio.Sink.
func (s *putSink) Next() []byte {
	for s.idx < len(s.bufs) && s.off == len(s.bufs[s.idx]) {
		s.idx, s.off = s.idx+1, 0
	}
	if s.idx == len(s.bufs) {
		return nil
	}
	return s.bufs[s.idx][s.off:]
}

// Advance implements netio.Sink.
func (s *putSink) Advance(n int) { s.off += n }

// Done implements netio.Sink: the payload is complete.
func (s *putSink) Done() {
	p, tier, c, h, ch := s.p, s.tier, s.c, s.h, s.ref
	s.node.releaseUnfinished(s.held)
	s.reset()
	s.node.commit(c, h, tier, p, ch)
}

// abort drops an unfinished put (the connection closed mid-payload).
func (s *putSink) abort() {
	if s.p != nil {
		s.p.Abort()
		s.node.releaseUnfinished(s.held)
		s.node.releaseQuota(s.ref.quota)
		s.reset()
	}
}

func (s *putSink) reset() {
	s.c, s.tier, s.p, s.bufs, s.ref, s.held = nil, nil, nil, nil, putRef{}, unfinishedHold{}
}

// discardSink reads and drops the payload of a refused request, so the
// stream stays in step, then sends the refusal.
type discardSink struct {
	node    *Node
	c       *netio.Conn
	h       wire.Header
	left    int
	err     error
	scratch []byte
}

const discardChunk = 64 << 10

func (s *discardSink) start(c *netio.Conn, h wire.Header, left int, err error) {
	s.c, s.h, s.left, s.err = c, h, left, err
	if s.scratch == nil {
		s.scratch = make([]byte, discardChunk)
	}
}

// Next implements netio.Sink.
func (s *discardSink) Next() []byte { return s.scratch[:min(s.left, len(s.scratch))] }

// Advance implements netio.Sink.
func (s *discardSink) Advance(n int) { s.left -= n }

// Done implements netio.Sink.
func (s *discardSink) Done() {
	c, err := s.c, s.err
	s.c, s.err = nil, nil
	s.node.replyErr(c, c.Context().(*connState), &s.h, err)
}
