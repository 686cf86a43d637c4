package pocket

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/wire"
)

// TestStuckGrowIsUndone: a job of 32 MiB on two nodes of 256 MiB grows
// onto a node of 8 MiB, which cannot take its share (about a third). The
// movers make no progress, and the controller (StuckMove 2 s) undoes the
// join (controller/undo.go): the small node leaves the map with nothing
// of the job, the job's values and the puts acknowledged meanwhile all
// read back byte-exact, and reads during the change and its undoing all
// succeed. Before, the change never ended.
func TestStuckGrowIsUndone(t *testing.T) {
	ctl, err := controller.New(controller.Config{Secret: drainSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 2 * time.Second, Logger: quietLog, StuckMove: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	la, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := la.String()
	big := []*drainNode{addDrainNode(t, addr, 256<<20), addDrainNode(t, addr, 256<<20)}
	waitFor(t, 10*time.Second, "nodes active", func() bool { return countState(ctl, wire.NodeActive) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Dial(ctx, addr, Config{ChunkSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.RegisterJob(ctx, "undo", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(j.Map().Nodes); n != 2 {
		t.Fatalf("job on %d nodes, want 2", n)
	}
	vals := drainData(32<<20, 11)
	for k, size := range vals {
		if err := j.Put(ctx, k, content(k, size)); err != nil {
			t.Fatal(err)
		}
	}
	small := addDrainNode(t, addr, 8<<20)
	waitFor(t, 10*time.Second, "the small node active", func() bool { return countState(ctl, wire.NodeActive) == 3 })
	smallAddr := small.node.Addr().String()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, bad atomic.Int64
	wg.Add(1)
	go func() { // readers of the job's values
		defer wg.Done()
		readLoop(ctx, t, j, vals, stop, &reads, &bad)
	}()
	acked := map[string]int{} // a writer's acknowledged puts: key -> size
	var refused int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k, size := fmt.Sprintf("w/%04d", i%200), 1000+i
			if err := j.Put(ctx, k, content(k, size)); err != nil {
				refused++ // its node full: the put answers so, and nothing is stored
				continue
			}
			acked[k] = size
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := ctl.GrowJob(j.ID(), smallAddr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the small node to join", func() bool {
		for _, n := range jobNodes(ctl, j.ID()) {
			if n.Addr == smallAddr {
				return true
			}
		}
		return false
	})
	waitFor(t, 60*time.Second, "the join to be undone and the small node to leave", func() bool {
		return settled(ctl, j.ID(), 2) && len(jobNodes(ctl, j.ID())) == 2 && jobNodes(ctl, j.ID())[0].Addr != smallAddr &&
			jobNodes(ctl, j.ID())[1].Addr != smallAddr
	})
	close(stop)
	wg.Wait()
	if n := small.node.JobValues(j.ID()); n != 0 {
		t.Errorf("the small node left the job's map holding %d of its values", n)
	}
	for k, size := range vals {
		got, err := j.Get(ctx, k)
		if err != nil || !bytes.Equal(got, content(k, size)) {
			t.Fatalf("get %s after the undo: %d bytes, %v", k, len(got), err)
		}
	}
	for k, size := range acked {
		got, err := j.Get(ctx, k)
		if err != nil || !bytes.Equal(got, content(k, size)) {
			t.Fatalf("get %s, acknowledged during the change, after the undo: %d bytes (want %d), %v", k, len(got), size, err)
		}
	}
	var held int64
	for _, n := range big {
		held += n.node.JobValues(j.ID())
	}
	t.Logf("%d reads during the change (%d bad), %d puts acknowledged, %d refused; the big nodes hold %d values",
		reads.Load(), bad.Load(), len(acked), refused, held)
	if reads.Load() == 0 || len(acked) == 0 {
		t.Error("no read or no acknowledged put ran during the change")
	}
}
