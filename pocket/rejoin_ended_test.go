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
	c, j, _, _ := cutOffNode(t, rejoinConfig(time.Second, nil), Persist())
	victim := c.nodes[0]
	if err := j.Deregister(context.Background()); err != nil {
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
