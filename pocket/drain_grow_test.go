package pocket

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestDrainGrowsTheJobOntoAnEmptyNode: a job spread over two 64 MiB
// nodes holds 67 MiB (280 values of 250,000 bytes, each in one slab
// chunk of 256 KiB); a third node, empty, starts after. Draining
// one of the job's nodes, whose values the other has no room for, gives
// the job the empty node while readers and a writer keep going: the
// drained node leaves, the new node becomes an ordinary member of the
// job's map, and every value reads back byte-exact, during the drain and
// after. On the old code the drain was refused (no space) beside the
// empty node.
func TestDrainGrowsTheJobOntoAnEmptyNode(t *testing.T) {
	const capacity = 64 << 20
	ctl, addr, nodes := startDrainCluster(t, 2, capacity)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := Dial(ctx, addr, Config{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	job, err := s.RegisterJob(ctx, "grow-drain", Hints{PeakMbps: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(job.Map().Nodes); n != 2 {
		t.Fatalf("job on %d nodes, want 2", n)
	}
	vals := map[string]int{}
	for i := 0; i < 280; i++ {
		vals[fmt.Sprintf("g/%03d", i)] = 250000
	}
	putAll(ctx, t, job, vals)
	spare := addDrainNode(t, addr, capacity)
	waitFor(t, 10*time.Second, "the third node active", func() bool { return countState(ctl, wire.NodeActive) == 3 })
	// The order's room check reads the nodes' reports: wait for those of
	// every value put (a chunk of 256 KiB each).
	waitFor(t, 10*time.Second, "the controller to see the values", func() bool {
		for _, js := range ctl.Status().Jobs {
			if js.Job == job.ID() {
				return js.UsedBytes >= int64(len(vals))<<18
			}
		}
		return false
	})

	victim := fullest(nodes)
	addrV, spareAddr := victim.node.Addr().String(), spare.node.Addr().String()
	ch := startChurn(ctx, job, vals)
	if _, err := ctl.Drain(addrV, time.Minute); err != nil {
		ch.stop(t)
		t.Fatalf("drain of a job's node beside an empty one: %v", err)
	}
	t0 := time.Now()
	waitFor(t, 80*time.Second, "the drained node to leave and the new one to join", func() bool {
		st := ctl.Status()
		for _, n := range st.Nodes {
			if n.Addr == addrV {
				return false
			}
		}
		for _, js := range st.Jobs {
			if js.Job == job.ID() {
				for _, mn := range js.Nodes {
					if mn.Addr == spareAddr && mn.State == wire.NodeActive {
						return len(js.Nodes) == 2
					}
				}
			}
		}
		return false
	})
	took := time.Since(t0)
	time.Sleep(300 * time.Millisecond) // reads keep going across the last epoch bump
	written := ch.stop(t)
	if u := spare.tier.Usage(); u.Values == 0 {
		t.Fatal("the joined node holds nothing")
	}
	t.Logf("drained %s in %v; the joined node holds %d values, %d MiB; %d reads and %d writes during the drain",
		addrV, took, spare.tier.Usage().Values, spare.tier.Usage().Used>>20, ch.reads.Load(), ch.writes.Load())
	checkAll(ctx, t, job, vals)
	checkAll(ctx, t, job, written)
}
