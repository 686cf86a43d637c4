package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// BenchmarkRegisterAmongManyJobs: a registration's cost on a cluster of
// 64 nodes holding 1,000 jobs of 64,000 Mb/s (each over about 10 nodes),
// whose nodes report per-job bytes: placement asks every node's held
// bytes (heldBytesLocked) under the controller's lock.
func BenchmarkRegisterAmongManyJobs(b *testing.B) {
	c, err := New(Config{Secret: testSecret, DeadAfter: time.Hour, MaxJobs: 1 << 30, MaxJobsPerClient: 1 << 30, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	const nodes = 64
	for i := range nodes {
		if _, err := c.RegisterNode(dramNode(fmt.Sprintf("127.0.0.1:%d", 7001+i), 1<<40, 8000)); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 1000 {
		if _, err := c.RegisterJob(fmt.Sprintf("j%d", i), wire.JobHints{CapacityBytes: 1 << 20, PeakMbps: 64000}); err != nil {
			b.Fatal(err)
		}
	}
	per := map[string][]wire.JobLoad{}
	c.mu.Lock()
	for _, j := range c.jobs {
		for _, mn := range j.nodes {
			per[mn.Addr] = append(per[mn.Addr], wire.JobLoad{Job: j.id, Bytes: 1000})
		}
	}
	c.mu.Unlock()
	for i := range nodes {
		a := fmt.Sprintf("127.0.0.1:%d", 7001+i)
		hb := &wire.Heartbeat{Addr: a, Incarnation: 7, Loads: per[a],
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 40, Mbps: 8000, UsedBytes: 1 << 30}}}
		if _, err := c.Heartbeat(hb); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := c.RegisterJob(fmt.Sprintf("x%d", i), wire.JobHints{CapacityBytes: 1 << 20, PeakMbps: 600}); err != nil {
			b.Fatal(err)
		}
	}
}
