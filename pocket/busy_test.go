package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// TestBusyAnswersInChangeAreWaitedOut: the same while the key's owner
// changes (a node joins the job's map): the get, stat and delete ask the
// key's live owner, which answers busy three times. On the code before,
// the get failed busy at once.
func TestBusyAnswersInChangeAreWaitedOut(t *testing.T) {
	ns := dropMoveCluster(t, 3)
	j := staticJob(t, Config{}, []string{ns[0].addr, ns[1].addr})
	ctx := context.Background()
	m := j.Map()
	m.Nodes = []Node{{Addr: ns[0].addr, Weight: 1}, {Addr: ns[1].addr, Weight: 1}, {Addr: ns[2].addr, Weight: 1}}
	m.Joining = map[string]bool{ns[2].addr: true}
	j.setMap(m)
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("k%d", i); j.route([]byte(k), 0).addr == ns[2].addr {
			key = k
		}
	}
	if j.route([]byte(key), 0).old == "" {
		t.Fatalf("key %q: its owner does not change", key)
	}
	val := []byte("value")
	if err := j.Put(ctx, key, val); err != nil {
		t.Fatal(err)
	}
	f := ns[2].faulty
	f.FailNext(dataplane.FaultOpen, 3, wire.ErrBusy)
	if got, err := j.Get(ctx, key); err != nil || !bytes.Equal(got, val) {
		t.Fatalf("get answered busy three times by the live owner: %q, %v", got, err)
	}
	f.FailNext(dataplane.FaultStat, 3, wire.ErrBusy)
	if _, err := j.Stat(ctx, key); err != nil {
		t.Fatalf("stat answered busy three times by the live owner: %v", err)
	}
	f.FailNext(dataplane.FaultDelete, 3, wire.ErrBusy)
	if err := j.Delete(ctx, key); err != nil {
		t.Fatalf("delete answered busy three times by the live owner: %v", err)
	}
	if _, err := j.Get(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after the delete: %v, want not found", err)
	}
	if f.Injected() != 9 {
		t.Fatalf("%d faults injected, want 9: the test proves nothing", f.Injected())
	}
}
