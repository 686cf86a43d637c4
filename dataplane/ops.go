package dataplane

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// putMeta is what a put request stores besides its bytes: the header bits a
// value keeps (wire.StoredFlags, whose bits are the tier's), IfAbsent, and
// the request's version and object size. Chunk puts must name a chunk key
// of their version, and manifests a version (wire/objects.go).
func putMeta(h *wire.Header, r *wire.Request) (Meta, error) {
	m := Meta{Flags: PutFlags(h.Flags & wire.StoredFlags), Version: r.Version}
	if h.Flags&wire.FlagIfAbsent != 0 {
		m.Flags |= IfAbsent
	}
	switch {
	case h.Flags&wire.FlagChunk != 0:
		// Chunks are immutable: a chunk key is written once.
		m.Flags |= IfAbsent
		if _, v, _, ok := wire.ParseChunkKey(r.Key); !ok || v != r.Version {
			return m, errBadChunk
		}
	case wire.IsChunkKey(r.Key):
		return m, errReservedKey
	case h.Flags&wire.FlagManifest != 0:
		if r.Version == 0 {
			return m, errBadManifest
		}
		m.ObjectSize = r.ObjectSize
	}
	return m, nil
}

// stampVersion gives a value put without a version (by a raw client; the
// SDKs send one) a version of the connection's own, so that a delete
// conditional on the version read (a get that deletes, takeRead) cannot
// remove a newer value put meanwhile: two versionless values were both
// version 0, and a hostile trial saw an acknowledged put vanish unread 6
// times in 90,975 races. Each connection counts from a random start with
// the high bit set (newVersionless), which keeps the numbers apart from
// other connections' and from a job's own (random) versions in practice,
// without a shared counter's locked instruction per put.
func (cs *connState) stampVersion(m *Meta) {
	if m.Version == 0 {
		cs.versionless++
		m.Version = cs.versionless
	}
}

func newVersionless() uint64 { return rand.Uint64() | 1<<63 }

// checkManifest checks a manifest put's payload, which onData serves only
// once it has all come (wholeFirst): a manifest of the request's version and object size,
// with chunks no larger than a frame (wire.DecodeManifest), so a reader
// trusting it allocates what the chunks can hold.
func checkManifest(h *wire.Header, r *wire.Request, have []byte) error {
	if h.Flags&wire.FlagManifest == 0 {
		return nil
	}
	if int(h.PayloadLen) != wire.ManifestLen || len(have) != wire.ManifestLen {
		return errBadManifest
	}
	m, err := wire.DecodeManifest(have)
	if err != nil || m.Version != r.Version || m.Size != r.ObjectSize {
		return errBadManifest
	}
	return nil
}

var (
	errBadChunk    = &wire.Error{Code: wire.CodeBadKey, Msg: "a chunk put must name a chunk key of its version"}
	errReservedKey = &wire.Error{Code: wire.CodeBadKey, Msg: "keys containing the byte 0x00 are reserved for chunks"}
	// errReservedRemove refuses a delete, a get that deletes and a prefix
	// delete of a name with 0x00: chunks go with their version
	// (OpDropVersion), once no manifest names it. Before, a raw client of
	// the job deleted one chunk of a committed object, which then listed
	// and stat'ed whole but read "corrupt object" for as long as its key
	// lived (a hostile trial).
	errReservedRemove = &wire.Error{Code: wire.CodeBadKey,
		Msg: "keys containing the byte 0x00 are reserved for chunks, which are removed with their version (drop-version), not one by one"}
	errBadManifest = &wire.Error{Code: wire.CodeMalformed,
		Msg: "a manifest put must carry a whole manifest (wire/objects.go) of its version and object size"}
	errRevokedLate = &wire.Error{Code: wire.CodeRevoked, Msg: "the job was deregistered during the put: nothing was stored"}
	errDeadVersion = &wire.Error{Code: wire.CodeConflict, Msg: "the chunk's object version was dropped or its lease expired: nothing was stored"}
	// errDrainingLate refuses a put admitted before the node began
	// draining whose payload arrived after: the node's drainer may have
	// moved the job's values and ended (or its controller retired it,
	// or took it out of the job's map) before the value was stored, so
	// it would stay where no reader looks. Before, a hostile re-check's
	// 8 MiB put, its payload sent slowly, was acknowledged 0.3-0.7 s after
	// its node was retired, and the key then read "not found".
	errDrainingLate = &wire.Error{Code: wire.CodeDraining, Msg: "the node began draining during the put: nothing was stored; put elsewhere"}
)

// stillTaken checks at commit a put whose job's map changed while its
// payload came (the entry's epoch is no longer the one it was admitted
// at): the node's mover may have moved the job's values by the new map
// and reported none left before this one is stored, which would stay
// where the new map's readers do not look. It is refused (movedLate: the
// SDK fetches the new map and puts it at its owner) unless the node
// takes it now as a put arriving now would be taken: a key this node
// owns under both the request's map and the current one, while the
// controller holds the current one back (keptKeys), which no move takes
// away; a manifest written or replaced so is refused, as keptChange
// refuses it. Before the kept keys were taken here, a put in flight
// while a frozen node held a map change back failed in both SDKs (a
// hostile re-check: they waited for a newer map that did not come).
func (n *Node) stillTaken(tier Tier, p Pending, ch putRef) error {
	if ch.epoch == 0 {
		return nil // a pending job's put: any epoch
	}
	cur := ch.entry.epoch.Load()
	if cur == ch.epoch {
		return nil
	}
	job, key := p.Key()
	if ch.manifest || n.jobs.checkEpoch(ch.entry, cur, ch.sent, opStore, key) != errKept {
		return movedLate(cur)
	}
	if info, err := tier.Stat(job, key); err == nil && info.Flags&Manifest != 0 {
		return movedLate(cur)
	}
	return nil
}

// movedLate refuses a put admitted at a map epoch of its job older than
// cur, the entry's epoch when its payload had come (Node.publish).
func movedLate(cur uint64) error {
	return &wire.Error{Code: wire.CodeStaleEpoch, Epoch: cur,
		Msg: "the job's placement map changed during the put: nothing was stored; fetch the job's map again"}
}

