package dataplane

import (
	"math/bits"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// Request metrics
//
// Every request ends in exactly one reply (replyOK, replyMeta, replyErr or
// sendValue, ops.go), and each of them calls done: it counts the request
// by op and result (CodeOK or the reply's wire code) and records its
// latency, from the read that completed the request's header (cs.start) to
// its reply having been queued on the connection. A successful reply
// queued while OnData handles a read is counted and timed when OnData
// returns (endData), with one clock read for all the replies of the read:
// they all record the read's handling time. An error reply, and a reply
// queued outside OnData, is counted and timed as it is queued: a
// put whose payload a sink received in later reads, and a request served
// on a worker, which carries its own start back to the loop (withStart). A
// request whose connection closed before its answer was sent is not
// counted: nothing answered it.
//
// The hot path looks up no label and allocates nothing: counters are
// arrays of atomics indexed by opcode and code, one set per event loop
// (written only by that loop's goroutine, so no cache line is shared
// between loops), and latency goes to a metrics.Histogram per loop and op,
// made on the op's first request on the loop. The Prometheus collector
// (MetricsCollector) adds the loops up at scrape time.

const (
	// opSlots counts data-plane opcodes 1 to opSlots-1 each; an opcode
	// that is unknown or beyond them counts in slot 0, labelled "other".
	opSlots = 16
	// codeSlots counts wire codes 0 to codeSlots-2 each; codes beyond
	// share the last slot, labelled "other".
	codeSlots = 32
)

// connState.pend has a bit per op slot.
var _ [32 - opSlots]struct{}

// loopMetrics are one event loop's request figures.
type loopMetrics struct {
	reqs [opSlots][codeSlots]atomic.Uint64
	lat  [opSlots]atomic.Pointer[metrics.Histogram]
	_    [64]byte // keeps the next loop's counters off this one's lines
}

// nodeMetrics holds a loopMetrics per event loop.
type nodeMetrics struct {
	loops []loopMetrics
}

// init sizes the figures for the node's loops (netio's default: one per
// CPU). Loops beyond share slots, still correctly: every figure is atomic.
func (m *nodeMetrics) init(loops int) {
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	m.loops = make([]loopMetrics, loops)
}

// opSlot is op's counter slot.
func opSlot(op wire.Op) int {
	if int(op) < opSlots && opLabels[op] != "other" {
		return int(op)
	}
	return 0
}

// monoBase is the origin of monoNow.
var monoBase = time.Now()

// monoNow is the monotonic clock in nanoseconds since monoBase: one clock
// read, half the cost of time.Now, which also reads the wall clock.
func monoNow() int64 { return int64(time.Since(monoBase)) }

// done counts one answered request of c, begun at cs.start (monoNow), and
// its result. A successful reply OnData queues is counted and timed when
// OnData returns (endData), by one clock read for all the requests of the
// read: the loop writes their replies out together no earlier than that
// (at the end of its pass), so none of them has left before. An error
// reply, or a reply queued outside OnData, is counted and timed now.
func (m *nodeMetrics) done(c *netio.Conn, cs *connState, op wire.Op, code wire.Code) {
	m.doneOn(c.Loop().Index(), cs, op, code)
}

// doneOn is done on event loop number loop.
func (m *nodeMetrics) doneOn(loop int, cs *connState, op wire.Op, code wire.Code) {
	if !cs.inData || code != wire.CodeOK {
		m.record(loop, time.Duration(monoNow()-cs.start), op, code)
		return
	}
	// Counted with its latency, so a scrape during a long read never
	// sees a request answered and not yet timed.
	o := opSlot(op)
	cs.pend |= 1 << o
	cs.pendN[o]++
}

// endData ends an OnData call on event loop number loop: the replies it
// queued are timed now, from the call's read (cs.start).
func (m *nodeMetrics) endData(loop int, cs *connState) {
	cs.inData = false
	if cs.pend == 0 {
		return
	}
	d := time.Duration(monoNow() - cs.start)
	l := m.loop(loop)
	for p := cs.pend; p != 0; p &= p - 1 {
		o := bits.TrailingZeros32(p)
		n := uint64(cs.pendN[o])
		l.reqs[o][wire.CodeOK].Add(n)
		l.latency(o).RecordN(d, n)
		cs.pendN[o] = 0
	}
	cs.pend = 0
}

// record is done on event loop number loop, for a request that took d.
func (m *nodeMetrics) record(loop int, d time.Duration, op wire.Op, code wire.Code) {
	o := m.count(loop, op, code)
	m.loop(loop).latency(o).Record(d)
}

// count counts a request of op answered with code on event loop number
// loop and returns op's slot.
func (m *nodeMetrics) count(loop int, op wire.Op, code wire.Code) int {
	o := opSlot(op)
	m.loop(loop).reqs[o][min(int(code), codeSlots-1)].Add(1)
	return o
}

// loop is the figures of event loop number i.
func (m *nodeMetrics) loop(i int) *loopMetrics { return &m.loops[i%len(m.loops)] }

// latency is the loop's histogram of op slot o, made on first use.
func (l *loopMetrics) latency(o int) *metrics.Histogram {
	if h := l.lat[o].Load(); h != nil {
		return h
	}
	return l.histogram(o)
}

// histogram makes the loop's histogram of op slot o.
func (l *loopMetrics) histogram(o int) *metrics.Histogram {
	h := new(metrics.Histogram)
	if l.lat[o].CompareAndSwap(nil, h) {
		return h
	}
	return l.lat[o].Load()
}

// withStart runs reply, an answer sent from a posted task on the
// connection's loop for a request served on a worker (or a streamed get),
// with the request's own start and timed at once, not with a read; then it
// restores cs.start and cs.inData.
func (cs *connState) withStart(start int64, reply func()) {
	prev, in := cs.start, cs.inData
	cs.start, cs.inData = start, false // timed now, not with the read
	reply()
	cs.start, cs.inData = prev, in
}

// Labels of the slots, derived from wire's names.
var opLabels, codeLabels = slotLabels()

func slotLabels() (ops [opSlots]string, codes [codeSlots]string) {
	for i := range ops {
		ops[i] = wire.Op(i).String()
		if i == 0 || strings.HasPrefix(ops[i], "op(") {
			ops[i] = "other"
		}
	}
	for i := range codes {
		codes[i] = metrics.CodeLabel(wire.Code(i))
	}
	codes[codeSlots-1] = "other"
	return ops, codes
}

// MetricsCollector returns a prometheus.Collector of the node's figures:
// requests by op and result, request latency by op, value bytes received
// and sent, connections, and each tier's used and capacity bytes (names in
// telemetry/metrics). Register it in the node's own registry.
func (n *Node) MetricsCollector() prometheus.Collector { return (*nodeCollector)(n) }

type nodeCollector Node

var (
	descRequests    = prometheus.NewDesc(metrics.NodeRequests, "Requests answered, by op and result (ok or the wire error code).", []string{"op", "result"}, nil)
	descLatency     = prometheus.NewDesc(metrics.NodeRequestDuration, "Time from the read that completed a request's header to its reply being queued, by op; the successful requests answered within one read share one figure.", []string{"op"}, nil)
	descBytesIn     = prometheus.NewDesc(metrics.NodeReceivedBytes, "Value bytes received by puts.", nil, nil)
	descBytesOut    = prometheus.NewDesc(metrics.NodeSentBytes, "Value bytes sent by gets.", nil, nil)
	descConns       = prometheus.NewDesc(metrics.NodeConnections, "Open client connections.", nil, nil)
	descAccepted    = prometheus.NewDesc(metrics.NodeConnectionsAccepted, "Client connections accepted.", nil, nil)
	descRefused     = prometheus.NewDesc(metrics.NodeConnectionsRefused, "Client connections closed at once over a limit, by limit.", []string{"limit"}, nil)
	descEvicted     = prometheus.NewDesc(metrics.NodeConnectionsEvicted, "Client connections reset at the connection limit to give their slot to a new one: none had shown a valid token or order proof, or only past its job's owner's share of the slots, or its owner held more than its fair share of them (then counted too in the fair-share series).", nil, nil)
	descOverJob     = prometheus.NewDesc(metrics.NodeConnectionsOverJobShare, "Client connections with a valid token left evictable because their job's owner (its tenant, else its registering client's address) had half the connection slots already.", nil, nil)
	descFairShare   = prometheus.NewDesc(metrics.NodeConnectionsFairShareEvicted, "Client connections with a valid token reset for a promoted one because their job's owner held more than its fair share of the slots: the max-min share among the owners holding some and one more.", nil, nil)
	descPromoted    = prometheus.NewDesc(metrics.NodeConnectionsPromoted, "Connections over the limit, on the reserve, that showed a valid token for an owner below its fair share of the slots and took the slot of an owner over it.", nil, nil)
	descUnread      = prometheus.NewDesc(metrics.NodeUnreadReplyBytes, "Reply bytes queued on client connections, not yet taken by their clients, or promised by device reads in flight and listings waiting.", nil, nil)
	descUnreadLimit = prometheus.NewDesc(metrics.NodeUnreadReplyLimit, "The node's bound on unread reply bytes (--max-unread; 0: none).", nil, nil)
	descPaused      = prometheus.NewDesc(metrics.NodeConnectionsPaused, "Times a client connection stopped being read while its replies went unread, by limit.", []string{"limit"}, nil)
	descUsed        = prometheus.NewDesc(metrics.NodeTierUsed, "Bytes in use in each storage tier.", []string{"tier"}, nil)
	descCapacity    = prometheus.NewDesc(metrics.NodeTierCapacity, "Capacity of each storage tier.", []string{"tier"}, nil)
	descValues      = prometheus.NewDesc(metrics.NodeTierValues, "Values stored in each storage tier.", []string{"tier"}, nil)
	descCompacted   = prometheus.NewDesc(metrics.NodeDRAMCompactedValues, "Values the DRAM tier's compaction moved out of sparse slab pages.", nil, nil)
	descCompactedPg = prometheus.NewDesc(metrics.NodeDRAMCompactedPages, "Slab pages the DRAM tier's compaction gave back to its pool.", nil, nil)
	descDevErrors   = prometheus.NewDesc(metrics.NodeTierDeviceErrors, "Transfers the tier's device failed (I/O errors, a read-only or shrunk device), by tier and op (read, write).", []string{"tier", "op"}, nil)
)

// Describe implements prometheus.Collector.
func (nc *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descLatency, descBytesIn, descBytesOut, descConns,
		descAccepted, descRefused, descEvicted, descOverJob, descFairShare, descPromoted, descUnread, descUnreadLimit, descPaused, descUsed, descCapacity, descValues,
		descCompacted, descCompactedPg, descDevErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (nc *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := (*Node)(nc)
	n.mx.collectRequests(ch)
	n.mx.collectLatency(ch)
	st := n.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter(descBytesIn, st.BytesIn)
	counter(descBytesOut, st.BytesOut)
	gauge(descConns, st.Net.Open)
	counter(descAccepted, st.Net.Accepted)
	counter(descRefused, st.Net.Refused, "MaxConns")
	counter(descRefused, st.Net.RefusedPerPeer, "MaxConnsPerPeer")
	counter(descEvicted, st.Net.UnprovenEvictions)
	counter(descOverJob, st.Net.OverOwner)
	counter(descFairShare, st.Net.FairShareEvictions)
	counter(descPromoted, st.Net.Promoted)
	gauge(descUnread, st.Net.Queued)
	gauge(descUnreadLimit, st.Net.QueuedLimit)
	counter(descPaused, st.Net.Paused, "MaxOutbound")
	counter(descPaused, st.Net.PausedTotal, "MaxOutboundTotal")
	for _, t := range n.Tiers() {
		u, kind := t.Usage(), t.Kind().String()
		gauge(descUsed, u.Used, kind)
		gauge(descCapacity, u.Capacity, kind)
		gauge(descValues, u.Values, kind)
		if c, ok := t.(interface{ Compacted() (int64, int64) }); ok {
			moved, pages := c.Compacted()
			counter(descCompacted, uint64(moved))
			counter(descCompactedPg, uint64(pages))
		}
		if de, ok := t.(interface{ DeviceErrors() DeviceErrors }); ok {
			e := de.DeviceErrors()
			counter(descDevErrors, e.Reads, kind, "read")
			counter(descDevErrors, e.Writes, kind, "write")
		}
	}
}

// collectRequests sends the request counters summed over the loops: every
// known op's "ok" series (so rates start at zero), and every other series
// that counted anything.
func (m *nodeMetrics) collectRequests(ch chan<- prometheus.Metric) {
	var sum [opSlots][codeSlots]uint64
	for i := range m.loops {
		for o := range sum {
			for r := range sum[o] {
				sum[o][r] += m.loops[i].reqs[o][r].Load()
			}
		}
	}
	for o := range sum {
		for r, v := range sum[o] {
			if v > 0 || (r == int(wire.CodeOK) && o > 0 && opLabels[o] != "other") {
				ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(v), opLabels[o], codeLabels[r])
			}
		}
	}
}

// collectLatency sends each known op's latency histogram, summed over the
// loops (empty for an op not served yet), and "other"'s if it has any.
func (m *nodeMetrics) collectLatency(ch chan<- prometheus.Metric) {
	var one metrics.HistogramSnapshot
	for o := range opSlots {
		var sum metrics.HistogramSnapshot
		seen := false
		for i := range m.loops {
			if h := m.loops[i].lat[o].Load(); h != nil {
				h.Snapshot(&one)
				sum.Add(&one)
				seen = true
			}
		}
		if !seen && (o == 0 || opLabels[o] == "other") {
			continue
		}
		hm, err := metrics.ConstHistogram(descLatency, &sum, opLabels[o])
		metrics.Collect(ch, descLatency, hm, err)
	}
}
