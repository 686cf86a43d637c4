package pocket

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// TestPrefixDeleteReplyLostDropsChunks: a prefix delete (RemoveAll) names,
// in each node's reply, the manifest versions it removed, whose chunks
// (confirmed: no lease reclaims them, on every node of the job) the SDK
// then drops. Here node A executes the prefix delete and its reply is
// lost (the connection is cut). The call goes on (the map changed
// meanwhile: the pass is sent again) or fails (the same map: unavailable)
// and is retried by its caller; either way the second pass finds A's keys
// gone. The chunks of the objects whose manifests A removed must be
// dropped all the same: before, no one named those versions again, and
// their chunks stayed on A, B and C until the job ended.
func TestPrefixDeleteReplyLostDropsChunks(t *testing.T) {
	t.Run("map changed, pass sent again", func(t *testing.T) { testPrefixDeleteReplyLost(t, true) })
	t.Run("same map, caller retries", func(t *testing.T) { testPrefixDeleteReplyLost(t, false) })
}

func testPrefixDeleteReplyLost(t *testing.T, changeMap bool) {
	const cs = 16 << 10
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns := dropMoveCluster(t, 3)
	a := ns[0]
	px := newHoldProxy(t, a.addr)
	ctl := &fixedCtl{}
	s := NewStore(ctl, Config{ChunkSize: cs})
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenStatic("job-1", px.addr, ns[1].addr, ns[2].addr)
	if err != nil {
		t.Fatal(err)
	}
	ctl.set(j.Map())
	// Chunked objects under d/, three of them with their manifest at A.
	set := placement.NewSet(placementNodes(j.Map().Nodes))
	var keys []string
	atA := 0
	for i := 0; atA < 3; i++ {
		k := fmt.Sprintf("d/obj-%d", i)
		if set.Node(set.Pick([]byte(k), 0)).ID == px.addr {
			atA++
		}
		keys = append(keys, k)
	}
	for i, k := range keys {
		if err := j.Put(ctx, k, randBytes(4*cs+100, uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	// A's prefix delete runs whole; its reply is held, then its
	// connection cut (after a map change, when asked).
	var armed atomic.Bool
	armed.Store(true)
	done := make(chan error, 1)
	a.faulty.SetHook(func(op dataplane.FaultOp, _, k []byte) error {
		if op == dataplane.FaultDelete && strings.HasPrefix(string(k), "d/") && !wire.IsChunkKey(k) && armed.CompareAndSwap(true, false) {
			px.hold()
			go func() {
				if !px.waitHeld(10 * time.Second) {
					done <- errors.New("A's reply to the prefix delete never came")
					return
				}
				if changeMap {
					m := j.Map()
					m.Epoch++
					ctl.set(m)
					j.setMap(m)
				}
				px.cut()
				done <- nil
			}()
		}
		return nil
	})
	n, callErr := j.RemoveAllCount(ctx, "d")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if changeMap && callErr != nil {
		t.Fatalf("RemoveAll whose pass was sent again on the new map: %v", callErr)
	}
	if !changeMap {
		if !errors.Is(callErr, ErrUnavailable) {
			t.Fatalf("RemoveAll whose reply from A was lost, on the same map: %v; want unavailable", callErr)
		}
		if n, callErr = j.RemoveAllCount(ctx, "d"); callErr != nil {
			t.Fatalf("RemoveAll again: %v", callErr)
		}
	}
	if ents, err := j.List(ctx, "d/"); err != nil || len(ents) != 0 {
		t.Fatalf("list after RemoveAll: %v, %v; want nothing", ents, err)
	}
	var values, bytes int64
	for _, nd := range ns {
		u := nd.faulty.Usage()
		values, bytes = values+int64(u.Values), bytes+u.Used
	}
	if values != 0 {
		t.Errorf("after RemoveAll (%d names counted by its last call) the nodes hold %d records (%d bytes) of %d objects' chunks; want none",
			n.Count(), values, bytes, len(keys))
	}
}