// put starts a put whose first payload bytes are `have`. It returns false
// when a sink now receives the rest of the payload.
func (n *Node) put(c *netio.Conn, cs *connState, h *wire.Header, have []byte) bool {
	tier, err := n.admit(c, cs, h)
	if err == nil && n.drain.Load() {
		err = errDraining
	}
	var m Meta
	if err == nil {
		m, err = putMeta(h, &cs.req)
		cs.stampVersion(&m)
	}
	if err == nil {
		err = checkManifest(h, &cs.req, have)
	}
	if err == nil && h.Flags&wire.FlagChunk != 0 && n.vers.isDead(verKey{tier.Kind(), string(cs.req.Job), m.Version}) {
		err = errDeadVersion
	}
	var quota quotaHold
	if err == nil {
		quota, err = n.holdQuota(cs.entry, cs.req.Job, int64(h.PayloadLen))
	}
	var held unfinishedHold
	if err == nil && len(have) < int(h.PayloadLen) {
		held, err = n.holdUnfinished(cs.entry, cs.req.Job, tier, int64(h.PayloadLen))
	}
	var p Pending
	if err == nil {
		p, err = tier.Create(cs.req.Job, cs.req.Key, int64(h.PayloadLen), m)
	}
	if err != nil {
		n.releaseUnfinished(held)
		n.releaseQuota(quota)
		return n.skipPayload(c, cs, h, have, wire.ErrorOf(err))
	}
	n.countBytes(c, cs, n.jobs.traffic(cs.entry, cs.req.Job), dirIn, uint64(h.PayloadLen))
	s := &cs.put
	s.start(c, *h, tier, p)
	s.ref.entry, s.ref.epoch, s.ref.sent, s.ref.quota, s.held = cs.entry, cs.entryEpoch, cs.req.Epoch, quota, held
	s.ref.manifest = h.Flags&wire.FlagManifest != 0
	if h.Flags&wire.FlagChunk != 0 {
		s.ref.job, s.ref.key, s.ref.ver = string(cs.req.Job), string(cs.req.Key), m.Version
		s.ref.lease, s.ref.size = h.Flags&wire.FlagLease != 0, int64(h.PayloadLen)
	}
	s.fill(have)
	if len(s.Next()) == 0 {
		s.Done()
		return true
	}
	c.SetSink(s)
	return false
}

// putRef is what a put's commit needs besides the Pending: the job's entry
// and its map epoch at admission, checked again at commit, and for a
// chunk its job, key and version, to file it under its version (ver 0:
// not a chunk).
type putRef struct {
	entry    *jobEntry
	epoch    uint64 // entry's epoch the put was checked against; 0: none
	sent     uint64 // the request's epoch (older than epoch for a kept key)
	manifest bool   // the put writes a manifest
	job, key string
	ver      uint64
	lease    bool
	size     int64     // the chunk's bytes
	quota    quotaHold // counted in its owner's puts under way until committed or dropped
}

// commit publishes a filled put and answers it: inline for DRAM, on a
// worker for a blocking tier.
func (n *Node) commit(c *netio.Conn, h wire.Header, tier Tier, p Pending, ch putRef) {
	if tier.Blocking() && !n.inlineOK(c, c.Context().(*connState)) {
		n.commitAsync(c, h, tier, p, ch)
		return
	}
	replaced, err := n.publish(tier, p, ch)
	n.replyPut(c, c.Context().(*connState), &h, replaced, err)
}

// publish commits p and files a chunk under its version. A put whose job
// was revoked, or whose job's map changed, since it was admitted stores
// nothing.
func (n *Node) publish(tier Tier, p Pending, ch putRef) (Info, error) {
	defer n.releaseQuota(ch.quota)
	if e := ch.entry; e != nil { // before the checks: a drop, a drain and a move wait for it (awaitCommits, AwaitCommits, AwaitMoveCommits)
		at := e.admittedAt(ch.epoch)
		at.Add(1)
		defer at.Add(-1)
	}
	if !ch.entry.stored() {
		p.Abort()
		return Info{}, errRevokedLate
	}
	if err := n.stillTaken(tier, p, ch); err != nil {
		p.Abort()
		return Info{}, err
	}
	if n.jobs.lease.lapsed() { // its payload arrived across the lapse (lease.go)
		n.jobs.wantSync()
		p.Abort()
		return Info{}, errLapsed
	}
	if n.drain.Load() { // its payload arrived after the node began draining
		p.Abort()
		return Info{}, errDrainingLate
	}
	if ch.ver != 0 && n.vers.isDead(verKey{tier.Kind(), ch.job, ch.ver}) {
		p.Abort()
		return Info{}, errDeadVersion
	}
	k := verKey{tier.Kind(), ch.job, ch.ver}
	if ch.ver != 0 {
		if err := n.vers.admit(k, ch.key, ch.size); err != nil {
			p.Abort()
			return Info{}, err
		}
	}
	filing := ch.ver != 0 && ch.lease
	if filing {
		n.vers.beginFiling(k)
	}
	replaced, err := p.Commit()
	switch {
	case err == nil && ch.ver != 0:
		if !n.vers.add(n, k, ch.key, ch.lease, ch.size) {
			// Dropped while it was committed (an NVMe write takes a
			// while): the drop took the version's chunks filed before
			// this one, and no drop will come for it. Before, it was
			// filed under the dead version and stayed until the job
			// ended (a hostile trial: 7 chunks, 1 MB, after every key
			// was deleted).
			_, _ = tier.Delete([]byte(ch.job), []byte(ch.key))
			return Info{}, errDeadVersion
		}
	case filing:
		n.vers.doneFiling(k)
	}
	return replaced, err
}

