package dataplane

import (
	"fmt"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// A job's usage answer carries its own bytes and the tier's capacity,
// nothing of other jobs: on the old code its count was the tier's values,
// every job's, so a job that stored nothing watched another's puts (a
// hostile trial: 111, then 1,111 once the other job put 1,000).
func TestUsageSaysNothingOfOtherJobs(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	spy, other := dial(t, n, "spy"), dial(t, n, "other")
	usage := func() wire.Response {
		t.Helper()
		r := roundTrip(t, spy, wire.OpUsage, 0, &wire.Request{Job: []byte("spy")}, nil)
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		var resp wire.Response
		if err := wire.DecodeResponse(r.Meta, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	before := usage()
	for i := range 100 {
		r := roundTrip(t, other, wire.OpPut, 0, &wire.Request{Job: []byte("other"), Key: fmt.Appendf(nil, "k%d", i)}, []byte("v"))
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	}
	after := usage()
	if after.Count != before.Count || after.Size != 0 || after.Capacity != 64<<20 {
		t.Fatalf("the spy's usage before %+v, after the other job's 100 puts %+v; want no change, size 0, capacity 64 MiB", before, after)
	}
}
