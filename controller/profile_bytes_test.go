package controller

import (
	"errors"
	"math"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestJobProfileOfHugeBytesDecodes: like TestJobProfileOfHugeFiguresDecodes,
// with bytes: a node that counts per job reports the largest byte count
// the heartbeat decoder accepts for a job (math.MaxInt64, no more than a
// valid figure), the ended run keeps it as its peak, and the profile's
// estimate (1.1 times the peaks, converted back to int64) overflows: on
// amd64 the reply carries estimate bytes -9223372036854775808, which the
// client refuses ("estimate bytes: negative"). The sum over a job's
// nodes (jobTrace.add) overflows the same way with two such nodes.
func TestJobProfileOfHugeBytesDecodes(t *testing.T) {
	const node = "127.0.0.1:7001"
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, dramNode(node, 1<<30, 8000))
	if err := endJobReporting(t, c, "big", node, 10, wire.JobLoad{RxMbps: 10, Bytes: math.MaxInt64}); err != nil {
		t.Fatal(err)
	}
	if err := profileOverTCP(t, c, "big"); err != nil && !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("job profile of a name whose node reported huge bytes: %v", err)
	}
}