// replyPut answers a put: a replaced manifest's version and object size go
// back to the writer, which then drops that version's chunks.
func (n *Node) replyPut(c *netio.Conn, cs *connState, h *wire.Header, replaced Info, err error) {
	switch {
	case err != nil:
		n.replyErr(c, cs, h, wire.ErrorOf(err))
	case replaced.Flags&Manifest != 0:
		n.replyMeta(c, cs, h, &wire.Response{Version: replaced.Version, Size: replaced.ObjectSize})
	default:
		n.replyOK(c, cs, h, 0)
	}
}

// commitAsync commits on a worker and answers from the connection's loop.
// It is apart from commit so that its closures' captures do not make the
// DRAM path allocate.
func (n *Node) commitAsync(c *netio.Conn, h wire.Header, tier Tier, p Pending, ch putRef) {
	cs := c.Context().(*connState)
	start := cs.start
	// The reply is promised (Conn.Expect) until it is written, as a get's
	// from a device is, so a client that shuts its writing side after the
	// put still gets it: the connection closes once it owes nothing
	// (netio's peerEOF). Before, it closed at the end of input, the reply
	// was dropped and the put published after the close, after a put of
	// the key that the client sent next on another connection (a review
	// of the Python client's fences, with a busy device).
	c.Expect(putReplyOwed)
	ok := n.submit(func() {
		replaced, err := n.publish(tier, p, ch)
		c.Loop().Post(func() {
			c.Expect(-putReplyOwed)
			if !cs.closed {
				cs.withStart(start, func() { n.replyPut(c, cs, &h, replaced, err) })
			}
		})
	})
	if !ok {
		c.Expect(-putReplyOwed)
		p.Abort()
		n.releaseQuota(ch.quota)
		n.replyErr(c, cs, &h, errBusy)
	}
}

// putReplyOwed is what a put committed off the loop promises its
// connection (Conn.Expect) until its reply is written: a header and a
// short response.
const putReplyOwed = wire.HeaderLen + 64

var errBusy = &wire.Error{Code: wire.CodeBusy, Msg: "too many device operations in flight; retry"}

// submit queues f on the blocking-tier workers without ever blocking the
// event loop; false means the queue is full or the node has closed. Any
// goroutine may call it at any time: a streamed get's read completion
// begins the next read from the reaper or a worker, which may run while
// the node closes.
func (n *Node) submit(f func()) bool {
	n.workMu.RLock()
	defer n.workMu.RUnlock()
	if !n.workUp {
		return false
	}
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

// spawn runs f on a goroutine of its own, counted as a worker's call
// (inflight) and waited for by Close, unless the workers have stopped
// (the node is closing), when it reports false. For calls that must not
// be refused when the workers' queue is full (getStream.read).
func (n *Node) spawn(f func()) bool {
	n.workMu.RLock()
	defer n.workMu.RUnlock()
	if !n.workUp {
		return false
	}
	n.inflight.Add(1)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.inflight.Add(-1)
		f()
	}()
	return true
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
	if h.Flags&wire.FlagDeleteAfterRead != 0 && n.moving(tier, cs.req.Job, cs.req.Key) {
		n.replyErr(c, cs, h, errMoving)
		return
	}
	// The job's counters, taken now: a reply sent later (from another
	// goroutine's read) finds cs holding a later request.
	jt := n.jobs.traffic(cs.entry, cs.req.Job)
	if n.getStream(c, cs, h, tier, jt) {
		return
	}
	if tier.Blocking() && !n.inlineOK(c, cs) {
		if !n.getStart(c, cs, h, tier, jt) {
			n.getAsync(c, *h, tier, string(cs.req.Job), string(cs.req.Key), jt)
		}
		return
	}
	v, err := n.openFor(cs, tier, h.Flags)
	if err != nil {
		n.replyErr(c, cs, h, wire.ErrorOf(err))
		return
	}
	n.sendValue(c, cs, h, v, jt)
}

// openFor is open for the request cs holds. A get from the DRAM tier that
// prefetch decoded (cs.pre) looks its key up by the job and hash the
// prefetch found, not by looking them up again (about 180 of a pipelined
// get's 3,500 user-space instructions, callgrind).
func (n *Node) openFor(cs *connState, tier Tier, flags uint16) (Value, error) {
	if cs.pre >= 0 && flags&wire.FlagDeleteAfterRead == 0 {
		if d, ok := tier.(*DRAM); ok {
			if j := cs.pb.dj[cs.pre]; j != nil {
				return d.openIn(j, cs.pb.hash[cs.pre], cs.req.Job, cs.req.Key)
			}
		}
	}
	return n.open(tier, cs.req.Job, cs.req.Key, flags)
}

// openStarter is a blocking tier that can begin a read without waiting
// for it (NVMe.OpenStart).
type openStarter interface {
	OpenStart(job, key []byte, submit bool, done func(Value, error)) (size int64, started bool, err error)
	ClaimFlush() bool
	Flush()
}

// getStart serves a get from a tier that can begin the read on the event
// loop itself: the read's completion is posted straight back to this loop,
// with no worker in between (one goroutine hand-off instead of three). It
// reports false, having done nothing, when the tier cannot start the read
// at once or the get deletes what it reads (FlagDeleteAfterRead, which
// needs the key after the open); then the worker path serves the get.
func (n *Node) getStart(c *netio.Conn, cs *connState, h *wire.Header, tier Tier, jt *jobTraffic) bool {
	st, ok := tier.(openStarter)
	if !ok || h.Flags&wire.FlagDeleteAfterRead != 0 {
		return false
	}
	hc, start := *h, cs.start
	// The last get of the loop's pass submits; earlier ones queue, and a
	// flush posted behind the pass submits them together (one system
	// call and one device doorbell for the batch).
	submit := cs.last && c.Loop().Idle()
	n.inflight.Add(1)
	// The reply's bytes, promised below once the size is known and read
	// back on the loop when the reply is posted there (the reaper only
	// passes the pointer on).
	var owe int
	size, started, err := st.OpenStart(cs.req.Job, cs.req.Key, submit, func(v Value, err error) {
		n.inflight.Add(-1)
		n.postOpened(c, cs, &hc, start, v, err, jt, &owe)
	})
	switch {
	case started:
		owe = wire.HeaderLen + int(size)
		c.Expect(owe)
		if !submit {
			n.flushLater(c, st)
		}
		return true
	case err != nil:
		n.inflight.Add(-1)
		n.replyErr(c, cs, h, wire.ErrorOf(err))
		return true
	}
	n.inflight.Add(-1)
	return false
}

