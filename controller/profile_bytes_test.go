package controller

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/pocketstore/pocket/metaclient"
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
	m, err := c.RegisterJob("big", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		hb := &wire.Heartbeat{Addr: node, RxMbps: 10, Incarnation: 7,
			Loads: []wire.JobLoad{{Job: m.Job, RxMbps: 10, Bytes: math.MaxInt64}},
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 8000, UsedBytes: 1 << 20}}}
		if err := (&wire.Heartbeat{}).Decode(hb.Encode(newBuilder())); err != nil {
			t.Logf("the heartbeat decoder refuses the figures: %v", err)
			break // refused at the edge: nothing to record
		}
		if _, err := c.Heartbeat(hb); err != nil {
			t.Logf("the controller refuses the heartbeat: %v", err)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc := metaclient.New(a.String(), metaclient.Options{Logger: quietLog})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := mc.JobProfile(ctx, "big"); err != nil && !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("job profile of a name whose node reported huge bytes: %v", err)
	}
}
