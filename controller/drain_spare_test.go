package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestDrainAdoptsANodeThatHoldsTheShare: a job whose only node drains
// gets the node whose spare bytes hold that node's share of the job, not
// the one with the most spare bandwidth: an 8 GiB job's node drains next
// to a node of 1 GiB at 16000 Mb/s and one of 16 GiB at 4000 Mb/s; the
// 1 GiB node took all 8 GiB.
func TestDrainAdoptsANodeThatHoldsTheShare(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	a, fast, roomy := "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"
	mustRegister(t, c, dramNode(a, 8<<30, 8000))
	m, err := c.RegisterJob("j", wire.JobHints{CapacityBytes: 8 << 30, PeakMbps: 1000})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("register: %+v, %v", m, err)
	}
	mustRegister(t, c, dramNode(fast, 1<<30, 16000))
	mustRegister(t, c, dramNode(roomy, 16<<30, 4000))
	if _, err := c.Drain(a, time.Minute); err != nil {
		t.Fatal(err)
	}
	heardAll(t, c)
	m2, err := c.GetMap(m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mapState(m2, roomy); !ok {
		t.Errorf("the drained node's 8 GiB went to %+v; want %s (16 GiB spare), not %s (1 GiB spare, more bandwidth)", m2.Nodes, roomy, fast)
	}
}
