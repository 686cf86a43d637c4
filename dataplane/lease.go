package dataplane

import (
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// The node's lease.
//
// The controller takes a node silent for its DeadAfter plus its dead-node
// grace for lost (controller/dead.go): every job that had the node writes
// elsewhere from then on, and when the node speaks again it is told to
// drop what it holds of them. A node silent because it was frozen
// (SIGSTOP, a stalled VM) or cut off from its controller but not from
// its clients does not know that. Before the lease it went on answering
// the requests queued in its sockets and those of clients with older
// maps, and acknowledged puts that it dropped a heartbeat later (a
// hostile trial: 3 puts of 3, with a 5 s grace and a 10.5 s pause).
//
// So every ack carries the node's lease (wire.NodeAck.Lease: the least
// silence after which the controller may take the node for lost), and
// the node serves its jobs only until leaseShare of it has passed since
// it sent the heartbeat the ack answers. Past that, every request of a
// job is refused with wire.CodeStaleEpoch naming epoch 0 (errLapsed: an
// epoch older than any client's map, which the SDKs take as a node
// behind its controller: they fetch the map again, pause and send the
// request again) and the agent is woken to heartbeat at once; a put whose
// payload arrived across the lapse stores nothing (Node.publish). The
// next ack renews the lease, or tells the node it was lost: its jobs'
// entries then refuse the old epochs, and clients go by the new map.
// The share kept back covers the time between a request's check and its
// reply, and the controller's sweep.
//
// The price: a node whose controller is away for longer than leaseShare
// of the lease (about 25 s with the defaults) refuses its jobs' requests
// until the controller is back; its values stay. A node without a
// controller never has a lease. Not covered: a node frozen between a
// request's check and its reply (the microseconds of a DRAM put) for
// longer than the quarter of the lease kept back.

// leaseShare is the share of the lease a node serves for; see above.
const leaseShare = 0.75

// errLapsed refuses a job's request on a node whose lease has lapsed.
var errLapsed = &wire.Error{Code: wire.CodeStaleEpoch,
	Msg: "this node has not heard from its controller within its lease, so the job's map may have moved on without it; it is asking now: fetch the job's map and send the request again shortly"}

// nodeLease is the node's lease: its end in monotonic nanoseconds since
// base, 0 while there is none.
type nodeLease struct {
	base time.Time
	end  atomic.Int64
}

// renew sets the lease to leaseShare of lease after sent (lease 0: none).
func (l *nodeLease) renew(sent time.Time, lease time.Duration) {
	if lease <= 0 {
		l.end.Store(0)
		return
	}
	end := sent.Sub(l.base) + time.Duration(float64(lease)*leaseShare)
	l.end.Store(max(int64(end), 1))
}

// lapsed reports whether the node has a lease and it has ended.
func (l *nodeLease) lapsed() bool {
	end := l.end.Load()
	return end != 0 && int64(time.Since(l.base)) >= end
}

// RenewLease takes an ack's lease (wire.NodeAck.Lease), counted from
// sent, when the node sent the heartbeat or registration the ack answers
// (metaclient.NodeLoop.Renew): the node serves its jobs until leaseShare
// of it has passed, then refuses them (lease.go) until the next renewal.
// A lease of 0 ends the lease: the node serves on.
func (n *Node) RenewLease(sent time.Time, lease time.Duration) { n.jobs.lease.renew(sent, lease) }

// LeaseLapsed reports whether the node's lease has lapsed: it refuses its
// jobs' requests until the next renewal.
func (n *Node) LeaseLapsed() bool { return n.jobs.lease.lapsed() }
