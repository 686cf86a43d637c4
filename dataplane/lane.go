package dataplane

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// The scan lane runs the requests whose work grows with the number of a
// job's keys, never on an event loop: listings (a page may gather and sort
// every matching name, list.go) and prefix deletes (ops.go
// deletePrefix). A hostile trial (2026-12-01) sent first-page listings
// of 200,000 keys from one connection, one after another: each took the
// snapshot on the event loop, and another job's 1 KiB put and get on the
// same node went from 0.16 ms to 81 ms p50 (four connections: 585 ms).
//
// The lane's turns and its bound of lanePerJob count per owner (the
// job's owner key, owner.go), so one owner's jobs together get one turn
// and one share of the queue: counted per job, a tenant that registered
// two jobs got two of each (before 2026-12-06). Below, "a job" in the
// lane's rules is such an owner.
//
// A lane is one goroutine, and the node has two (lanes.go: a quick one,
// and a slow one for owners whose requests ran long), so listings take at
// most two cores whatever their number, and the loops keep serving puts
// and gets meanwhile. A lane takes the jobs in turn, one request of each job with requests waiting
// at a time, so a job that keeps the lane busy delays another job's
// listing by about one of its own scans (a second trial kept 64 scans of
// 55-75 ms queued from one job, and another job's listing of 10 keys took
// 4.7 s while the lane served them first come, first served). It holds
// laneQueue requests, lanePerJob of one job and lanePerConn of one
// connection; past any of these a request is answered CodeBusy at once,
// which the SDKs wait out (pausing 1 to 50 ms). A full lane still takes
// the request of a job with fewer waiting than another job has: the
// newest request of the job with the most waiting makes room, answered
// busy. So a queue kept full by many jobs (a third trial: 24 jobs of 16,
// each busy request sent again within 2 ms, which took the slots freed
// before an SDK's paused retry did; another job's listing of 10 keys
// waited 762 ms p50 and up to 17 s) cannot keep a job out. A request whose
// connection has closed is dropped unrun. A lane request's reply may come
// after those of requests the connection sent later, as the protocol
// allows (wire: "replies may come back in any order"); a client that
// needs a prefix delete done before its next put waits for its reply, as
// the SDKs do.
const (
	laneQueue   = 256
	lanePerJob  = 16
	lanePerConn = 4
)

// The lane's refusals, one per bound.
var (
	errLaneFull = &wire.Error{Code: wire.CodeBusy, Msg: fmt.Sprintf(
		"too many listings and prefix deletes waiting on this node (%d); retry", laneQueue)}
	errLaneJob = &wire.Error{Code: wire.CodeBusy, Msg: fmt.Sprintf(
		"too many listings and prefix deletes of this job's owner (its jobs together) waiting on this node (%d); retry", lanePerJob)}
	// errLaneEOF answers a request waiting on the lane when its
	// connection's input ends (dropLane): nothing was done.
	errLaneEOF  = &wire.Error{Code: wire.CodeBusy, Msg: "not run: the connection's input ended, or the node closed it, before the scan lane reached this request; send it again on another connection"}
	errLaneConn = &wire.Error{Code: wire.CodeBusy, Msg: fmt.Sprintf(
		"too many listings and prefix deletes waiting from this connection (%d); retry, or wait for their replies", lanePerConn)}
)

// onLane reports whether a request runs on the scan lane.
func onLane(h *wire.Header) bool {
	return h.Op == wire.OpList || h.Op == wire.OpDelete && h.Flags&wire.FlagPrefix != 0
}

// scanLane is the lane's queue: a queue per owner (owner key), and the
// owners with requests waiting in turn order.
type scanLane struct {
	mu     sync.Mutex
	owners map[string]*laneJob
	ring   []*laneJob // owners with requests waiting; the head runs next
	// cur is the owner whose request runs now; it goes to the back of the
	// turn when that request ends (next), behind the jobs that came
	// meanwhile. Put back when its request began, it went ahead of them:
	// another job's listing, sent while a job with 2 million keys kept the
	// lane busy, waited for the scan under way and then for one more
	// (181 ms p50 for 90 ms scans, TestH38aDRAMScanLane).
	cur    *laneJob
	n      int // requests waiting in all
	closed bool
	wake   chan struct{} // one buffered wake-up for the goroutine
}

// laneJob is the queue of one owner's jobs (owner: its owner key).
type laneJob struct {
	owner string
	work  []laneWork
}

// laneWork is a queued request: run(true) serves it, run(false) answers
// it busy (it made room for another job's).
type laneWork func(run bool)

// newScanLane is an empty lane, whose goroutine the caller starts
// (lanes.serve).
func newScanLane() *scanLane {
	return &scanLane{owners: map[string]*laneJob{}, wake: make(chan struct{}, 1)}
}

