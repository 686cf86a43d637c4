package main

import "testing"

// TestMetricsByPort: with --metrics-base and --node-ports every node's
// /metrics port follows its node port, so a node the autoscaler starts at
// a drained node's address serves where that one did; the base's checks
// count the whole range.
func TestMetricsByPort(t *testing.T) {
	o := upOptions{metricsBase: 9100, nodes: 3, nodePorts: "7100-7104"}
	if err := o.checkNodePorts(); err != nil {
		t.Fatal(err)
	}
	by := o.metricsByPort()
	if by == nil || by(7100) != "127.0.0.1:9101" || by(7103) != "127.0.0.1:9104" || by(7105) != "" {
		t.Fatal("metricsByPort does not map 7100-7104 to 9101-9105")
	}
	if o.metricsSlots() != 5 || o.nodeMetricsAddr(4) != by(7104) {
		t.Errorf("slots %d, node 4 on %s; want 5, %s", o.metricsSlots(), o.nodeMetricsAddr(4), by(7104))
	}
	if (&upOptions{metricsBase: 9100, nodes: 3}).metricsByPort() != nil {
		t.Error("metricsByPort without --node-ports")
	}
}
