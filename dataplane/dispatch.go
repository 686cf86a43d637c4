package dataplane

import (
	"encoding/binary"
	"errors"
	"sync/atomic"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// smallCopy is the largest value a get copies into the connection's output
// buffer; larger values are handed to writev by reference, straight out of
// the tier's memory. Below it the copy is cheaper than tracking a reference.
const smallCopy = 16 << 10

// connState is the node's per-connection state, set as the netio.Conn's
// context on open. It is touched only on the connection's loop goroutine,
// except where an async completion posts back to that loop.
type connState struct {
	hdr     [wire.HeaderLen]byte
	req     wire.Request
	enc     *wire.Encoder // for error, stat and list metadata; created on first use
	put     putSink
	discard discardSink
	auth    authCache
	entry   *jobEntry // the job of the request admitted last (jobtable.go), or nil
	// entryEpoch is entry's map epoch that request was checked against
	// (0: none; any was taken), for a put's check at commit (putRef).
	entryEpoch uint64
	awaits     *jobEntry      // the pending job whose owner c waits for, to be proven (owner.go)
	jobs       entryCache     // its lookup, for the next request's (jobtable.go)
	closed     bool           // set by OnClose; read by tasks posted to the same loop
	last       bool           // the request being served is the last complete one in the input
	pre        int            // its entry in pb, or -1
	pb         *prefetchBatch // the frames of the read being served that prefetch decoded, or nil
	start      int64          // monoNow when the read that completed the request's header returned (metrics.go)
	inData     bool           // OnData is running: replies it queues are timed at its end (metrics.go)
	pend       uint32         // op slots with latencies pending, a bit each (metrics.go)
	pendN      [opSlots]uint32
	tally      tally // counters of the OnData call running, added at its end (tally.go)
	// versionless is the version the connection's last put without one
	// got (stampVersion).
	versionless uint64
	stream      *getStream    // the get streaming its value on this connection, or nil (ops.go)
	lane        int           // requests of the connection on the scan lane (lane.go)
	gone        atomic.Bool   // set by OnClose, for the scan lane's goroutine
	eof         bool          // its input ended (OnEOF): no more requests go to the lane
	laneWait    []*laneWaiter // its requests on the lane not yet answered (lane.go)
}

func (cs *connState) encoder() *wire.Encoder {
	if cs.enc == nil {
		cs.enc = wire.NewEncoder()
	}
	return cs.enc
}

// OnOpen implements netio.Handler.
func (n *Node) OnOpen(c *netio.Conn) {
	cs := &connState{versionless: newVersionless(), pre: -1}
	cs.put.node, cs.discard.node = n, n
	c.SetContext(cs)
}

// OnClose implements netio.Handler: a put cut short by the close is aborted.
func (n *Node) OnClose(c *netio.Conn, _ error) {
	if cs, ok := c.Context().(*connState); ok {
		cs.closed = true
		cs.gone.Store(true)
		cs.put.abort()
		if g := cs.stream; g != nil {
			g.stop()
		}
	}
}

// OnEOF implements netio.EOFHandler: the client will send nothing more
// (it shut its writing side, or closed, which the node cannot tell
// apart), or the node is closing the connection (c.Closed()). Requests
// waiting on the scan lane are answered busy, unrun (dropLane); what is
// under way (device reads and writes, a streamed get, a scan the lane
// has begun, queued replies) is answered before the connection closes
// (netio's peerEOF). When the node is closing it, only what changes data
// is waited for (netio's retire): a streamed get stops and gives back
// its promise, and a lane request taken but not begun is not run.
func (n *Node) OnEOF(c *netio.Conn) {
	cs, ok := c.Context().(*connState)
	if !ok {
		return
	}
	cs.eof = true
	// A put cut short by the end of input cannot complete: its
	// reservation goes back now, not at the close.
	cs.put.abort()
	if c.Closed() {
		cs.gone.Store(true)
		if g := cs.stream; g != nil {
			g.stop()
			g.unpromise()
		}
	}
	n.dropLane(c, cs)
}

// OnData implements netio.Handler: it serves every complete frame in `in`
// and stops at the first incomplete one, or hands the rest of a put's
// payload to a sink that receives it straight into tier memory.
func (n *Node) OnData(c *netio.Conn, in []byte) (int, error) {
	cs := c.Context().(*connState)
	cs.start = monoNow()
	cs.inData = true
	done, err := n.onData(c, cs, in)
	if cs.pb != nil {
		cs.pb.forget()
	}
	cs.pre, cs.pb = -1, nil
	n.endTally(c, cs)
	n.mx.endData(c.Loop().Index(), cs)
	return done, err
}

func (n *Node) onData(c *netio.Conn, cs *connState, in []byte) (int, error) {
	if c.Reserved() {
		return n.onReserve(c, cs, in)
	}
	n.prefetch(c, in)
	pb := n.predecoded(c, in)
	cs.pb = pb
	done := 0
	for {
		if c.Backlogged() {
			// The client has not taken what it was sent: answer no more
			// of its requests until it has (netio presents the rest again).
			return done, nil
		}
		b := in[done:]
		k := pb.find(done)
		cs.pre = k
		var h wire.Header
		var err error
		if k >= 0 {
			h = pb.hdr[k] // prefetch parsed it
		} else {
			h, err = wire.ParseHeader(b, &n.reqLim)
		}
		if errors.Is(err, wire.ErrShortHeader) {
			return done, nil
		}
		if err != nil {
			// The stream cannot be trusted past a bad header: answer, then close.
			n.replyErr(c, cs, &wire.Header{Op: wire.Op(at(b, 3)), ID: rawID(b)}, err)
			return done, err
		}
		if h.Op.IsReply() {
			err := wire.Errorf(wire.CodeMalformed, "a reply opcode sent to a node")
			n.replyErr(c, cs, &h, err)
			return done, err
		}
		body := wire.HeaderLen + int(h.MetaLen)
		if len(b) < body {
			return done, nil
		}
		cs.tally.requests++
		cs.last = int64(len(b)) <= h.FrameLen()
		payload := b[body:]
		if int64(len(payload)) > int64(h.PayloadLen) {
			payload = payload[:h.PayloadLen]
		}
		if h.Op >= wire.ControlBase {
			// Its metadata is a control message, not a request: say
			// where it belongs without decoding it as one.
			if !n.skipPayload(c, cs, &h, payload, errControlOp(h.Op)) {
				return len(in), nil
			}
			done += body + int(h.PayloadLen)
			continue
		}
		if k >= 0 {
			cs.req = pb.req[k] // prefetch decoded it
		} else if err := wire.DecodeRequest(b[wire.HeaderLen:body], &n.lim, &cs.req); err != nil {
			if !n.skipPayload(c, cs, &h, payload, err) {
				return len(in), nil
			}
			done += body + int(h.PayloadLen)
			continue
		}
		if h.Op == wire.OpPut {
			if wholeFirst(&h) && int64(len(b)) < h.FrameLen() {
				return done, nil // the rest of a manifest comes with a later read
			}
			n.prefetchAhead(pb, k)
			if !n.put(c, cs, &h, payload) {
				return len(in), nil // a sink takes the rest of the payload
			}
			done += body + int(h.PayloadLen)
			continue
		}
		if h.PayloadLen != 0 {
			err := wire.Errorf(wire.CodeMalformed, "%v carries no payload", h.Op)
			n.replyErr(c, cs, &h, err)
			return done, err
		}
		if h.Op == wire.OpGet {
			n.prefetchAhead(pb, k)
		}
		n.serve(c, cs, &h)
		done += body
	}
}

// wholeFirst reports whether a put is checked on its whole payload before
// it is admitted, so it is served only once its frame has arrived whole: a
// manifest of the manifest's length (checkManifest). Where the stream's
// reads cut a frame is the sender's TCP segments' business, never a reason
// to refuse it.
func wholeFirst(h *wire.Header) bool {
	return h.Flags&wire.FlagManifest != 0 && h.PayloadLen == wire.ManifestLen
}

func at(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

// rawID reads a request id from a header that failed to parse, so even the
// error reply can be matched by the client.
func rawID(b []byte) uint64 {
	if len(b) < 16 {
		return 0
	}
	return binary.LittleEndian.Uint64(b[8:16])
}

// skipPayload answers err for a request whose payload must still be read
// off the stream. It returns false when a sink now owns the rest of `in`.
func (n *Node) skipPayload(c *netio.Conn, cs *connState, h *wire.Header, have []byte, err error) bool {
	if len(have) == int(h.PayloadLen) {
		n.replyErr(c, cs, h, err)
		return true
	}
	cs.discard.start(c, *h, int(h.PayloadLen)-len(have), err)
	c.SetSink(&cs.discard)
	return false
}

// serve runs a request without a payload.
func (n *Node) serve(c *netio.Conn, cs *connState, h *wire.Header) {
	tier, err := n.admit(c, cs, h)
	if err != nil {
		n.replyErr(c, cs, h, err)
		return
	}
	switch h.Op {
	case wire.OpPing:
		n.replyOK(c, cs, h, 0)
	case wire.OpGet:
		n.get(c, cs, h, tier)
	case wire.OpDelete, wire.OpStat, wire.OpList, wire.OpUsage:
		if onLane(h) {
			n.toLane(c, cs, h, tier)
			return
		}
		n.meta(c, cs, h, tier)
	case wire.OpDropJob:
		n.dropOrder(c, cs, h) // bgdrop.go
	case wire.OpVersions, wire.OpDropVersions:
		n.toLane(c, cs, h, nil) // sweep.go
	case wire.OpIncarnation:
		n.incarnationReply(c, cs, h)
	case wire.OpConfirm, wire.OpDropVersion:
		n.version(c, cs, h, tier)
	default:
		n.replyErr(c, cs, h, wire.Errorf(wire.CodeUnknownOp, "%v", h.Op))
	}
}

// admit checks the job, token, key and epoch of the decoded request and
// picks its tier. A request whose token or order proof passes vouches
// for its connection (netio.Conn.Prove): a connection that only pings,
// or fails every check, may give its slot to a new one at the node's
// connection limit (netio.Config.EvictUnproven).
func (n *Node) admit(c *netio.Conn, cs *connState, h *wire.Header) (Tier, error) {
	r := &cs.req
	switch h.Op {
	case wire.OpPing, wire.OpIncarnation:
		return nil, nil
	case wire.OpDropJob, wire.OpVersions, wire.OpDropVersions:
		err := n.checkOrder(h, r)
		if err == nil {
			c.Prove()
		}
		return nil, err
	}
	if len(r.Job) == 0 {
		return nil, errNoJob
	}
	if err := cs.auth.check(n.cfg.Guard, r.Job, r.Token); err != nil {
		return nil, err
	}
	n.proveFor(c, r.Job)
	class := classOf(h)
	if class == opRemove && wire.IsChunkKey(r.Key) {
		return nil, errReservedRemove
	}
	e, epoch, err := n.jobs.checkEntryVia(&cs.jobs, r.Job, r.Epoch, class, oneKey(h, r.Key))
	kept := err == errKept
	if err != nil && !kept {
		return nil, err
	}
	if e != nil && c.NeedsProof() && e.state.Load() == statePending && !e.awaitOwner(c, cs) {
		n.proveFor(c, r.Job) // the owner came meanwhile
	}
	cs.entry, cs.entryEpoch = e, epoch
	if len(r.Key) == 0 && h.Flags&wire.FlagPrefix == 0 && (h.Op == wire.OpPut || h.Op == wire.OpGet || h.Op == wire.OpStat || h.Op == wire.OpDelete) {
		return nil, errNoKey
	}
	t, err := n.tierFor(h.Flags)
	if err == nil && e != nil && (class == opStore || class == opStorePersist) {
		err = wrongTier(e, t)
		if err == nil && e.full.Load() {
			err = errOverQuota
		}
	}
	if err == nil && kept {
		err = keptChange(t, h, r, e)
	}
	return t, err
}

// errOverQuota refuses a put of a job whose client stores past its byte
// quota (jobEntry.full): before, the quota bounded only what a client's
// jobs were allotted, and a live job's puts went on into the free room
// of every node (a hostile trial: 4 GiB stored on a 64 MiB quota).
var errOverQuota = &wire.Error{Code: wire.CodeLimit,
	Msg: "the job's client stores past its byte quota (the controller's --max-bytes-per-client, over its live jobs' values and its ended jobs' persisted ones): " +
		"its puts are refused until it deletes values or ends jobs (the operator's pocket status shows what each client stores); gets, lists and deletes go on"}

// errOverNodeQuota refuses a put that would take what the jobs of the
// job's client (its owner) hold on this node, all tiers, with their puts
// under way, past the client's whole byte quota (jobEntry.maxBytes;
// quotahold.go): the controller marks a client over its quota a
// heartbeat or two after the nodes report its bytes, and meanwhile a
// hostile re-check's one job put 512 MiB on a 64 MiB quota, and each new
// job as much again; bounded per job, 8 jobs registered at once stored
// 512 MiB. A put over a key counts in full: the value it replaces goes
// only when it commits.
var errOverNodeQuota = &wire.Error{Code: wire.CodeLimit,
	Msg: "the jobs of the job's client would store more on this node than its whole byte quota (the controller's --max-bytes-per-client): " +
		"its puts here are refused until it deletes values; gets, lists and deletes go on"}

// wrongTier refuses a put of job e to tier t when the controller placed
// the job on another (jobEntry.tiers): a hostile trial's job placed and
// priced on NVMe filled a node's DRAM, which latency-sensitive jobs need,
// by putting with the DRAM tier's flag.
func wrongTier(e *jobEntry, t Tier) error {
	m := e.tiers.Load()
	if m == 0 || m&(1<<t.Kind()) != 0 {
		return nil
	}
	want := wire.TierDRAM
	if m&(1<<wire.TierNVMe) != 0 {
		want = wire.TierNVMe
	}
	return wire.Errorf(wire.CodeUnsupported, "the job was placed on the %s tier: its puts go there, not to %s (the tier flag of its placement map)", want, t.Kind())
}

// oneKey is the key of a request for one key (jobTable.checkEntryVia),
// nil for one of many: a listing, a usage, a prefix delete.
func oneKey(h *wire.Header, key []byte) []byte {
	if h.Op == wire.OpList || h.Op == wire.OpUsage || h.Flags&wire.FlagPrefix != 0 {
		return nil
	}
	return key
}

// classOf says what a request does to the job's values.
func classOf(h *wire.Header) opClass {
	switch h.Op {
	case wire.OpStat, wire.OpList, wire.OpUsage:
		return opRead
	case wire.OpGet:
		if h.Flags&wire.FlagDeleteAfterRead != 0 {
			return opRemove
		}
		return opRead
	case wire.OpDelete:
		return opRemove
	case wire.OpConfirm:
		return opConfirm
	case wire.OpDropVersion:
		return opDropVersion
	}
	if h.Flags&wire.FlagPersist != 0 {
		return opStorePersist
	}
	return opStore
}

// errControlOp answers a control-plane request (wire.ControlBase on) sent
// to a storage node: a client given a node's address for the
// controller's. Before, it read "request names no job" (a new user's
// `POCKET_CONTROLLER=NODE pocket status`).
func errControlOp(op wire.Op) error {
	return wire.Errorf(wire.CodeUnknownOp,
		"%v is a request for the controller, and this address is a storage node's (it serves data requests): give the controller's address (pocket up and pocket controller print it)", op)
}

var (
	errNoJob    = &wire.Error{Code: wire.CodeBadKey, Msg: "request names no job"}
	errNoKey    = &wire.Error{Code: wire.CodeBadKey, Msg: "request names no key"}
	errNoNVMe   = &wire.Error{Code: wire.CodeUnsupported, Msg: "this node has no NVMe tier"}
	errNoDRAM   = &wire.Error{Code: wire.CodeUnsupported, Msg: "this node has no DRAM tier"}
	errDraining = &wire.Error{Code: wire.CodeDraining, Msg: "node is draining; put elsewhere"}
)

func (n *Node) tierFor(flags uint16) (Tier, error) {
	if wire.TierOfFlags(flags) == wire.TierNVMe {
		if n.cfg.NVMe == nil {
			return nil, errNoNVMe
		}
		return n.cfg.NVMe, nil
	}
	if n.cfg.DRAM == nil {
		return nil, errNoDRAM
	}
	return n.cfg.DRAM, nil
}

// authCache remembers the last (job, token) pair that passed the guard on
// this connection, so a connection reusing one job's token pays for the
// HMAC once instead of per request.
type authCache struct {
	job, token []byte
}

func (a *authCache) check(g Guard, job, token []byte) error {
	if g == nil {
		return nil
	}
	if string(a.job) == string(job) && string(a.token) == string(token) && a.job != nil {
		return nil
	}
	if err := g.CheckJob(job, token); err != nil {
		return err
	}
	a.job = append(a.job[:0], job...)
	a.token = append(a.token[:0], token...)
	return nil
}
