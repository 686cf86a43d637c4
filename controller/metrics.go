package controller

import (
	"errors"
	"net/http"
	"sort"
	"sync"

	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
	"github.com/prometheus/client_golang/prometheus"
)

// The controller's Prometheus figures (names in telemetry/metrics):
// registered nodes by state, live jobs by tier, registrations accepted and
// refused (by reason), orphans held and dropped (orphans.go), each node's
// latest heartbeat figures, and the autoscaler's decisions. A collector reads them under the controller's
// lock at scrape time; nothing is counted twice.

// MetricsHandler serves the controller's Prometheus /metrics from a
// registry of its own (with the Go runtime's and the process's figures).
// `pocket controller --metrics ADDR` and `pocket up --metrics ADDR` mount it.
func (c *Controller) MetricsHandler() http.Handler {
	reg, err := metrics.NewRegistry(c.MetricsCollector())
	if err != nil { // only a bug registers one name twice
		panic(err)
	}
	return metrics.Handler(reg, c.cfg.Logger)
}

// MetricsCollector returns a prometheus.Collector of the controller's
// figures, to register in a registry of the caller's.
func (c *Controller) MetricsCollector() prometheus.Collector { return (*ctlCollector)(c) }

type ctlCollector Controller

var (
	descNodes      = prometheus.NewDesc(metrics.ControllerNodes, "Registered storage nodes by state.", []string{"state"}, nil)
	descJobs       = prometheus.NewDesc(metrics.ControllerJobs, "Registered (live) jobs by tier.", []string{"tier"}, nil)
	descRegs       = prometheus.NewDesc(metrics.ControllerJobRegistrations, "Job registrations accepted.", nil, nil)
	descRefused    = prometheus.NewDesc(metrics.ControllerRegistrationsRefused, "Job registrations refused, by reason: the limit's name (MaxJobs, MaxJobsPerClient, RegisterRate) or the error code's.", []string{"reason"}, nil)
	descOrphDrops  = prometheus.NewDesc(metrics.ControllerOrphansDropped, "Drop orders sent for a node's data of a job the controller does not know (after the orphan grace, or at once for a job it revoked).", nil, nil)
	descOrphBytes  = prometheus.NewDesc(metrics.ControllerOrphanBytesDropped, "Bytes of orphaned job data dropped by those orders, as the nodes reported them.", nil, nil)
	descOrphHeld   = prometheus.NewDesc(metrics.ControllerOrphansHeld, "(node, job) pairs whose data the nodes report holding for a job the controller does not know live.", nil, nil)
	descSwept      = prometheus.NewDesc(metrics.ControllerSweptVersions, "Object versions of ended jobs whose chunks no manifest named, dropped by the controller's sweep.", nil, nil)
	descSweptBytes = prometheus.NewDesc(metrics.ControllerSweptBytes, "Bytes of those versions' chunks, as the nodes reported them.", nil, nil)
	descCPU        = prometheus.NewDesc(metrics.NodeCPUUtilization, "Busy share of the node's cores at its last heartbeat.", []string{"node"}, nil)
	descNet        = prometheus.NewDesc(metrics.NodeNetUtilization, "Network use over the node's bandwidth: measured (max of rx, tx) or allocated to jobs.", []string{"node", "source"}, nil)
	descCap        = prometheus.NewDesc(metrics.NodeCapacityUtilization, "Larger of used and allocated bytes over the tier's capacity.", []string{"node", "tier"}, nil)
	descRx         = prometheus.NewDesc(metrics.NodeRxMbps, "Megabits per second the node received (its own payload traffic).", []string{"node"}, nil)
	descTx         = prometheus.NewDesc(metrics.NodeTxMbps, "Megabits per second the node sent (its own payload traffic).", []string{"node"}, nil)
	descDecided    = prometheus.NewDesc(metrics.AutoscalerDecisions, "Autoscaler decisions: add and remove nodes, grow-job and shrink-job (a job's map), or hold (a change was needed and held back).", []string{"decision"}, nil)
	descEvals      = prometheus.NewDesc(metrics.AutoscalerEvaluations, "Autoscaler policy evaluations.", nil, nil)
	descUtil       = prometheus.NewDesc(metrics.AutoscalerUtilization, "Cluster utilization per dimension at the last evaluation.", []string{"dim"}, nil)
	descStart      = prometheus.NewDesc(metrics.AutoscalerStarting, "Nodes being started.", nil, nil)
)

// Describe implements prometheus.Collector.
func (cc *ctlCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodes, descJobs, descRegs, descRefused, descOrphDrops, descOrphBytes, descSwept, descSweptBytes,
		descOrphHeld, descCPU, descNet, descCap, descRx, descTx, descDecided, descEvals, descUtil, descStart} {
		ch <- d
	}
}

// nodeMetric is one node's latest figures, copied out under the lock so
// the sending happens without it.
type nodeMetric struct {
	addr  string
	state wire.NodeState
	s     Sample
	ok    bool
}

// ctlFigures is what one scrape copies under the controller's lock.
type ctlFigures struct {
	nodes      []nodeMetric
	jobsByTier map[uint8]int
}

func (c *Controller) metricFigures() ctlFigures {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := ctlFigures{nodes: make([]nodeMetric, 0, len(c.nodes)), jobsByTier: map[uint8]int{}}
	for _, n := range c.nodes {
		m := nodeMetric{addr: n.addr, state: n.state}
		if h := n.hist.last(1); len(h) == 1 {
			m.s, m.ok = h[0], true
		}
		f.nodes = append(f.nodes, m)
	}
	for _, j := range c.jobs {
		f.jobsByTier[j.tier]++
	}
	sort.Slice(f.nodes, func(a, b int) bool { return f.nodes[a].addr < f.nodes[b].addr })
	return f
}

