package pocket

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/wire"
)

// A node that answers a put busy stored nothing: its job's puts still
// arriving there hold the node's bound (dataplane/unfinished.go), or its
// device has too many calls in flight. The SDK sends the put again, for
// up to settle, for a value and for an object's chunks alike, and the put
// succeeds once the node takes it. On the old code the put failed busy.
func TestPutWaitsOutBusy(t *testing.T) {
	c, tiers := newFaultyCluster(t, 1)
	ctx := context.Background()
	j, err := c.store().RegisterJob(ctx, "busy-puts", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	awaitListed(t, j)
	var refused atomic.Int32
	busy := func(op dataplane.FaultOp, _, _ []byte) error {
		if op == dataplane.FaultCreate && refused.Add(1)%4 != 0 {
			return &wire.Error{Code: wire.CodeBusy, Msg: "injected"}
		}
		return nil
	}
	tiers[0].SetHook(busy)
	small := []byte("value")
	big := bytes.Repeat([]byte("chunked object "), 300_000) // 4.5 MB: five chunks
	for key, val := range map[string][]byte{"small": small, "big": big} {
		if err := j.Put(ctx, key, val); err != nil {
			t.Fatalf("put %s while the node answers 3 of 4 puts busy: %v", key, err)
		}
		tiers[0].SetHook(nil)
		got, err := j.Get(ctx, key)
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("get %s: %d bytes, %v", key, len(got), err)
		}
		tiers[0].SetHook(busy)
	}
	if refused.Load() < 6*3 {
		t.Fatalf("%d puts refused: the test proves nothing", refused.Load())
	}
}
