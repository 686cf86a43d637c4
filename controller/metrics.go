package controller

import (
	"net/http"
	"sort"

	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
)

// MetricsHandler serves the controller's Prometheus /metrics: node counts
// by state, jobs, each node's latest utilization sample, and the
// autoscaler's decisions. `pocket up --metrics ADDR` mounts it.
func (c *Controller) MetricsHandler() http.Handler {
	return metrics.Handler(metrics.CollectorFunc(c.WriteMetrics))
}

// nodeMetric is one node's latest figures, copied out under the lock so
// the writing happens without it.
type nodeMetric struct {
	addr  string
	state wire.NodeState
	s     Sample
	ok    bool
}

// WriteMetrics implements metrics.Collector.
func (c *Controller) WriteMetrics(w *metrics.MetricWriter) {
	c.mu.Lock()
	nodes := make([]nodeMetric, 0, len(c.nodes))
	for _, n := range c.nodes {
		m := nodeMetric{addr: n.addr, state: n.state}
		if h := n.hist.last(1); len(h) == 1 {
			m.s, m.ok = h[0], true
		}
		nodes = append(nodes, m)
	}
	jobs := len(c.jobs)
	c.mu.Unlock()
	sort.Slice(nodes, func(a, b int) bool { return nodes[a].addr < nodes[b].addr })

	byState := map[wire.NodeState]int{}
	for _, n := range nodes {
		byState[n.state]++
	}
	w.Header("pocket_controller_nodes", "Registered storage nodes by state.", metrics.Gauge)
	for _, s := range []wire.NodeState{wire.NodeActive, wire.NodeDraining, wire.NodeDead} {
		w.Value("pocket_controller_nodes", float64(byState[s]), "state", s.String())
	}
	w.Header("pocket_controller_jobs", "Registered jobs.", metrics.Gauge)
	w.Value("pocket_controller_jobs", float64(jobs))

	w.Header("pocket_node_cpu_utilization", "Busy share of the node's cores at its last heartbeat.", metrics.Gauge)
	eachSample(nodes, func(n nodeMetric) { w.Value("pocket_node_cpu_utilization", n.s.CPU, "node", n.addr) })
	w.Header("pocket_node_net_utilization", "Network use over the node's bandwidth: measured (max of rx, tx) or allocated to jobs.", metrics.Gauge)
	eachSample(nodes, func(n nodeMetric) {
		w.Value("pocket_node_net_utilization", n.s.NetMeasured, "node", n.addr, "source", "measured")
		w.Value("pocket_node_net_utilization", n.s.NetAlloc, "node", n.addr, "source", "allocated")
	})
	w.Header("pocket_node_capacity_utilization", "Larger of used and allocated bytes over the tier's capacity.", metrics.Gauge)
	eachSample(nodes, func(n nodeMetric) {
		kinds := make([]int, 0, len(n.s.Capacity))
		for k := range n.s.Capacity {
			kinds = append(kinds, int(k))
		}
		sort.Ints(kinds)
		for _, k := range kinds {
			w.Value("pocket_node_capacity_utilization", n.s.Capacity[uint8(k)], "node", n.addr, "tier", kindName(uint8(k)))
		}
	})
	w.Header("pocket_node_rx_mbps", "Megabits per second the node received (its own payload traffic).", metrics.Gauge)
	eachSample(nodes, func(n nodeMetric) { w.Value("pocket_node_rx_mbps", n.s.RxMbps, "node", n.addr) })
	w.Header("pocket_node_tx_mbps", "Megabits per second the node sent (its own payload traffic).", metrics.Gauge)
	eachSample(nodes, func(n nodeMetric) { w.Value("pocket_node_tx_mbps", n.s.TxMbps, "node", n.addr) })

	if a := c.scaler(); a != nil {
		a.writeMetrics(w)
	}
}

func eachSample(nodes []nodeMetric, f func(nodeMetric)) {
	for _, n := range nodes {
		if n.ok {
			f(n)
		}
	}
}