// flushLater posts a flush of the reads queued by OpenStart behind the
// current pass, unless the tier has one coming already (ClaimFlush).
func (n *Node) flushLater(c *netio.Conn, st openStarter) {
	if st.ClaimFlush() {
		c.Loop().Post(st.Flush)
	}
}

// postOpened hands a value opened off the loop (or its error) back to the
// connection's loop and answers there. Loop.Post (not Conn.Post, which
// skips closed connections) so the value is released even if the client
// has gone.
func (n *Node) postOpened(c *netio.Conn, cs *connState, h *wire.Header, start int64, v Value, err error, jt *jobTraffic, owe *int) {
	c.Loop().Post(func() {
		c.Expect(-*owe)
		switch {
		case err != nil && !cs.closed:
			cs.withStart(start, func() { n.replyErr(c, cs, h, wire.ErrorOf(err)) })
		case err != nil:
		case cs.closed:
			v.Release()
		default:
			cs.withStart(start, func() { n.sendValue(c, cs, h, v, jt) })
		}
	})
}

// getAsync reads a value from a blocking tier on a worker and sends it from
// the connection's loop. If the connection closed meanwhile the value is
// released on the worker.
func (n *Node) getAsync(c *netio.Conn, h wire.Header, tier Tier, job, key string, jt *jobTraffic) {
	cs := c.Context().(*connState)
	start := cs.start
	owe := replyOwed(tier, job, key)
	c.Expect(owe)
	ok := n.submit(func() {
		v, err := n.open(tier, []byte(job), []byte(key), h.Flags)
		n.postOpened(c, cs, &h, start, v, err, jt, &owe)
	})
	if !ok {
		c.Expect(-owe)
		n.replyErr(c, cs, &h, errBusy)
	}
}

// replyOwed is what a get answered off the loop promises its connection
// (netio.Conn.Expect) while the value is read: the reply's header and the
// value's size, as the index has it now, which the reply copies or holds
// by reference in the read's staging buffer. Counted, one connection's
// gets stop once their replies would pass its bound; before, one
// connection of a client that read nothing had every NVMe staging buffer
// (256 MiB) filled with 1 MiB values for it, and other clients' gets and
// puts on that tier failed as "tier full" (a hostile trial, 2026-12-02).
func replyOwed(tier Tier, job, key string) int {
	info, err := tier.Stat([]byte(job), []byte(key))
	if err != nil {
		return wire.HeaderLen
	}
	return wire.HeaderLen + int(info.Size)
}

// open opens the value under key for a get; with FlagDeleteAfterRead it
// also takes it (takeRead).
func (n *Node) open(tier Tier, job, key []byte, flags uint16) (Value, error) {
	if flags&wire.FlagDeleteAfterRead != 0 {
		return n.takeRead(tier, job, key)
	}
	return tier.Open(job, key)
}

// takeReadTries bounds how often takeRead opens a key again because a
// writer replaced its value between the open and the delete.
const takeReadTries = 4

// errTaken answers a get with FlagDeleteAfterRead whose value another such
// get (or a delete) removed between its open and its delete.
var errTaken = &wire.Error{Code: wire.CodeNotFound, Msg: "no value under that key: another delete-after-read get (or a delete) took it first"}

// takeRead opens the value under key for a get with FlagDeleteAfterRead
// and deletes it by its version; the open reference keeps the bytes for
// the reply. It returns the value only if its own delete removed it, so of
// gets racing on one value (on several loops, or on workers for a blocking
// tier) exactly one sends it, the others answer "not found" (errTaken). A
// value replaced between the open and the delete is opened again (the
// newer value is the one to take), at most takeReadTries times. A manifest
// is not deleted here: the SDK deletes it, conditionally on its version,
// once it has read the chunks (so a failed read deletes nothing), and
// hands the object out only if that delete removed it.
func (n *Node) takeRead(tier Tier, job, key []byte) (Value, error) {
	// The get's check for a move (Node.get) came before the worker's
	// queue: checked again with the take registered (beginKeyDelete).
	d, ok := n.vers.beginKeyDelete(tier.Kind(), job, key)
	if !ok {
		return nil, errMoving
	}
	defer d.end()
	for try := 1; ; try++ {
		v, err := tier.Open(job, key)
		if err != nil || v.Flags()&Manifest != 0 {
			return v, err
		}
		_, err = tier.DeleteVersion(job, key, v.Version())
		if err == nil {
			n.vers.forget(tier.Kind(), job, key)
			return v, nil
		}
		v.Release()
		switch {
		case errors.Is(err, ErrNotFound):
			return nil, errTaken
		case !errors.Is(err, ErrConflict) || try == takeReadTries:
			return nil, err
		}
	}
}

// sendValue writes the reply header and the value. Small values are
// copied into the output buffer and released at once; large ones go to
// writev by reference and are released when the kernel has them. The
// bytes count as sent for the job whose counters jt are.
func (n *Node) sendValue(c *netio.Conn, cs *connState, h *wire.Header, v Value, jt *jobTraffic) {
	size := v.Size()
	rh := wire.Header{Op: h.Op.Reply(), ID: h.ID, PayloadLen: uint32(size), Flags: uint16(v.Flags())}
	if h.Flags&wire.FlagVersion != 0 {
		meta := cs.encoder().Response(&wire.Response{Version: v.Version()})
		rh.MetaLen = uint32(len(meta))
		wire.PutHeader(cs.hdr[:], &rh)
		c.Write(cs.hdr[:])
		c.Write(meta)
	} else {
		wire.PutHeader(cs.hdr[:], &rh)
		c.Write(cs.hdr[:])
	}
	n.countBytes(c, cs, jt, dirOut, uint64(size))
	n.mx.done(c, cs, h.Op, wire.CodeOK)
	segs := v.Segments()
	if size <= smallCopy || len(segs) == 0 {
		for _, s := range segs {
			c.Write(s)
		}
		v.Release()
		return
	}
	last := len(segs) - 1
	for _, s := range segs[:last] {
		c.WriteRef(s, nil)
	}
	c.WriteRef(segs[last], v)
}

