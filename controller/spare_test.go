package controller

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/wire"
)

// TestSpareCountsAllotmentsExactly: the spare capacity a refusal names is
// the nodes' capacity less the jobs' allotments, to the byte. Before, each
// node's share of a job's allotment was rounded down, so the shares summed
// short of the allotment and a refusal named a spare a few bytes too large
// (a new user's trial: "has 536870914 bytes (0.5 GiB) spare", 512 MiB + 2).
func TestSpareCountsAllotmentsExactly(t *testing.T) {
	c := newTest(t, Config{})
	caps := []int64{1 << 30, 1 << 30, 3 << 29}
	var total int64
	for i, capacity := range caps {
		mustRegister(t, c, dramNode(fmt.Sprintf("127.0.0.1:%d", 7001+i), capacity, 8000))
		total += capacity
	}
	const asked = 1<<31 + 1001 // not a multiple of any node's share
	m, err := c.RegisterJob("big", wire.JobHints{CapacityBytes: asked, LatencySensitive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) < 2 {
		t.Fatalf("the job is on %d node(s); the test needs its allotment split", len(m.Nodes))
	}
	_, err = c.RegisterJob("more", wire.JobHints{CapacityBytes: total, LatencySensitive: true})
	if err == nil {
		t.Fatal("a job asking the cluster's whole capacity was placed beside another")
	}
	want := fmt.Sprintf("has %d bytes (1.5GiB) spare, %s short (its capacity less what it holds and what its jobs were allotted", total-asked,
		units.FormatSize(total-(total-asked)))
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("refusal %q; want the spare %q (capacity %d less the allotment %d)", err, want, total, int64(asked))
	}
}