// submit queues f for the owner key owner without blocking; an error
// means a bound is reached or the lane has closed. A request that made
// room for f is answered busy (run(false)) before submit returns.
func (l *scanLane) submit(owner string, f laneWork) error {
	evicted, err := l.queue(owner, f)
	if evicted != nil {
		evicted(false)
	}
	return err
}

func (l *scanLane) queue(owner string, f laneWork) (evicted laneWork, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errLaneFull
	}
	q := l.owners[owner]
	waiting := 0
	if q != nil {
		waiting = len(q.work)
	}
	if waiting >= lanePerJob {
		return nil, errLaneJob
	}
	if l.n >= laneQueue {
		if evicted = l.makeRoom(waiting); evicted == nil {
			return nil, errLaneFull
		}
	}
	if q == nil {
		q = &laneJob{owner: owner}
		l.owners[owner] = q
		l.ring = append(l.ring, q)
	}
	q.work = append(q.work, f)
	l.n++
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return evicted, nil
}

// makeRoom takes the newest request of the job with the most waiting, if
// it has more than one past waiting (the requester's), and returns it; nil
// when no job has.
func (l *scanLane) makeRoom(waiting int) laneWork {
	big := l.cur
	for _, q := range l.ring {
		if big == nil || len(q.work) > len(big.work) {
			big = q
		}
	}
	if big == nil || len(big.work) <= waiting+1 {
		return nil
	}
	last := len(big.work) - 1
	f := big.work[last]
	big.work[last] = nil
	big.work = big.work[:last]
	l.n--
	return f
}

// next waits for the next request, the head job's, and marks that job
// as running (cur); the job of the request run before goes to the back of
// the turn if it has more. It returns the request's owner key too. False
// once the lane has closed.
func (l *scanLane) next() (laneWork, string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.cur; q != nil && !l.closed {
		l.cur = nil
		if len(q.work) > 0 {
			l.ring = append(l.ring, q)
		} else if l.owners[q.owner] == q {
			delete(l.owners, q.owner)
		}
	}
	for len(l.ring) == 0 {
		if l.closed {
			return nil, "", false
		}
		l.mu.Unlock()
		<-l.wake
		l.mu.Lock()
	}
	if l.closed {
		return nil, "", false
	}
	q := l.ring[0]
	f := q.work[0]
	q.work[0] = nil
	q.work = q.work[1:]
	l.n--
	l.ring = l.ring[1:]
	l.cur = q // back in the turn, or forgotten, when f has run
	return f, q.owner, true
}

// rekey moves the requests waiting under the owner key from to the
// queue of to, behind those waiting there (a job's owner learned:
// Node.ownerLearned), so the owner's jobs share one turn and one bound
// from then on.
func (l *scanLane) rekey(from, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.owners[from]
	if q == nil || from == to {
		return
	}
	delete(l.owners, from)
	o := l.owners[to]
	if o == nil {
		q.owner = to
		l.owners[to] = q
		return
	}
	// o is in the ring, or is cur and goes back to it when its request
	// ends (next): either way the moved requests get their turns.
	o.work = append(o.work, q.work...)
	clear(q.work)
	q.work = q.work[:0]
	if i := slices.Index(l.ring, q); i >= 0 {
		l.ring = slices.Delete(l.ring, i, i+1)
	}
}