// meta serves a delete of one key, stat and usage: index operations that
// never wait for a device, whatever the tier, and cost the same however
// many keys the job has (listings and prefix deletes: lane.go).
func (n *Node) meta(c *netio.Conn, cs *connState, h *wire.Header, tier Tier) {
	r := &cs.req
	switch h.Op {
	case wire.OpDelete:
		n.delete(c, cs, h, tier)
	case wire.OpStat:
		info, err := tier.Stat(r.Job, r.Key)
		if err != nil {
			n.replyErr(c, cs, h, wire.ErrorOf(err))
			return
		}
		n.replyMeta(c, cs, h, &wire.Response{Size: info.ObjectSize, Flags: uint32(info.Flags), Version: info.Version})
	case wire.OpUsage:
		// The job's own bytes and the tier's capacity; no count: the
		// tier's values are every job's (a hostile trial read another
		// job's puts in it), and only the operator's status shows them.
		n.replyMeta(c, cs, h, &wire.Response{Size: tier.JobUsage(r.Job), Capacity: tier.Usage().Capacity})
	}
}

// delete removes one key, if FlagIfVersion is set only at Request.version,
// and answers with the version of a removed manifest so that the SDK can
// drop its chunks.
func (n *Node) delete(c *netio.Conn, cs *connState, h *wire.Header, tier Tier) {
	r := &cs.req
	// Checked and registered in one step (beginKeyDelete): the mover
	// marks the key only after this delete has ended.
	d, ok := n.vers.beginKeyDelete(tier.Kind(), r.Job, r.Key)
	if !ok {
		n.replyErr(c, cs, h, errMoving)
		return
	}
	var info Info
	var err error
	if h.Flags&wire.FlagIfVersion != 0 {
		info, err = tier.DeleteVersion(r.Job, r.Key, r.Version)
	} else {
		info, err = tier.Delete(r.Job, r.Key)
	}
	d.end()
	if err != nil {
		n.replyErr(c, cs, h, wire.ErrorOf(err))
		return
	}
	n.vers.forget(tier.Kind(), r.Job, r.Key)
	if info.Flags&Manifest != 0 {
		n.replyMeta(c, cs, h, &wire.Response{Version: info.Version, Size: info.ObjectSize})
		return
	}
	n.replyOK(c, cs, h, 0)
}

// version serves OpConfirm and OpDropVersion for Request.version.
func (n *Node) version(c *netio.Conn, cs *connState, h *wire.Header, tier Tier) {
	r := &cs.req
	if r.Version == 0 {
		n.replyErr(c, cs, h, errNoVersion)
		return
	}
	k := verKey{tier.Kind(), string(r.Job), r.Version}
	if n.vers.anyMoving() && n.vers.versionMoving(k) {
		n.replyErr(c, cs, h, errMovingVersion)
		return
	}
	var count int
	if h.Op == wire.OpConfirm {
		count = n.vers.confirm(k)
	} else {
		count = n.dropVersion(tier, r.Job, r.Version)
	}
	n.replyMeta(c, cs, h, &wire.Response{Count: uint64(count)})
}

// errMovingVersion answers a confirm or drop-version on a node moving values
// while a chunk of the version is on its way to its new owner: the SDK
// retries, then asks the other nodes, which by then have it.
var errMovingVersion = &wire.Error{Code: wire.CodeBusy, Msg: "a chunk of the version is being moved to its new owner; retry"}

var errMoving = &wire.Error{Code: wire.CodeBusy, Msg: "the key is being moved to its new owner; retry"}

// moving reports whether this node is moving the key to its new owner now
// (it drains, or the job's map changed).
func (n *Node) moving(tier Tier, job, key []byte) bool {
	return n.vers.anyMoving() && n.vers.isMoving(tier.Kind(), job, key)
}

var errNoVersion = &wire.Error{Code: wire.CodeMalformed, Msg: "request names no object version"}

// List bounds: entries per reply, and metadata bytes kept under the
// default frame limit with room for the flatbuffer's own overhead.
const (
	listDefault  = 1000
	listMax      = 10000
	listMetaRoom = wire.DefaultMaxMeta - 4096
)

// list collects up to the request's limit of entries after r.After under
// the prefix r.Key; with a delimiter, keys with the delimiter past the
// prefix collapse into one directory entry each. Pages come from a sorted
// snapshot kept between the pages of a listing (list.go), so a whole
// listing costs time linear in the keys it returns.
func list(tier Tier, r *wire.Request) (*wire.Response, error) {
	limit := int(r.Limit)
	if limit <= 0 || limit > listMax {
		limit = listDefault
		if r.Limit > listMax {
			limit = listMax
		}
	}
	return listPage(tier, r, limit)
}

// deletePrefixMax is the most chunked objects one prefix delete removes;
// the reply says More when some remain, and the SDK asks again. It keeps the
// reply's versions well under the metadata limit.
const deletePrefixMax = 4096

// deletePrefixKeys is the most keys one prefix delete collects and
// removes; the reply says More when some remain. It bounds what one
// request holds and how long it keeps the scan lane, whose other jobs wait
// for it: before, a prefix delete over a job's millions of small values
// collected and deleted them all in one turn.
const deletePrefixKeys = 65536

