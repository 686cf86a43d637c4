package dataplane

import (
	"bytes"
	"errors"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// Tier errors as wire errors, allocated once so error replies on hot paths
// (a get that misses) allocate nothing beyond their metadata.
var tierWireErrs = []struct {
	tier error
	wire *wire.Error
}{
	{ErrNotFound, &wire.Error{Code: wire.CodeNotFound, Msg: "key not found"}},
	{ErrNoSpace, &wire.Error{Code: wire.CodeNoSpace, Msg: "tier full; nothing stored was changed"}},
	{ErrTooLarge, &wire.Error{Code: wire.CodeTooLarge, Msg: "value too large for this tier"}},
	{ErrIO, &wire.Error{Code: wire.CodeIO, Msg: "device I/O error; the value is not stored"}},
	{ErrBadKey, &wire.Error{Code: wire.CodeBadKey, Msg: "bad job id or key"}},
	{ErrClosed, &wire.Error{Code: wire.CodeClosed, Msg: "tier closed"}},
}

// wireErr maps a tier's error to the wire registry.
func wireErr(err error) error {
	var we *wire.Error
	if errors.As(err, &we) {
		return err
	}
	for _, m := range tierWireErrs {
		if errors.Is(err, m.tier) {
			if err == m.tier {
				return m.wire
			}
			return &wire.Error{Code: m.wire.Code, Msg: err.Error()}
		}
	}
	return &wire.Error{Code: wire.CodeInternal, Msg: err.Error()}
}

// putFlags keeps the header bits a value stores (wire.StoredFlags); the
// tier's Persist bit is wire.FlagPersist.
func putFlags(h uint16) PutFlags { return PutFlags(h & wire.StoredFlags) }

// put starts a put whose first payload bytes are `have`. It returns false
// when a sink now receives the rest of the payload.
func (n *Node) put(c *netio.Conn, cs *connState, h *wire.Header, have []byte) bool {
	tier, err := n.admit(cs, h)
	if err == nil && n.drain.Load() {
		err = errDraining
	}
	var p Pending
	if err == nil {
		p, err = tier.Create(cs.req.Job, cs.req.Key, int64(h.PayloadLen), putFlags(h.Flags))
	}
	if err != nil {
		return n.skipPayload(c, cs, h, have, wireErr(err))
	}
	n.stats.of(c).bytesIn.Add(uint64(h.PayloadLen))
	s := &cs.put
	s.start(c, *h, tier, p)
	s.fill(have)
	if len(s.Next()) == 0 {
		s.Done()
		return true
	}
	c.SetSink(s)
	return false
}

// commit publishes a filled put and answers it: inline for DRAM, on a
// worker for a blocking tier.
func (n *Node) commit(c *netio.Conn, h wire.Header, tier Tier, p Pending) {
	if tier.Blocking() && !n.inlineOK(c, c.Context().(*connState)) {
		n.commitAsync(c, h, p)
		return
	}
	err := p.Commit()
	cs := c.Context().(*connState)
	if err != nil {
		n.replyErr(c, cs, &h, wireErr(err))
		return
	}
	n.replyOK(c, cs, &h, 0)
}

// commitAsync commits on a worker and answers from the connection's loop.
// It is apart from commit so that its closures' captures do not make the
// DRAM path allocate.
func (n *Node) commitAsync(c *netio.Conn, h wire.Header, p Pending) {
	cs := c.Context().(*connState)
	ok := n.submit(func() {
		err := p.Commit()
		c.Loop().Post(func() {
			if cs.closed {
				return
			}
			if err != nil {
				n.replyErr(c, cs, &h, wireErr(err))
				return
			}
			n.replyOK(c, cs, &h, 0)
		})
	})
	if !ok {
		p.Abort()
		n.replyErr(c, cs, &h, errBusy)
	}
}

var errBusy = &wire.Error{Code: wire.CodeBusy, Msg: "too many device operations in flight; retry"}

// submit queues f on the blocking-tier workers without ever blocking the
// event loop; false means the queue is full.
func (n *Node) submit(f func()) bool {
	n.inflight.Add(1)
	select {
	case n.work <- func() {
		defer n.inflight.Add(-1)
		f()
	}:
		return true
	default:
		n.inflight.Add(-1)
		return false
	}
}

// inlineOK reports whether a blocking tier call may run on the event loop
// itself: nothing else is waiting on the device, this request is the last
// complete one the connection sent, and no other connection of the loop
// is ready in this pass. Then the loop has nothing to do meanwhile, and
// running the call inline saves the two goroutine hand-offs of the worker
// path (to a worker, and back through the loop's eventfd), each a wake-up
// of an idle CPU: at queue depth 1 a 4 KiB NVMe get went from 198 to 121 us
// p50. Under load some device call is always in flight, so requests take
// the worker path, which keeps the loop free and the device queue deep.
func (n *Node) inlineOK(c *netio.Conn, cs *connState) bool {
	return cs.last && c.Loop().Idle() && n.inflight.Load() == 0
}

// get answers with the value as the reply's payload.
func (n *Node) get(c *netio.Conn, cs *connState, h *wire.Header, tier Tier) {
	if tier.Blocking() && !n.inlineOK(c, cs) {
		n.getAsync(c, *h, tier, string(cs.req.Job), string(cs.req.Key))
		return
	}
	v, err := tier.Open(cs.req.Job, cs.req.Key)
	if err != nil {
		n.replyErr(c, cs, h, wireErr(err))
		return
	}
	if h.Flags&wire.FlagDeleteAfterRead != 0 {
		_ = tier.Delete(cs.req.Job, cs.req.Key) // the open reference keeps the bytes
	}
	n.sendValue(c, cs, h, v)
}

// getAsync reads a value from a blocking tier on a worker and sends it from
// the connection's loop. If the connection closed meanwhile the value is
// released on the worker.
func (n *Node) getAsync(c *netio.Conn, h wire.Header, tier Tier, job, key string) {
	cs := c.Context().(*connState)
	ok := n.submit(func() {
		v, err := tier.Open([]byte(job), []byte(key))
		if err == nil && h.Flags&wire.FlagDeleteAfterRead != 0 {
			_ = tier.Delete([]byte(job), []byte(key))
		}
		// Loop.Post (not Conn.Post, which skips closed connections)
		// so the value is released even if the client has gone.
		c.Loop().Post(func() {
			switch {
			case err != nil && !cs.closed:
				n.replyErr(c, cs, &h, wireErr(err))
			case err != nil:
			case cs.closed:
				v.Release()
			default:
				n.sendValue(c, cs, &h, v)
			}
		})
	})
	if !ok {
		n.replyErr(c, cs, &h, errBusy)
	}
}

// sendValue writes the reply header and the value. Small values are
// copied into the output buffer and released at once; large ones go to
// writev by reference and are released when the kernel has them.
func (n *Node) sendValue(c *netio.Conn, cs *connState, h *wire.Header, v Value) {
	size := v.Size()
	rh := wire.Header{Op: h.Op.Reply(), ID: h.ID, PayloadLen: uint32(size), Flags: uint16(v.Flags())}
	wire.PutHeader(cs.hdr[:], &rh)
	c.Write(cs.hdr[:])
	n.stats.of(c).bytesOut.Add(uint64(size))
	segs := v.Segments()
	if size <= smallCopy || len(segs) == 0 {
		for _, s := range segs {
			c.Write(s)
		}
		v.Release()
		return
	}
	last := len(segs) - 1
	for i, s := range segs[:last] {
		_ = i
		c.WriteRef(s, nil)
	}
	c.WriteRef(segs[last], v)
}

// meta serves delete, stat, list and usage: index operations that never
// wait for a device, whatever the tier.
func (n *Node) meta(c *netio.Conn, cs *connState, h *wire.Header, tier Tier) {
	r := &cs.req
	switch h.Op {
	case wire.OpDelete:
		if h.Flags&wire.FlagPrefix != 0 {
			n.replyMeta(c, cs, h, &wire.Response{Count: uint64(deletePrefix(tier, r.Job, r.Key))})
			return
		}
		if err := tier.Delete(r.Job, r.Key); err != nil {
			n.replyErr(c, cs, h, wireErr(err))
			return
		}
		n.replyOK(c, cs, h, 0)
	case wire.OpStat:
		info, err := tier.Stat(r.Job, r.Key)
		if err != nil {
			n.replyErr(c, cs, h, wireErr(err))
			return
		}
		n.replyMeta(c, cs, h, &wire.Response{Size: info.Size, Flags: uint32(info.Flags)})
	case wire.OpUsage:
		u := tier.Usage()
		n.replyMeta(c, cs, h, &wire.Response{Size: tier.JobUsage(r.Job), Capacity: u.Capacity, Count: uint64(u.Values)})
	case wire.OpList:
		resp, err := list(tier, r)
		if err != nil {
			n.replyErr(c, cs, h, wireErr(err))
			return
		}
		n.replyMeta(c, cs, h, resp)
	}
}

// List bounds: entries per reply, and metadata bytes kept under the
// default frame limit with room for the flatbuffer's own overhead.
const (
	listDefault  = 1000
	listMax      = 10000
	listMetaRoom = wire.DefaultMaxMeta - 4096
)

// list collects up to the request's limit of entries after r.After under
// the prefix r.Key; with a delimiter, keys with the delimiter past the
// prefix collapse into one directory entry each.
func list(tier Tier, r *wire.Request) (*wire.Response, error) {
	limit := int(r.Limit)
	if limit <= 0 || limit > listMax {
		limit = listDefault
		if r.Limit > listMax {
			limit = listMax
		}
	}
	resp := &wire.Response{}
	bytesUsed := 0
	err := tier.List(r.Job, r.Key, r.After, func(key []byte, info Info) bool {
		e := wire.Entry{Key: key, Size: info.Size}
		if r.Delimiter != 0 {
			if i := bytes.IndexByte(key[len(r.Key):], r.Delimiter); i >= 0 {
				e = wire.Entry{Key: key[:len(r.Key)+i+1], Dir: true}
				if k := len(resp.Entries); k > 0 && bytes.Equal(resp.Entries[k-1].Key, e.Key) {
					return true
				}
			}
		}
		if len(resp.Entries) == limit || bytesUsed+len(e.Key)+32 > listMetaRoom {
			resp.More = true
			return false
		}
		e.Key = append([]byte(nil), e.Key...)
		bytesUsed += len(e.Key) + 32
		resp.Entries = append(resp.Entries, e)
		return true
	})
	return resp, err
}

// deletePrefix removes every key of the job starting with prefix and
// returns how many it removed. Keys are collected first: a tier's List
// callback must not modify the tier.
func deletePrefix(tier Tier, job, prefix []byte) int {
	var keys [][]byte
	_ = tier.List(job, prefix, nil, func(key []byte, _ Info) bool {
		keys = append(keys, append([]byte(nil), key...))
		return true
	})
	n := 0
	for _, k := range keys {
		if tier.Delete(job, k) == nil {
			n++
		}
	}
	return n
}

// dropJob deletes a job's data on the controller's order.
func (n *Node) dropJob(c *netio.Conn, cs *connState, h *wire.Header) {
	r := &cs.req
	if len(r.Job) == 0 {
		n.replyErr(c, cs, h, errNoJob)
		return
	}
	var before int64
	for _, t := range n.Tiers() {
		before += int64(t.Usage().Values)
	}
	// Values put with FlagPersist outlive their job (Pocket's
	// PERSIST_AFTER_JOB) unless the order says FlagPrefix: drop all.
	freed := n.DropJob(r.Job, h.Flags&wire.FlagPrefix == 0)
	var after int64
	for _, t := range n.Tiers() {
		after += int64(t.Usage().Values)
	}
	n.replyMeta(c, cs, h, &wire.Response{Size: freed, Count: uint64(max(before-after, 0))})
}

func (n *Node) replyOK(c *netio.Conn, cs *connState, h *wire.Header, payload uint32) {
	rh := wire.Header{Op: h.Op.Reply(), ID: h.ID, PayloadLen: payload}
	wire.PutHeader(cs.hdr[:], &rh)
	c.Write(cs.hdr[:])
}

func (n *Node) replyMeta(c *netio.Conn, cs *connState, h *wire.Header, r *wire.Response) {
	meta := cs.encoder().Response(r)
	rh := wire.Header{Op: h.Op.Reply(), ID: h.ID, MetaLen: uint32(len(meta))}
	wire.PutHeader(cs.hdr[:], &rh)
	c.Write(cs.hdr[:])
	c.Write(meta)
}

func (n *Node) replyErr(c *netio.Conn, cs *connState, h *wire.Header, err error) {
	n.stats.of(c).errors.Add(1)
	werr := wireErr(err)
	meta := cs.encoder().ErrorResponse(werr)
	rh := wire.Header{Op: h.Op | wire.ReplyBit, ID: h.ID, Code: wire.CodeOf(werr), MetaLen: uint32(len(meta))}
	wire.PutHeader(cs.hdr[:], &rh)
	c.Write(cs.hdr[:])
	c.Write(meta)
}
