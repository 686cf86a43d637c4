package pocket

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// TestDeleteRefusedAtTheLiveOwner: during a map change a delete deletes at
// the key's old owner (a), then the live owner (b) refuses the map as
// stale (it moved on to a newer epoch). doReq fetches the newer map and
// sends the whole delete again, which finds nothing at either owner: the
// call deleted the value, so it succeeds. Before, Delete returned
// ErrNotFound for the value it had deleted (and a delete-after-read's
// delete told its reader that another reader had taken the value). Fails
// on the old code.
func TestDeleteRefusedAtTheLiveOwner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := dropMoveCluster(t, 2)
	a, b := ns[0], ns[1]
	ctl := &fixedCtl{}
	s := NewStore(ctl, Config{})
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenStatic("job-1", a.addr)
	if err != nil {
		t.Fatal(err)
	}
	whole := placement.NewSet(placementNodes([]Node{{Addr: a.addr, Weight: 1}, {Addr: b.addr, Weight: 1}}))
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprintf("obj-%d", i); whole.Node(whole.Pick([]byte(k), 0)).ID == a.addr {
			key = k
		}
	}
	if err := j.Put(ctx, key, []byte("value")); err != nil {
		t.Fatal(err)
	}
	m := j.Map()
	m.Nodes = []Node{{Addr: a.addr, Weight: 1}, {Addr: b.addr, Weight: 1}}
	m.Draining = map[string]bool{a.addr: true}
	m.Epoch++
	j.setMap(m)
	newer := m
	newer.Epoch++
	ctl.set(newer)
	if r := j.route([]byte(key), 0); r.old != a.addr || r.addr != b.addr {
		t.Fatalf("route %+v", r)
	}
	var refused atomic.Bool
	b.faulty.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
		if op == dataplane.FaultDelete && string(k) == key && refused.CompareAndSwap(false, true) {
			return &wire.Error{Code: wire.CodeStaleEpoch, Msg: "placement map is stale", Epoch: newer.Epoch}
		}
		return nil
	})
	callErr := j.Delete(ctx, key)
	if !refused.Load() {
		t.Fatal("the live owner refused nothing: the test staged nothing")
	}
	if _, err := staticJob(t, Config{}, []string{a.addr}).Get(ctx, key); !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("the old owner after the delete: %v; want the value deleted", err)
	}
	if callErr != nil {
		t.Errorf("the delete that deleted the value answered %v", callErr)
	}
}
