package controller

import "time"

// HistoryLen is how many heartbeats of each node the controller keeps: a
// minute at the default interval, enough for the autoscaler's smoothing
// and for `pocket status` and /metrics to show a trend, small enough
// (a few KiB per node) to keep for thousands of nodes.
const HistoryLen = 60

// Sample is one heartbeat of a node reduced to utilizations, each a
// fraction of what the node has (1 = full). Measured figures come from the
// node's own report; allocated ones from the jobs' hint-based allotments
// on the node at that moment.
type Sample struct {
	At          time.Time
	CPU         float64 // busy share of the node's cores (as the node reports it)
	NetMeasured float64 // max(rx, tx) over the node's bandwidth
	NetAlloc    float64 // jobs' allotted Mb/s over the node's bandwidth
	// Capacity per tier kind (wire.Tier number): the larger of bytes
	// used and bytes allotted, over the tier's capacity.
	Capacity map[uint8]float64
	RxMbps   float64
	TxMbps   float64
}

// history is a fixed ring of a node's latest samples.
type history struct {
	buf  [HistoryLen]Sample
	next int
	n    int
}

func (h *history) add(s Sample) {
	h.buf[h.next] = s
	h.next = (h.next + 1) % HistoryLen
	h.n = min(h.n+1, HistoryLen)
}

// last returns up to k latest samples, oldest first.
func (h *history) last(k int) []Sample {
	k = min(k, h.n)
	out := make([]Sample, k)
	for i := 0; i < k; i++ {
		out[i] = h.buf[(h.next-k+i+HistoryLen)%HistoryLen]
	}
	return out
}

// nodeMbps is the bandwidth the node can serve: its fastest tier's
// reported Mb/s (the network bounds every tier of one node), else the
// policy's default node bandwidth.
func (c *Controller) nodeMbps(n *node) float64 {
	var m float64
	for _, t := range n.tiers {
		m = max(m, t.Mbps)
	}
	if m <= 0 {
		m = c.cfg.Policy.NodeMbps
	}
	return m
}

// sampleLocked computes a node's utilization sample now.
func (c *Controller) sampleLocked(n *node, now time.Time) Sample {
	bw := c.nodeMbps(n)
	var allocMbps float64
	if l := c.loads[n.addr]; l != nil {
		allocMbps = l.mbps
	}
	s := Sample{At: now, CPU: n.cpu / 100, NetMeasured: max(n.rx, n.tx) / bw, NetAlloc: allocMbps / bw,
		Capacity: map[uint8]float64{}, RxMbps: n.rx, TxMbps: n.tx}
	for i := range n.tiers {
		if t := &n.tiers[i]; t.CapacityBytes > 0 {
			s.Capacity[t.Kind] = float64(c.heldBytesLocked(n, t)) / float64(t.CapacityBytes)
		}
	}
	return s
}

// nodeKind names one tier of one node.
type nodeKind struct {
	addr string
	kind uint8
}

// recordLocked appends a sample to a node's history after a heartbeat.
func (c *Controller) recordLocked(n *node, now time.Time) {
	n.hist.add(c.sampleLocked(n, now))
}

// History returns up to HistoryLen latest samples of a node, oldest first;
// nil for an unknown node.
func (c *Controller) History(addr string) []Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[addr]
	if !ok {
		return nil
	}
	return n.hist.last(HistoryLen)
}
