package pocket

import (
	"context"
	"testing"
	"time"
)

// TestEndedJobLeavesNoPersistedValuesOnItsReturnedLostNode: a job ends
// while a node it lost (cut off past its lease) is away. The node holds
// a persist-after-job value of the job, which the job lost: its key
// answers lost through the job's credential, whose final map names the
// node lost. When the node comes back it applies the job's end and
// would keep that value retired, where no credential reaches it and a
// drain of the node is refused for it. The controller has it drop the
// value. On the code before, the node kept it for good (the last
// session's finding, "found, not fixed").
func TestEndedJobLeavesNoPersistedValuesOnItsReturnedLostNode(t *testing.T) {
	c := newClusterWith(t, 2, rejoinConfig(time.Second, nil))
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "ended-lost", Hints{CapacityBytes: 96 << 20})
	if err != nil || len(j.Map().Nodes) != 2 {
		t.Fatalf("job of 96 MiB on %d of two 64 MiB nodes: %v", len(j.Map().Nodes), err)
	}
	victim := c.nodes[0]
	addr := victim.node.Addr().String()
	if err := j.Put(ctx, ownedKey(j, addr, "pre/"), []byte("held before the loss"), Persist()); err != nil {
		t.Fatal(err)
	}
	victim.cancel()
	<-victim.done
	c.awaitLost(j, addr)
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if n := victim.tier.Usage().Values; n != 1 {
		t.Fatalf("the cut-off node holds %d values before it returns; want its 1", n)
	}
	c.resumeAgent(victim)
	if !waitUntil(15*time.Second, func() bool { return victim.tier.Usage().Values == 0 }) {
		t.Fatalf("the returned node still keeps %d values of a job that lost it and has ended", victim.tier.Usage().Values)
	}
}
