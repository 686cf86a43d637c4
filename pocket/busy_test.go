package pocket

import (
	"bytes"
	"context"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/wire"
)

// A live job's get, stat and delete answered busy (the node's device
// queue full, whoever filled it) are sent again, as puts are: a busy
// answer did nothing. Before, only puts were, and another job's flood of
// NVMe requests failed 10-38 % of a job's gets (a hostile trial); this
// test's get failed busy on the old code.
func TestBusyAnswersAreWaitedOut(t *testing.T) {
	n := dropMoveCluster(t, 1)[0]
	f := n.faulty
	j := staticJob(t, Config{}, []string{n.addr})
	ctx := context.Background()
	val := []byte("value")
	if err := j.Put(ctx, "k", val); err != nil {
		t.Fatal(err)
	}
	f.FailNext(dataplane.FaultOpen, 3, wire.ErrBusy)
	if got, err := j.Get(ctx, "k"); err != nil || !bytes.Equal(got, val) {
		t.Fatalf("get answered busy three times: %q, %v", got, err)
	}
	f.FailNext(dataplane.FaultStat, 3, wire.ErrBusy)
	if _, err := j.Stat(ctx, "k"); err != nil {
		t.Fatalf("stat answered busy three times: %v", err)
	}
	f.FailNext(dataplane.FaultDelete, 3, wire.ErrBusy)
	if err := j.Delete(ctx, "k"); err != nil {
		t.Fatalf("delete answered busy three times: %v", err)
	}
	if f.Injected() != 9 {
		t.Fatalf("%d faults injected, want 9: the test proves nothing", f.Injected())
	}
}