// deletePrefix removes the job's keys that start with r.Key, stopping
// after deletePrefixMax manifests or deletePrefixKeys keys, except (for a live job) chunk keys:
// those go with their version, which the SDK drops on every node for each manifest removed here
// (the reply's Versions, with the versions earlier prefix deletes of the
// job removed whose drop has not reached the node: removed.go). The
// reply's Count is the names removed (chunk
// keys, a retired job's included, not counted), its Size the bytes of the
// retired job's chunk keys removed: chunks of its large objects, and of
// versions whose manifest was never published, which no name shows. Keys are collected first,
// in one listing: a tier's List callback must not modify the tier.
func (n *Node) deletePrefix(tier Tier, r *wire.Request) *wire.Response {
	var keys [][]byte
	resp := &wire.Response{}
	// A retired job writes nothing more: its chunk keys under the prefix
	// (persisted ones a writer left unpublished) go too.
	all := n.jobs.retired(r.Job)
	_ = tier.List(r.Job, r.Key, nil, func(key []byte, _ Info) bool {
		if len(keys) == deletePrefixKeys {
			resp.More = true
			return false
		}
		if all || !wire.IsChunkKey(key) {
			keys = append(keys, append([]byte(nil), key...))
		}
		return true
	})
	for _, k := range keys {
		if len(resp.Versions) == deletePrefixMax {
			resp.More = true
			break
		}
		info, err := tier.Delete(r.Job, k)
		if err != nil {
			continue
		}
		if !wire.IsChunkKey(k) {
			resp.Count++ // names: a retired job's chunk keys go too, uncounted
		} else {
			resp.Size += info.Size
		}
		if info.Flags&Manifest != 0 {
			resp.Versions = append(resp.Versions, info.Version)
		}
	}
	// Beside the versions it removed, the reply names those earlier
	// prefix deletes removed whose drop has not reached the node (their
	// reply may have been lost); then this one's are kept (removed.go).
	jt := jobTier{tier.Kind(), string(r.Job)}
	removed := len(resp.Versions)
	resp.Versions = append(resp.Versions, n.vers.removedKept(jt, r.Key, deletePrefixMax-removed)...)
	n.vers.keepRemoved(jt, r.Key, resp.Versions[:removed])
	return resp
}

// dropJob deletes a job's data on the controller's order (h, r: copies,
// as the order runs off the event loop: bgdrop.go's dropOrder).
func (n *Node) dropJob(h *wire.Header, r *wire.Request) (*wire.Response, error) {
	if len(r.Job) == 0 {
		return nil, errNoJob
	}
	// Values put with FlagPersist outlive their job (Pocket's
	// PERSIST_AFTER_JOB) unless the order says FlagPrefix: drop all.
	// The count is the job's own: before, the tiers' value counts before
	// and after the drop, which other jobs' puts and deletes meanwhile
	// moved too.
	freed := n.DropJob(r.Job, h.Flags&wire.FlagPrefix == 0)
	// Capacity: the job's bytes kept here (its persistent values); a
	// node that keeps none forgets the job after its RevokeLinger, which
	// the controller waits for before taking the node back (controller/dead.go).
	resp := wire.Response{Size: freed.Bytes, Count: uint64(max(freed.Values, 0)), Capacity: n.jobUsage(r.Job)}
	if p, ok := n.cfg.Guard.(versionsProver); ok {
		resp.Proof = p.ProveDrop(r.Job, r.Key, resp.Capacity) // the controller sweeps by it (controller/sweep.go)
	}
	return &resp, nil
}

// Bounds of an incarnation question's nonce (wire.OpIncarnation).
const (
	minNonce = 8
	maxNonce = 64
)

var errBadNonce = wire.Errorf(wire.CodeBadKey, "an incarnation question needs a nonce of %d to %d bytes as its key", minNonce, maxNonce)

// incarnationReply answers which process serves here (wire.OpIncarnation):
// the node's incarnation and, with a TokenGuard, its proof over the
// asker's nonce (Request.key). Asked before the node syncs too: the
// controller asks while it handles the node's registration.
func (n *Node) incarnationReply(c *netio.Conn, cs *connState, h *wire.Header) {
	nonce := cs.req.Key
	if len(nonce) < minNonce || len(nonce) > maxNonce {
		n.replyErr(c, cs, h, errBadNonce)
		return
	}
	r := wire.Response{Incarnation: n.incarnation}
	if p, ok := n.cfg.Guard.(incarnationProver); ok {
		r.Proof = p.ProveIncarnation(nonce, n.incarnation)
	}
	n.replyMeta(c, cs, h, &r)
}

func (n *Node) replyOK(c *netio.Conn, cs *connState, h *wire.Header, payload uint32) {
	rh := wire.Header{Op: h.Op.Reply(), ID: h.ID, PayloadLen: payload}
	wire.PutHeader(cs.hdr[:], &rh)
	c.Write(cs.hdr[:])
	n.mx.done(c, cs, h.Op, wire.CodeOK)
}

func (n *Node) replyMeta(c *netio.Conn, cs *connState, h *wire.Header, r *wire.Response) {
	meta := cs.encoder().Response(r)
	rh := wire.Header{Op: h.Op.Reply(), ID: h.ID, MetaLen: uint32(len(meta))}
	wire.PutHeader(cs.hdr[:], &rh)
	c.Write(cs.hdr[:])
	c.Write(meta)
	n.mx.done(c, cs, h.Op, wire.CodeOK)
}

func (n *Node) replyErr(c *netio.Conn, cs *connState, h *wire.Header, err error) {
	n.stats.of(c).errors.Add(1)
	werr := wire.ErrorOf(err)
	meta := cs.encoder().ErrorResponse(werr)
	rh := wire.Header{Op: h.Op | wire.ReplyBit, ID: h.ID, Code: werr.Code, MetaLen: uint32(len(meta))}
	wire.PutHeader(cs.hdr[:], &rh)
	c.Write(cs.hdr[:])
	c.Write(meta)
	n.mx.done(c, cs, h.Op, rh.Code)
}

