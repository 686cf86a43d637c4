package controller

import (
	"strings"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestJobsAvoidAFailingDevice: a node whose heartbeat says its NVMe
// device is failing (wire.MetricDeviceFailingPrefix) gets no new job on
// that tier while it says so; once its heartbeats stop saying so it is a
// candidate again. Before, a hostile trial's node whose device had turned
// read-only (every put failed) or shrunk (741 of 1,696 gets failed) kept
// getting new jobs.
func TestJobsAvoidAFailingDevice(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	const failing, sound = "127.0.0.1:7001", "127.0.0.1:7002"
	tiers := []wire.TierStat{{Kind: kindNVMe, CapacityBytes: 100 << 30, Mbps: 8000}}
	for _, addr := range []string{failing, sound} {
		mustRegister(t, c, &wire.NodeRegister{Addr: addr, Tiers: tiers})
	}
	beat := func(addr string, ms []wire.Metric) {
		t.Helper()
		if _, err := c.Heartbeat(&wire.Heartbeat{Addr: addr, Tiers: tiers, Metrics: ms}); err != nil {
			t.Fatal(err)
		}
	}
	beat(failing, []wire.Metric{{Name: wire.MetricDeviceErrorsPrefix + "nvme", Value: 741}, {Name: wire.MetricDeviceFailingPrefix + "nvme", Value: 1}})
	beat(sound, nil)
	for i := range 8 {
		m, err := c.RegisterJob("j", wire.JobHints{CapacityBytes: 1 << 30, PeakMbps: 10000})
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		for _, n := range m.Nodes {
			if n.Addr == failing {
				t.Fatalf("job %d placed on %s, whose NVMe device is failing: %+v", i, failing, m.Nodes)
			}
		}
	}
	// With every node failing a registration is refused, saying why.
	beat(sound, []wire.Metric{{Name: wire.MetricDeviceFailingPrefix + "nvme", Value: 1}})
	if _, err := c.RegisterJob("all-failing", wire.JobHints{CapacityBytes: 1 << 30}); err == nil || !strings.Contains(err.Error(), "device_failing") {
		t.Errorf("a job with every node's device failing: %v; want refused naming device_failing", err)
	}
	beat(sound, nil)
	beat(failing, []wire.Metric{{Name: wire.MetricDeviceErrorsPrefix + "nvme", Value: 741}}) // errors, none recent
	on := false
	for range 8 {
		m, err := c.RegisterJob("k", wire.JobHints{CapacityBytes: 1 << 30, PeakMbps: 10000})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range m.Nodes {
			on = on || n.Addr == failing
		}
	}
	if !on {
		t.Error("no job placed on the node once its device was no longer failing")
	}
}
