package dataplane

import (
	"bytes"
	"errors"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// The reserve. A node whose connection slots are all taken
// (netio.Config.MaxConns, by default 10,000, filled by thousands of
// lambdas reconnecting to a node that restarted) would refuse its
// controller's connections at accept like any other: the controller could
// not confirm the node's restart (wire.OpIncarnation, which it asks before
// it believes one), so the node would never register again, and its drop
// orders (wire.OpDropJob) would not reach it. So the node keeps a few
// slots beyond its limits (netio.Config.ReserveConns, DefaultReserveConns
// unless set), and serves on a connection opened there exactly one
// request, then closes it:
//
//   - wire.OpIncarnation, wire.OpDropJob (the controller's order proof is
//     checked as everywhere, orders.go) and wire.OpPing are served;
//   - a data request with a valid token of a job the controller has
//     listed (its owner known) promotes the connection when its owner
//     holds fewer than its fair share of the slots and another owner
//     holds more (netio.Conn.Promote: that owner's newest connection
//     gives its slot): it is then an ordinary connection and the request
//     is served, with those after it;
//   - any other request (every other data request) is refused with
//     wire.CodeLimit naming the limit, and its payload is not read.
//
// A flood of ordinary clients cannot keep the controller out: a client
// refused there holds its slot for one round trip, one that sends nothing
// holds it for netio.Config.ReserveTimeout (1 s) at most, and one peer
// address holds at most a quarter of the slots (netio's reserve.go), so
// the controller, asking from its own address, finds a slot. Clients gain
// nothing: a data request on the reserve is refused as it was refused at
// accept before, now with a reply saying why.

// DefaultReserveConns is the node's default netio.Config.ReserveConns:
// 16 slots, 4 per peer address, each open at most a second.
const DefaultReserveConns = 16

// errReserveOnly refuses a data request on a reserve connection.
var errReserveOnly = wire.Errorf(wire.CodeLimit, "node at its connection limit (MaxConns or MaxConnsPerPeer): "+
	"a connection over it is served only the controller's questions; retry later")

// errReserveAnswered closes a reserve connection once its one request is
// answered.
var errReserveAnswered = errors.New("dataplane: reserve connection answered")

// servedOnReserve reports whether op is served on a reserve connection.
func servedOnReserve(op wire.Op) bool {
	return op == wire.OpIncarnation || op == wire.OpDropJob || op == wire.OpPing
}

// onReserve is OnData for a reserve connection (netio.Conn.Reserved): it
// serves the first complete request if servedOnReserve, else refuses it,
// and closes the connection either way.
func (n *Node) onReserve(c *netio.Conn, cs *connState, in []byte) (int, error) {
	h, err := wire.ParseHeader(in, &n.reqLim)
	if errors.Is(err, wire.ErrShortHeader) {
		return 0, nil
	}
	if err != nil {
		n.replyErr(c, cs, &wire.Header{Op: wire.Op(at(in, 3)), ID: rawID(in)}, err)
		return 0, err
	}
	body := wire.HeaderLen + int(h.MetaLen)
	if !servedOnReserve(h.Op) || h.PayloadLen != 0 {
		if len(in) < body {
			return 0, nil // its token, to promote it
		}
		if n.promote(c, cs, in[wire.HeaderLen:body]) {
			return n.onData(c, cs, in)
		}
		n.replyErr(c, cs, &h, errReserveOnly)
		return len(in), errReserveOnly
	}
	if len(in) < body {
		return 0, nil
	}
	n.stats.of(c).requests.Add(1)
	cs.last = true
	if err := wire.DecodeRequest(in[wire.HeaderLen:body], &n.lim, &cs.req); err != nil {
		n.replyErr(c, cs, &h, err)
		return body, err
	}
	n.serve(c, cs, &h)
	return body, errReserveAnswered
}

// promote moves reserve connection c into an ordinary slot for the owner
// of the job whose valid token its request (meta) shows, when that owner
// is below its fair share and another is over it (netio.Conn.Promote).
// A job the controller has not listed yet (pending) promotes nothing: its
// owner is not known (proveFor).
func (n *Node) promote(c *netio.Conn, cs *connState, meta []byte) bool {
	if n.cfg.Guard == nil {
		return false
	}
	var r wire.Request
	if wire.DecodeRequest(meta, &n.lim, &r) != nil || len(r.Job) == 0 || cs.auth.check(n.cfg.Guard, r.Job, r.Token) != nil {
		return false
	}
	e := n.jobs.lookup(r.Job)
	if e == nil || e.state.Load() == statePending {
		return false
	}
	key := append(bytes.Clone(jobPrefix), r.Job...)
	if p := e.owner.Load(); p != nil {
		key = *p
	}
	return c.Promote(key)
}