// close drops what waits and ends the goroutine.
func (l *scanLane) close() {
	l.mu.Lock()
	l.closed = true
	l.owners, l.ring, l.cur, l.n = nil, nil, nil, 0
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// toLane queues the request h of c (decoded in cs.req) on the lane and
// answers it from c's loop when it has run, or answers errLaneFull now.
func (n *Node) toLane(c *netio.Conn, cs *connState, h *wire.Header, tier Tier) {
	switch {
	case cs.lane >= lanePerConn:
		n.replyErr(c, cs, h, errLaneConn)
		return
	case cs.eof: // input left stalled, served after its end (OnEOF)
		n.replyErr(c, cs, h, errLaneEOF)
		return
	}
	hc, start, r := *h, cs.start, laneRequest(&cs.req)
	cs.lane++
	c.Expect(laneReply) // taken back when answered, or by OnEOF
	w := &laneWaiter{h: hc, start: start}
	cs.laneWait = append(cs.laneWait, w)
	state := &w.state
	owner := ownerKey(n.ownerOf(r.Job), string(r.Job))
	err := n.lanes.submit(owner, func(run bool) {
		if !state.CompareAndSwap(laneWaiting, laneTaken) {
			return // dropped by OnEOF, answered there
		}
		var resp *wire.Response
		var err error
		switch {
		case !run:
			err = errLaneFull
		case cs.gone.Load(): // closed, or closing (OnEOF): not run
			err = errLaneEOF
		default:
			resp, err = n.scan(tier, &hc, &r)
		}
		c.Loop().Post(func() {
			cs.forgetLane(w)
			cs.lane--
			c.Expect(-laneReply)
			n.answerOffLoop(c, cs, &hc, start, resp, err)
		})
	})
	if err != nil {
		cs.forgetLane(w)
		cs.lane--
		c.Expect(-laneReply)
		n.replyErr(c, cs, h, err)
	}
}

// answerOffLoop answers, on c's loop, a request of start that ran off it
// (on the lane, or a drop order): resp, or err; nothing once c closed.
func (n *Node) answerOffLoop(c *netio.Conn, cs *connState, h *wire.Header, start int64, resp *wire.Response, err error) {
	if cs.closed {
		return
	}
	cs.withStart(start, func() {
		if err != nil {
			n.replyErr(c, cs, h, wire.ErrorOf(err))
			return
		}
		n.replyMeta(c, cs, h, resp)
	})
}

// laneWaiter is a request of the connection on the lane, not yet
// answered (connState.laneWait): its state, its header and when it came,
// for OnEOF to answer it.
type laneWaiter struct {
	state atomic.Int32
	h     wire.Header
	start int64
}

// States of a lane request (laneWaiter.state): waiting on the lane,
// taken by the lane (to run, or to answer busy), or dropped by OnEOF.
const (
	laneWaiting int32 = iota
	laneTaken
	laneDropped
)

// dropLane answers the connection's requests still waiting on the lane
// errLaneEOF and takes their promises back, at the end of its input
// (OnEOF): the connection closes without waiting for the lane to reach
// them (a busy lane held a closed client's connection open, a review of
// d757ab0), and a client that half-closed learns they did not run.
// Requests the lane has taken are answered when they end.
func (n *Node) dropLane(c *netio.Conn, cs *connState) {
	for _, w := range cs.laneWait {
		if w.state.CompareAndSwap(laneWaiting, laneDropped) {
			cs.lane--
			c.Expect(-laneReply)
			cs.withStart(w.start, func() { n.replyErr(c, cs, &w.h, errLaneEOF) })
		}
	}
	clear(cs.laneWait)
	cs.laneWait = cs.laneWait[:0]
}

// forgetLane takes a lane request off the connection's list.
func (cs *connState) forgetLane(lw *laneWaiter) {
	for i, w := range cs.laneWait {
		if w == lw {
			last := len(cs.laneWait) - 1
			cs.laneWait[i] = cs.laneWait[last]
			cs.laneWait[last] = nil
			cs.laneWait = cs.laneWait[:last]
			return
		}
	}
}

// laneReply is what a request waiting on the lane promises its connection
// (netio.Conn.Expect) until it is answered: the largest reply a page of a
// listing makes (its metadata within wire.DefaultMaxMeta). Uncounted, 4,000
// connections that listed long names and read nothing each held the
// 64 KiB floor and four such replies, 1.1 GB in all against a 64 MiB
// --max-unread (a hostile trial, 2026-12-02).
const laneReply = wire.HeaderLen + wire.DefaultMaxMeta

// laneRequest copies what a lane request reads of r: its slices point
// into the connection's input, which the next read reuses.
func laneRequest(r *wire.Request) wire.Request {
	return wire.Request{
		Job:       bytes.Clone(r.Job),
		Key:       bytes.Clone(r.Key),
		After:     bytes.Clone(r.After),
		Epoch:     r.Epoch,
		Limit:     r.Limit,
		Delimiter: r.Delimiter,
	}
}

// scan serves a lane request: a listing's page, a prefix delete or the
// controller's version order (tier nil: sweep.go).
func (n *Node) scan(tier Tier, h *wire.Header, r *wire.Request) (*wire.Response, error) {
	switch h.Op {
	case wire.OpList:
		return list(tier, r)
	case wire.OpVersions, wire.OpDropVersions:
		return n.versionOrder(h, r)
	}
	// A key under the prefix being moved would come back at its new
	// owner after this delete: wait the move out (CodeBusy; the SDKs
	// retry). The check registers the delete in the same step, and a
	// mover that marks a key under it afterwards reads that key only once
	// it has ended (versionTable.markWaiting): checked once, a key marked
	// after the check and deleted by the listing below was pushed to its
	// owner and stayed there past this reply, until the mover's undo
	// (TestPrefixDeleteRacingAMoveLeavesNothing).
	end, ok := n.vers.beginPrefixDelete(tier.Kind(), r.Job, r.Key)
	if !ok {
		return nil, errMoving
	}
	defer end()
	return n.deletePrefix(tier, r), nil
}

// take removes and returns the requests waiting under owner, for another
// lane (lanes.markSlow).
func (l *scanLane) take(owner string) []laneWork {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.owners[owner]
	if q == nil || len(q.work) == 0 {
		return nil
	}
	work := q.work
	q.work = nil
	l.n -= len(work)
	if q != l.cur {
		delete(l.owners, owner)
		if i := slices.Index(l.ring, q); i >= 0 {
			l.ring = slices.Delete(l.ring, i, i+1)
		}
	}
	return work
}