// Streamed gets. A value larger than one stream chunk is read from the
// NVMe tier in chunks of streamChunk bytes, and chunk k is sent while the
// chunks after it are read, so the read and the send of one value overlap
// instead of running in series (nvme/doc.go, "Where a GET's time goes",
// the bullet "Streaming").
// Up to streamReads chunk reads are in flight at once, and up to
// streamWindow chunks are held (read or being read, and not yet sent),
// which bounds a stream's memory at 1 MiB, what a whole 1 MiB value took
// before. A read's completion begins the next read at once, on the
// goroutine that reaps it, when a buffer is free: the device is kept busy
// while earlier chunks wait for the loop or the socket (reads used to
// begin only as chunks were sent, two held at most). The first reads of a
// stream are begun together and may be merged by the block layer into one
// request; later ones begin one at a time as reads end. Why 3 reads: 2
// measured 0.98-1.0x of 3's rate and 4 (merged or submitted one by one)
// 0.88-0.89x (nvme/doc.go, the bullet "Reads that wait for sends").
//
// Framing: the reply header goes out with chunk 0, once it is read, so a
// failure to read chunk 0 is answered with an error reply like any other.
// From then on the reply owns the connection's output (netio.Conn.Hold):
// other replies queue behind it. A read failing after the header was sent
// cannot be reported in the frame, whose payload length is already out:
// the node closes the connection after sending the chunks before the
// failed one, and the client sees the connection end inside the payload
// (io.ErrUnexpectedEOF), never a whole value. One stream per connection at
// a time; a get arriving while one streams reads its value whole.
//
// Lifetime: the stream holds a reader reference on the version (the
// extents stay valid if the value is deleted or overwritten meanwhile)
// and ends, dropping it, when no read is in flight and every chunk buffer
// is back: sent, or released when the connection closed.
const (
	streamChunk  = 256 << 10
	streamReads  = 3
	streamWindow = 4
)

// streamOpener is a tier that can read a value in chunks (NVMe.OpenStream).
type streamOpener interface {
	OpenStream(job, key []byte, chunk int, minSize int64) (*nvmeStream, error)
}

// getStream is one streamed get. The read counters (begun, held,
// reading, stopped) are guarded by mu: a read's completion begins the
// next read on the goroutine that reaps it, without waiting for the loop.
// Every other field is touched on the connection's loop only: read
// results are posted there, and netio releases sent chunks there.
type getStream struct {
	n     *Node
	c     *netio.Conn
	cs    *connState
	h     wire.Header
	start int64
	s     *nvmeStream
	hold  *netio.Hold
	total int         // chunks
	jt    *jobTraffic // the job's counters (nil: not counted per job)

	mu      sync.Mutex
	begun   int  // chunks whose read has begun
	held    int  // chunks begun and whose buffer is not back yet
	reading int  // chunks whose read has begun and not ended
	stopped bool // no more reads: the stream failed or its connection closed

	written int  // chunks handed to the connection, in order
	failed  bool // a read failed: no more reads or writes
	ended   bool // the stream's reference is dropped
	// promised: the reply header is promised to the connection
	// (Conn.Expect) until it is written or the stream ends without it,
	// so a client that shuts its writing side after the get gets the
	// value (netio's peerEOF); the chunks' reads in flight hold nothing
	// of the connection's before the header takes its output.
	promised bool

	slots [streamWindow]streamSlot
}

// streamSlot is chunk k's buffer, for k in slot k % streamWindow: the
// window never holds two chunks of one slot. It is the netio.Releaser of
// the chunk's bytes.
type streamSlot struct {
	g     *getStream
	buf   []byte // the buffer, nil when free
	seg   []byte // the chunk's value bytes in buf
	ready bool   // read, not yet written
}

// getStream starts streaming the get's value when the tier can and the
// value is larger than one chunk; it reports false, having done nothing,
// when the get is to be served whole.
func (n *Node) getStream(c *netio.Conn, cs *connState, h *wire.Header, tier Tier, jt *jobTraffic) bool {
	so, ok := tier.(streamOpener)
	if !ok || cs.stream != nil || h.Flags&wire.FlagDeleteAfterRead != 0 {
		return false
	}
	s, err := so.OpenStream(cs.req.Job, cs.req.Key, streamChunk, streamChunk)
	if err != nil {
		n.replyErr(c, cs, h, wire.ErrorOf(err))
		return true
	}
	if s == nil {
		return false
	}
	g := &getStream{n: n, c: c, cs: cs, h: *h, start: cs.start, s: s, total: s.chunks(), jt: jt}
	for i := range g.slots {
		g.slots[i].g = g
	}
	cs.stream = g
	c.Expect(wire.HeaderLen)
	g.promised = true
	g.fill()
	return true
}

// unpromise takes back the header's promise (getStream.promised), once;
// on the connection's loop.
func (g *getStream) unpromise() {
	if g.promised {
		g.promised = false
		g.c.Expect(-wire.HeaderLen)
	}
}

// fill begins reads until streamReads are in flight, the window is full
// or every chunk has begun; the last one begun submits them all. It may
// run on any goroutine.
func (g *getStream) fill() {
	for {
		g.mu.Lock()
		if !g.canBegin() {
			g.mu.Unlock()
			return
		}
		k := g.begun
		g.begun++
		g.held++
		g.reading++
		last := !g.canBegin()
		g.mu.Unlock()
		g.read(k, last)
	}
}

// canBegin reports whether fill may begin the next chunk's read; g.mu is
// held. None begins once the node is closing: its loops would drop the
// result, and with it the chunk's buffer.
func (g *getStream) canBegin() bool {
	return !g.stopped && !g.n.closed.Load() && g.begun < g.total && g.reading < streamReads && g.held < streamWindow
}

// stop ends the stream's reads: none begins after it.
func (g *getStream) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

// release counts one chunk's buffer as back.
func (g *getStream) release() {
	g.mu.Lock()
	g.held--
	g.mu.Unlock()
}

// read begins chunk k's read through the device's ring when it can, else
// on a worker; the read's end begins the next (fill), and its result is
// posted to the loop.
func (g *getStream) read(k int, submit bool) {
	n, l := g.n, g.c.Loop()
	slot := &g.slots[k%streamWindow]
	posted := func(buf, seg []byte, err error) {
		n.inflight.Add(-1)
		g.mu.Lock()
		g.reading--
		g.mu.Unlock()
		if err == nil {
			g.fill()
		}
		l.Post(func() { g.readDone(slot, buf, seg, err) })
	}
	n.inflight.Add(1)
	if g.s.start(k, submit, posted) {
		return
	}
	wait := func() { posted(g.s.readWait(k)) }
	if k > 0 {
		wait = func() { posted(g.readPatient(k)) }
	}
	// Past its first chunk a stream may have begun its reply, which a
	// refusal would cut (the connection closed mid-value): its read waits
	// for the device on a goroutine of its own when the workers' queue is
	// full (a stream has at most streamReads reads in flight, and one
	// stream per connection runs).
	if !n.submit(wait) && (k == 0 || !n.spawn(wait)) {
		n.inflight.Add(-1)
		g.s.flush() // chunks queued unsubmitted before this one
		l.Post(func() { g.readDone(slot, nil, nil, errBusy) })
	}
}