// Collect implements prometheus.Collector.
func (cc *ctlCollector) Collect(ch chan<- prometheus.Metric) {
	c := (*Controller)(cc)
	f := c.metricFigures()
	byState := map[wire.NodeState]int{}
	for _, n := range f.nodes {
		byState[n.state]++
	}
	for _, s := range []wire.NodeState{wire.NodeActive, wire.NodeDraining, wire.NodeDead} {
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(byState[s]), s.String())
	}
	for _, t := range []wire.Tier{wire.TierDRAM, wire.TierNVMe} {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(f.jobsByTier[uint8(t)]), t.String())
	}
	c.regs.collect(ch)
	collectOrphans(ch, c)
	for _, n := range f.nodes {
		// A dead node's last heartbeat is not its present: its series
		// end (Prometheus marks them stale) until it is heard again.
		// Before, a node killed under load showed its last 692 Mb/s on
		// every scrape (a new user's trial).
		if n.ok && n.state != wire.NodeDead {
			collectNode(ch, &n)
		}
	}
	if a := c.scaler(); a != nil {
		a.collect(ch)
	}
}

// collectOrphans sends the orphan counters and gauge (orphans.go).
func collectOrphans(ch chan<- prometheus.Metric, c *Controller) {
	ch <- prometheus.MustNewConstMetric(descOrphDrops, prometheus.CounterValue, float64(c.OrphansDropped()))
	ch <- prometheus.MustNewConstMetric(descOrphBytes, prometheus.CounterValue, float64(c.OrphanBytesDropped()))
	ch <- prometheus.MustNewConstMetric(descOrphHeld, prometheus.GaugeValue, float64(c.OrphansHeld()))
	ch <- prometheus.MustNewConstMetric(descSwept, prometheus.CounterValue, float64(c.SweptVersions()))
	ch <- prometheus.MustNewConstMetric(descSweptBytes, prometheus.CounterValue, float64(c.SweptBytes()))
}

func collectNode(ch chan<- prometheus.Metric, n *nodeMetric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descCPU, n.s.CPU, n.addr)
	gauge(descNet, n.s.NetMeasured, n.addr, "measured")
	gauge(descNet, n.s.NetAlloc, n.addr, "allocated")
	kinds := make([]int, 0, len(n.s.Capacity))
	for k := range n.s.Capacity {
		kinds = append(kinds, int(k))
	}
	sort.Ints(kinds)
	for _, k := range kinds {
		gauge(descCap, n.s.Capacity[uint8(k)], n.addr, kindName(uint8(k)))
	}
	gauge(descRx, n.s.RxMbps, n.addr)
	gauge(descTx, n.s.TxMbps, n.addr)
}

func (a *Autoscaler) collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	u, adds, removes, holds, evals, starting := a.util, a.counts[ActionAdd], a.counts[ActionRemove], a.holds, a.evals, a.starting
	grows, shrinks := a.counts[ActionGrowJob], a.counts[ActionShrinkJob]
	a.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descUtil, u.Net, "network")
	gauge(descUtil, u.CPU, "cpu")
	for _, k := range sortedKeys(u.Cap) {
		gauge(descUtil, u.Cap[k], "capacity "+k)
	}
	for _, d := range []struct {
		name string
		n    int
	}{{string(ActionAdd), adds}, {string(ActionRemove), removes}, {"hold", holds},
		{string(ActionGrowJob), grows}, {string(ActionShrinkJob), shrinks}} {
		ch <- prometheus.MustNewConstMetric(descDecided, prometheus.CounterValue, float64(d.n), d.name)
	}
	ch <- prometheus.MustNewConstMetric(descEvals, prometheus.CounterValue, float64(evals))
	gauge(descStart, float64(starting))
}

// regCounts counts job registrations, accepted and refused by reason
// (Controller.regs; the zero value is ready), under a mutex of its own
// that takes no other lock.
type regCounts struct {
	mu       sync.Mutex
	accepted uint64
	refused  map[string]uint64 // by refusalReason; made on the first refusal
}

// countRegistration counts the outcome of one job registration: accepted
// when err is nil, else refused for refusalReason(err). RegisterJobFrom
// is meant to call it once per call, with the error it returns.
func (c *Controller) countRegistration(err error) {
	r := &c.regs
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.accepted++
		return
	}
	if r.refused == nil {
		r.refused = map[string]uint64{}
	}
	r.refused[refusalReason(err)]++
}

// refusalReason names why a registration was refused: for a limit, the
// limit's name from its message ("MaxJobs"); otherwise the error code's
// label ("unavailable", "bad_key"), or "internal" for an error without one.
func refusalReason(err error) string {
	var we *wire.Error
	if !errors.As(err, &we) {
		return "internal"
	}
	if we.Code == wire.CodeLimit {
		if name := limitName(we.Msg); name != "" {
			return name
		}
	}
	return metrics.CodeLabel(we.Code)
}

// refusalLimits are the limits a registration is refused for
// (limits.go), whose refusal series are exported from the start, at 0
// until one is counted: a series that appears only at the first refusal
// has no rate and no increase() before it, and a new user's trial found
// pocket_controller_job_registrations_refused_total, listed in README's
// Names table, missing from /metrics. Refusals for an error code are
// exported once counted: there are too many codes to list each at 0.
var refusalLimits = []string{"MaxJobs", "MaxJobsPerClient", "RegisterRate"}

func (r *regCounts) collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descRegs, prometheus.CounterValue, float64(r.accepted))
	for _, reason := range refusalLimits {
		if _, ok := r.refused[reason]; !ok {
			ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, 0, reason)
		}
	}
	for reason, n := range r.refused {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(n), reason)
	}
}
