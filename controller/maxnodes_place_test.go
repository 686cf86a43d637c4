package controller

import (
	"context"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestPlacementAtMaxNodesStaysWithinSpare: on an autoscaling cluster at
// its most nodes, a job whose capacity the nodes hold only past the
// band's high is placed within each node's whole spare bytes, as a
// cluster without autoscaling places it, not over nodes already holding
// another job's shares.
func TestPlacementAtMaxNodesStaysWithinSpare(t *testing.T) {
	r := newScaleRig(t, 5, AutoscaleConfig{MaxNodes: 5, NoJobScaling: true})
	r.beat(0, 0)
	c := r.c
	reg := func(name string, b int64) *wire.PlacementMap {
		t.Helper()
		m, err := c.RegisterJobFrom("", &wire.JobRegister{Name: name, Hints: wire.JobHints{CapacityBytes: b}})
		if err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
		return m
	}
	st1 := reg("st1", 2<<30)
	st2 := reg("st2", 2<<30)
	if _, err := c.DeregisterJob(context.Background(), st1.Job, st1.Token); err != nil {
		t.Fatal(err)
	}
	st3 := reg("st3", 2900<<20)
	c.mu.Lock()
	defer c.mu.Unlock()
	alloc := map[string]int64{}
	for _, m := range []*wire.PlacementMap{st2, st3} {
		j := c.jobs[m.Job]
		for i, share := range byteShares(j.allocBytes, j.nodes) {
			alloc[j.nodes[i].Addr] += share
		}
		t.Logf("%s: %d bytes over %+v", m.Job, j.allocBytes, j.nodes)
	}
	for addr, b := range alloc {
		if b > 1<<30 {
			t.Errorf("node %s is allotted %d bytes of 1 GiB", addr, b)
		}
	}
}
