package pocket

// Attack tests (hostile15). Drop this file into pocket/ beside
// elastic_attack_test.go (whose harness it uses) and run
//   go test -count=1 -run TestAttack ./pocket/

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestAttackGrowWhileAMemberIsDown: a member of a job's map misses a
// heartbeat or two (declared dead, not yet lost: DeadNodeGrace) while the
// job's map grows, and comes back. Every value it holds was acknowledged;
// each must read back once it is back. The change must not end without
// that member having moved the values the joining node now owns: nobody
// else can move them, and once the map has no joining node no client
// looks for them at their old owner.
//
// On the code of de027f8 finishMoveLocked skipped dead members, the
// change ended, the returned member's mover saw a map with no joining node
// and moved nothing, and about a quarter of its values answered "not
// found" for good. Now the grow is refused while the member is dead.
func TestAttackGrowWhileAMemberIsDown(t *testing.T) {
	c, ctx, j := victimCluster(t)
	members := j.Map().Nodes
	down := c.node(members[0].Addr)
	held := down.node.JobValues(j.ID())
	if held == 0 {
		t.Fatalf("node %s holds none of the job's values", down.addr)
	}
	down.stopAgent()
	waitFor(t, 10*time.Second, "the silent member to be declared dead", func() bool {
		return nodeState(c.ctl, down.addr) == wire.NodeDead
	})
	newcomer := outside(c.ctl, j.ID())
	// A grow is refused while a member is dead (it could not move its
	// values); on the old code it ran, and ended without the member.
	if err := c.ctl.GrowJob(j.ID(), newcomer); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("grow with a dead member: %v, want unavailable", err)
	}
	c.startAgent(down)
	waitFor(t, 10*time.Second, "the member to come back", func() bool { return nodeState(c.ctl, down.addr) == wire.NodeActive })
	if err := c.ctl.GrowJob(j.ID(), newcomer); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the job's map to settle on 4 nodes", func() bool { return settled(c.ctl, j.ID(), 4) })
	checkVictimValues(t, ctx, j, fmt.Sprintf("a member missed the grow (it held %d)", held))
}

// TestAttackJoiningNodeStallsAndReturns: the node joining a job's map
// stops heartbeating as the grow starts (a stalled agent, a
// partition from the controller) and comes back before it is lost. The
// controller ends the change as soon as the node is declared dead, making
// it a plain member of the map; when it returns it owns about a quarter
// of the keys and holds none of them, and no node moves them to it: every
// such value, still on its old owner, answers "not found".
//
// Fails on the code of de027f8 (finishMoveLocked's abort path).
func TestAttackJoiningNodeStallsAndReturns(t *testing.T) {
	c, ctx, j := victimCluster(t)
	joiner := c.node(outside(c.ctl, j.ID()))
	// Its agent stalls just before the grow (the controller has not
	// noticed yet: the node is active).
	joiner.stopAgent()
	if err := c.ctl.GrowJob(j.ID(), joiner.addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the joining node to be declared dead", func() bool {
		return nodeState(c.ctl, joiner.addr) == wire.NodeDead
	})
	waitUntil(3*time.Second, func() bool {
		return !slices.ContainsFunc(jobNodes(c.ctl, j.ID()), func(m wire.MapNode) bool { return m.State == wire.NodeJoining })
	})
	c.startAgent(joiner)
	waitFor(t, 10*time.Second, "the node to come back", func() bool { return nodeState(c.ctl, joiner.addr) == wire.NodeActive })
	waitFor(t, 30*time.Second, "the job's map to settle on 4 nodes", func() bool { return settled(c.ctl, j.ID(), 4) })
	checkVictimValues(t, ctx, j, fmt.Sprintf("the joining node stalled and returned (it holds %d)", joiner.node.JobValues(j.ID())))
}

// countingController counts the map fetches a store makes.
type countingController struct {
	Controller
	getMaps atomic.Int64
}

func (cc *countingController) GetMap(ctx context.Context, job string, tok []byte) (Map, error) {
	cc.getMaps.Add(1)
	return cc.Controller.GetMap(ctx, job, tok)
}

// TestAttackStaleEpochStampede counts the map fetches one job's callers
// make while its map grows: between the epoch bump and its publication
// (a heartbeat or two) every caller that meets "stale epoch" polls the
// controller on its own (refreshNewer: 10 ms doubling to 200 ms), so the
// fetches grow with the callers in flight, not with the map changes.
// One map fetch per epoch and job (callers of one job waiting on the
// same refresh) would do.
func TestAttackStaleEpochStampede(t *testing.T) {
	c := newAttackCluster(t, 4, controller.Config{HeartbeatInterval: 300 * time.Millisecond,
		DeadAfter: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cc := &countingController{Controller: &metaController{mc: metaclient.New(c.addr, metaclient.Options{})}}
	s := NewStore(cc, Config{ChunkSize: 1 << 20})
	defer s.Close()
	j, err := s.RegisterJob(ctx, "stampede", Hints{PeakMbps: 24000})
	if err != nil {
		t.Fatal(err)
	}
	const callers = 32
	for i := 0; i < callers; i++ {
		k := fmt.Sprintf("s/%02d", i)
		if err := j.Put(ctx, k, content(k, 256)); err != nil {
			t.Fatal(err)
		}
	}
	before := cc.getMaps.Load()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := fmt.Sprintf("s/%02d", i)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := j.Get(ctx, k); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	start, began := j.Map().Epoch, time.Now()
	if err := c.ctl.GrowJob(j.ID(), outside(c.ctl, j.ID())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the grow to end", func() bool { return settled(c.ctl, j.ID(), 4) })
	waitFor(t, 10*time.Second, "the callers to see the last epoch", func() bool { return j.Map().Epoch >= start+2 })
	took := time.Since(began)
	close(stop)
	wg.Wait()
	fetches := cc.getMaps.Load() - before
	epochs := j.Map().Epoch - start
	t.Logf("%d callers, %d epochs in %v: %d map fetches, %d failed gets", callers, epochs, took, fetches, failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d gets failed during the grow", failed.Load())
	}
	// Shared, the fetches are about those of one caller polling through
	// each epoch's wait; the waits last longer on a loaded machine, so the
	// bound is one lone poller's fetches over the whole grow, per epoch,
	// plus two. Each caller polling alone made several per caller.
	if limit := int64(epochs) * int64(lonePolls(took)+2); fetches > limit {
		t.Errorf("%d map fetches for %d epoch changes of one job in %v (%d callers): want at most %d (a lone caller's polls per epoch, shared by the callers)",
			fetches, epochs, took, callers, limit)
	}
}

// lonePolls is how many map fetches one caller of refreshNewer makes while
// waiting d for a newer map: one, then one after each pause (10 ms,
// doubling to 200 ms).
func lonePolls(d time.Duration) int {
	n := 1
	for wait, slept := 10*time.Millisecond, time.Duration(0); slept < d; wait = min(2*wait, 200*time.Millisecond) {
		slept += wait
		n++
	}
	return n
}
