package pocket

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
)

// TestGrowWaitsForASilentOwnersLease: a node of a job's map is cut off
// from its controller (its agent stopped) but not from its clients, and
// serves on within its lease; the job's map grows meanwhile. A client that
// fetches the map afterwards and puts keys the silent node owned must not
// leave a client still on the old map reading their old values from that
// node. Before, the controller handed out the grown map confirmWait
// (DeadAfter here) after the change, though the silent node had not
// confirmed it: the new client's puts of keys moving away from it went to
// the joining node, and the old client read every one of them stale from
// the silent node (a hostile trial: 13 of 13 with the Python client). Now
// a map is not handed out before a silent node that has not confirmed it
// has stopped serving (its lease ended), and then it is.
func TestGrowWaitsForASilentOwnersLease(t *testing.T) {
	c := newClusterWith(t, 3, controller.Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 500 * time.Millisecond, DeadNodeGrace: 3 * time.Second, Logger: quietLog})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sa, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	ja, err := sa.RegisterJob(ctx, "silent", Hints{Lambdas: 20})
	if err != nil || len(ja.Map().Nodes) != 2 {
		t.Fatalf("job on %d node(s): %v", len(ja.Map().Nodes), err)
	}
	silent := ja.Map().Nodes[0].Addr
	var keys []string
	for i := 0; len(keys) < 60; i++ {
		if k := fmt.Sprint("k", i); ja.route([]byte(k), 0).addr == silent {
			keys = append(keys, k)
			if err := ja.Put(ctx, k, []byte("v1")); err != nil {
				t.Fatal(err)
			}
		}
	}
	victim := c.nodeAt(silent)
	victim.cancel() // cut off from the controller; serves on within its lease
	<-victim.done
	if err := c.ctl.GrowJob(ja.ID(), outside(c.ctl, ja.ID())); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // past confirmWait; the node serves for 2.6 s of its 3.5 s lease

	sb, err := Dial(ctx, c.addr, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	jb, err := sb.OpenJob(ctx, ja.ID(), ja.Token())
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	defer pcancel()
	var put []string
	for _, k := range keys {
		if jb.Put(pctx, k, []byte("v2")) == nil {
			put = append(put, k)
		}
	}
	stale := 0
	for _, k := range put {
		if v, err := ja.Get(ctx, k); err == nil && string(v) == "v1" {
			stale++
		}
	}
	t.Logf("map epochs %d (old client) and %d (new client); %d of %d puts acknowledged", ja.Map().Epoch, jb.Map().Epoch, len(put), len(keys))
	if stale > 0 {
		t.Errorf("%d of %d acknowledged puts read back stale by the client on the old map", stale, len(put))
	}
	// Once the node's lease has ended the change's map is handed out,
	// and no client reads the older values.
	waitFor(t, 20*time.Second, "the grown map to be handed out", func() bool {
		return jb.refresh(ctx) == nil && jb.Map().Epoch > ja.Map().Epoch
	})
	for _, k := range put {
		if v, err := ja.Get(ctx, k); err == nil && string(v) != "v2" {
			t.Errorf("get %s after the change's map was handed out: %q", k, v)
		}
	}
}
