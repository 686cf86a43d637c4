package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestRegistrationFloodLeavesOthersServing: one client (127.0.0.2)
// registers 6,000 jobs as fast as it can while another registers a job and
// puts and gets through it. The flood is refused past the per-client limits
// with CodeLimit; the other client sees no error, and no node is marked
// dead. Before the limits, ~8,000 jobs broke status and ~12,600 made nodes
// flap dead and active.
func TestRegistrationFloodLeavesOthersServing(t *testing.T) {
	if testing.Short() {
		t.Skip("a flood of 6,000 registrations")
	}
	c := newTestCluster(t, 3, 64<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	flooder := metaclient.New(c.addr, metaclient.Options{LocalIP: "127.0.0.2", Logger: quietLog})
	defer flooder.Close()
	var ok, limited, other atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= 6000 {
				_, err := flooder.RegisterJob(ctx, "flood", wire.JobHints{})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, wire.ErrLimit):
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	s := c.store()
	j, err := s.RegisterJob(ctx, "victim", Hints{})
	if err != nil {
		t.Fatalf("register during the flood: %v", err)
	}
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("k%d", i)
		v := bytes.Repeat([]byte{byte(i)}, 1000)
		if err := j.Put(ctx, k, v); err != nil {
			t.Fatalf("put during the flood: %v", err)
		}
		if got, err := j.Get(ctx, k); err != nil || !bytes.Equal(got, v) {
			t.Fatalf("get during the flood: %v", err)
		}
	}
	wg.Wait()
	t.Logf("flood: %d registered, %d refused with CodeLimit, %d other errors", ok.Load(), limited.Load(), other.Load())
	if ok.Load() > 1000 || limited.Load() < 5000 || other.Load() != 0 {
		t.Fatalf("flood: %d registered, %d limited, %d other errors", ok.Load(), limited.Load(), other.Load())
	}
	for _, n := range c.ctl.Status().Nodes {
		if n.State != wire.NodeActive {
			t.Fatalf("node %s is %v after the flood", n.Addr, n.State)
		}
	}
	if _, err := s.RegisterJob(ctx, "after", Hints{}); err != nil {
		t.Fatalf("register after the flood: %v", err)
	}
}
