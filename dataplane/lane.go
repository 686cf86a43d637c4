package dataplane

import (
	"bytes"

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
// The lane is one goroutine, so listings take at most one core whatever
// their number, and the loops keep serving puts and gets meanwhile. Its
// queue holds laneQueue requests, at most lanePerConn of them from one
// connection; past either, a request is answered CodeBusy at once, which
// the SDKs wait out (pausing 1 to 50 ms). A lane request's reply may come
// after those of requests the connection sent later, as the protocol
// allows (wire: "replies may come back in any order"); a client that
// needs a prefix delete done before its next put waits for its reply, as
// the SDKs do.
const (
	laneQueue   = 64
	lanePerConn = 4
)

var errLaneFull = &wire.Error{Code: wire.CodeBusy, Msg: "too many listings and prefix deletes waiting on this node; retry"}

// onLane reports whether a request runs on the scan lane.
func onLane(h *wire.Header) bool {
	return h.Op == wire.OpList || h.Op == wire.OpDelete && h.Flags&wire.FlagPrefix != 0
}

// startLane starts the lane's goroutine; stopWorkers ends it.
func (n *Node) startLane() {
	n.lane = make(chan func(), laneQueue)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for f := range n.lane {
			f()
		}
	}()
}

// toLane queues the request h of c (decoded in cs.req) on the lane and
// answers it from c's loop when it has run, or answers errLaneFull now.
func (n *Node) toLane(c *netio.Conn, cs *connState, h *wire.Header, tier Tier) {
	if cs.lane >= lanePerConn {
		n.replyErr(c, cs, h, errLaneFull)
		return
	}
	hc, start, r := *h, cs.start, laneRequest(&cs.req)
	cs.lane++
	queued := n.laneSubmit(func() {
		resp, err := n.scan(tier, &hc, &r)
		c.Loop().Post(func() {
			cs.lane--
			if cs.closed {
				return
			}
			cs.withStart(start, func() {
				if err != nil {
					n.replyErr(c, cs, &hc, wire.ErrorOf(err))
					return
				}
				n.replyMeta(c, cs, &hc, resp)
			})
		})
	})
	if !queued {
		cs.lane--
		n.replyErr(c, cs, h, errLaneFull)
	}
}

// laneSubmit queues f on the lane without blocking; false means the queue
// is full or the node has closed.
func (n *Node) laneSubmit(f func()) bool {
	n.workMu.RLock()
	defer n.workMu.RUnlock()
	if !n.workUp {
		return false
	}
	select {
	case n.lane <- f:
		return true
	default:
		return false
	}
}

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

// scan serves a lane request: a listing's page or a prefix delete.
func (n *Node) scan(tier Tier, h *wire.Header, r *wire.Request) (*wire.Response, error) {
	if h.Op == wire.OpList {
		return list(tier, r)
	}
	// A key under the prefix being moved would come back at its new
	// owner after this delete: wait the move out (CodeBusy; the SDKs
	// retry).
	if n.vers.anyMoving() && n.vers.prefixMoving(tier.Kind(), r.Job, r.Key) {
		return nil, errMoving
	}
	return n.deletePrefix(tier, r), nil
}
