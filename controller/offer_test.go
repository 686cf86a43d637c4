package controller

import (
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestTierOfferCountsOnlyNodesWithSpareBytes: a tier whose spare bytes
// are all on one node offers only that node's bandwidth, as placement
// takes only nodes with spare bytes. Here NVMe, the cheaper tier, is full
// on two of three nodes: a job of 900 Mb/s goes to DRAM, over enough
// nodes to carry it. Before, the NVMe tier offered all three nodes'
// bandwidth, won on price, and the job was placed on the one node with
// NVMe room, at 1.8 times its rating (a new user's trial: 600 Mb/s on a
// 500 Mb/s node while two nodes' DRAM sat empty).
func TestTierOfferCountsOnlyNodesWithSpareBytes(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	addrs := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	for i, addr := range addrs {
		tiers := []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 8 << 30, Mbps: 500}, {Kind: kindNVMe, CapacityBytes: 100 << 30, Mbps: 500}}
		mustRegister(t, c, &wire.NodeRegister{Addr: addr, Cores: 2, Tiers: tiers})
		if i < 2 {
			tiers[1].UsedBytes = tiers[1].CapacityBytes
		}
		c.heartbeat(&wire.Heartbeat{Addr: addr, Tiers: tiers})
	}
	m, err := c.RegisterJob("j", wire.JobHints{PeakMbps: 900, CapacityBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) < 2 {
		t.Fatalf("a 900 Mb/s job on %s over %d node(s) of 500 Mb/s: %+v", wire.Tier(m.Tier), len(m.Nodes), m.Nodes)
	}
	if m.Tier == kindNVMe {
		for _, n := range m.Nodes {
			if n.Addr != addrs[2] {
				t.Fatalf("placed on NVMe on %s, whose NVMe is full", n.Addr)
			}
		}
	}
}

// TestNodesLearnAJobsTier: the job table a node receives names the tier
// the job was placed on, so the node refuses its puts to another.
func TestNodesLearnAJobsTier(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	const addr = "127.0.0.1:7001"
	mustRegister(t, c, &wire.NodeRegister{Addr: addr, Cores: 2, Tiers: []wire.TierStat{
		{Kind: kindDRAM, CapacityBytes: 8 << 30, Mbps: 8000}, {Kind: kindNVMe, CapacityBytes: 100 << 30, Mbps: 8000}}})
	m, err := c.RegisterJob("j", wire.JobHints{CapacityBytes: 10 << 30})
	if err != nil {
		t.Fatal(err)
	}
	ack := c.heartbeat(&wire.Heartbeat{Addr: addr})
	for _, e := range ack.Jobs {
		if e.Job == m.Job {
			if e.Tiers != 1<<m.Tier {
				t.Fatalf("the node's entry of a job on %s names tiers %#b", wire.Tier(m.Tier), e.Tiers)
			}
			return
		}
	}
	t.Fatalf("the node's ack does not list the job: %+v", ack.Jobs)
}