// streamBufferWait bounds how long a streamed get's later chunk waits for
// a staging buffer (other streams' chunks free theirs as they are sent)
// before it fails, which cuts the reply.
const streamBufferWait = 10 * time.Second

// readPatient is readWait for a chunk past the first: its reply may have
// begun, and a shortage of staging buffers (errStagingBusy) is waited out,
// up to streamBufferWait, unless the stream stops. Before, it failed at
// once and cut the reply (a test under -race: 1-2 of 4 streams cut).
func (g *getStream) readPatient(k int) (buf, seg []byte, err error) {
	pause, until := 100*time.Microsecond, time.Now().Add(streamBufferWait)
	for {
		buf, seg, err = g.s.readWait(k)
		if err == nil || !errors.Is(err, errStagingBusy) || time.Now().After(until) || g.isStopped() || g.n.closed.Load() {
			return buf, seg, err
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// isStopped reports whether the stream's reads have ended (stop).
func (g *getStream) isStopped() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stopped
}

// readDone takes a chunk's read result on the loop and writes every chunk
// that is next in order.
func (g *getStream) readDone(slot *streamSlot, buf, seg []byte, err error) {
	switch {
	case err == nil && !g.failed && !g.gone():
		slot.buf, slot.seg, slot.ready = buf, seg, true
		g.writeReady()
		return
	case err == nil:
		g.stop()
		g.s.free(buf)
		g.dropReady()
	default:
		g.fail(err)
	}
	g.release()
	g.maybeEnd()
}

// dropReady frees the chunks read but not written, once nothing more is
// to be written (the stream failed or its connection is gone).
func (g *getStream) dropReady() {
	for i := range g.slots {
		if sl := &g.slots[i]; sl.ready {
			g.s.free(sl.buf)
			sl.buf, sl.seg, sl.ready = nil, nil, false
			g.release()
		}
	}
}

// writeReady writes the chunks that are read and next in order; chunk 0
// comes with the reply header and takes the connection's output.
func (g *getStream) writeReady() {
	for g.written < g.total && !g.failed {
		slot := &g.slots[g.written%streamWindow]
		if !slot.ready {
			return
		}
		if g.written == 0 && !g.writeHeader() {
			return
		}
		slot.ready = false
		g.written++
		g.hold.WriteRef(slot.seg, slot)
	}
	if g.written == g.total && g.hold != nil {
		g.hold.Release()
	}
}

// writeHeader takes the connection's output and writes the reply header
// (and the version, when asked for). It reports false when another reply
// holds the output, which cannot happen while streams are one per
// connection: that fails the stream.
func (g *getStream) writeHeader() bool {
	hold, ok := g.c.Hold()
	if !ok {
		g.fail(errors.New("dataplane: the connection's output is held by another reply"))
		return false
	}
	g.hold = hold
	g.unpromise()
	cs, h := g.cs, &g.h
	rh := wire.Header{Op: h.Op.Reply(), ID: h.ID, PayloadLen: uint32(g.s.size()), Flags: uint16(g.s.flags())}
	if h.Flags&wire.FlagVersion != 0 {
		meta := cs.encoder().Response(&wire.Response{Version: g.s.version()})
		rh.MetaLen = uint32(len(meta))
		wire.PutHeader(cs.hdr[:], &rh)
		hold.Write(cs.hdr[:])
		hold.Write(meta)
	} else {
		wire.PutHeader(cs.hdr[:], &rh)
		hold.Write(cs.hdr[:])
	}
	g.n.addBytes(g.c, g.jt, dirOut, uint64(g.s.size()))
	cs.withStart(g.start, func() { g.n.mx.done(g.c, cs, h.Op, wire.CodeOK) })
	return true
}

// fail ends the stream's reads and writes after a read error: before the
// header went out the get is answered with the error; after, the
// connection is closed with the reply cut short (its output is still
// held, so nothing else follows the partial payload). Buffers of chunks
// read but not written are freed at once.
func (g *getStream) fail(err error) {
	if g.failed {
		return
	}
	g.failed = true
	g.stop()
	g.dropReady()
	g.unpromise()
	switch {
	case g.gone():
	case g.hold == nil:
		g.cs.withStart(g.start, func() { g.n.replyErr(g.c, g.cs, &g.h, wire.ErrorOf(err)) })
	default:
		g.n.stats.of(g.c).errors.Add(1)
		g.c.Close()
	}
}

// gone reports whether the connection is closed or closing: nothing more
// is read or written for it.
func (g *getStream) gone() bool { return g.cs.closed || g.c.Closed() }

// Release implements netio.Releaser: the chunk is sent (or dropped with
// its connection); its buffer goes back and the next read may begin.
func (sl *streamSlot) Release() {
	g := sl.g
	g.s.free(sl.buf)
	sl.buf, sl.seg = nil, nil
	g.release()
	if g.gone() {
		g.stop()
	}
	g.fill()
	g.maybeEnd()
}

// maybeEnd drops the stream's reference once nothing is held and nothing
// more will be read: every chunk sent, or the stream failed, or the
// connection closed. With nothing held no read is in flight, so no
// completion can begin another after it.
func (g *getStream) maybeEnd() {
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	if g.ended || held > 0 || (g.written < g.total && !g.failed && !g.gone()) {
		return
	}
	g.ended = true
	g.unpromise()
	g.s.close()
	if g.cs.stream == g {
		g.cs.stream = nil
	}
}
