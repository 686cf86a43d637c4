package dataplane

import "github.com/pocketstore/pocket/netio"

// tally holds the counters of the requests one OnData call serves, added
// to the node's per-loop counters (nodeStats) and the job's traffic
// (jobTraffic) once, as the call ends (Node.endTally), instead of one
// atomic add per counter per request. An atomic add is a locked
// instruction, which waits for every store before it to reach the cache:
// after a reply's value copy that is the copy's lines. Like the request
// metrics (metrics.go), the sums are added before the loop writes the
// replies out, so a client never sees a reply whose bytes are not yet
// counted.
type tally struct {
	requests uint64
	bytes    [2]uint64 // value bytes by direction (dirIn: puts, dirOut: gets), all jobs
	jt       *jobTraffic
	jtBytes  [2]uint64 // jt's share of bytes
}

// Directions of value bytes, as tally indexes them.
const (
	dirIn  = 0
	dirOut = 1
)

// countBytes counts b value bytes received (dirIn) or sent (dirOut) for
// jt: in cs's tally while OnData runs, else at once.
func (n *Node) countBytes(c *netio.Conn, cs *connState, jt *jobTraffic, dir int, b uint64) {
	if !cs.inData {
		n.addBytes(c, jt, dir, b)
		return
	}
	t := &cs.tally
	if t.jt != jt {
		n.flushJob(c, t)
		t.jt = jt
	}
	t.bytes[dir] += b
	t.jtBytes[dir] += b
}

// addBytes adds b value bytes to the counters of c's loop, and to jt's
// when jt is not nil.
func (n *Node) addBytes(c *netio.Conn, jt *jobTraffic, dir int, b uint64) {
	s := n.stats.of(c)
	if dir == dirIn {
		s.bytesIn.Add(b)
		jt.addIn(c.Loop().Index(), b)
	} else {
		s.bytesOut.Add(b)
		jt.addOut(c.Loop().Index(), b)
	}
}

// flushJob adds what t holds for its job to the job's counters.
func (n *Node) flushJob(c *netio.Conn, t *tally) {
	loop := c.Loop().Index()
	if t.jtBytes[dirIn] != 0 {
		t.jt.addIn(loop, t.jtBytes[dirIn])
	}
	if t.jtBytes[dirOut] != 0 {
		t.jt.addOut(loop, t.jtBytes[dirOut])
	}
	t.jt, t.jtBytes = nil, [2]uint64{}
}

// endTally adds cs's tally to the node's and the job's counters.
func (n *Node) endTally(c *netio.Conn, cs *connState) {
	t := &cs.tally
	s := n.stats.of(c)
	if t.requests != 0 {
		s.requests.Add(t.requests)
	}
	if t.bytes[dirIn] != 0 {
		s.bytesIn.Add(t.bytes[dirIn])
	}
	if t.bytes[dirOut] != 0 {
		s.bytesOut.Add(t.bytes[dirOut])
	}
	n.flushJob(c, t)
	t.requests, t.bytes = 0, [2]uint64{}
}
