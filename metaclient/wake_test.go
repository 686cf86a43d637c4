package metaclient_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestWakeIsRateLimited: a node woken without pause (a flood of requests
// naming epochs its table has not heard of) sends early heartbeats, marked
// Early, at most one per WakeGap after the heartbeat before, and its
// regular heartbeats keep their schedule meanwhile.
func TestWakeIsRateLimited(t *testing.T) {
	const interval, gap, flood = 200 * time.Millisecond, 100 * time.Millisecond, 1500 * time.Millisecond
	c, err := controller.New(controller.Config{Secret: secret, HeartbeatInterval: interval,
		DeadAfter: 10 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var early, regular atomic.Int64
	registered := make(chan struct{})
	var once atomic.Bool
	wake := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	mc := metaclient.New(a.String(), metaclient.Options{Secret: secret, Logger: quiet})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer mc.Close()
		_ = mc.RunNode(ctx, metaclient.NodeLoop{
			Register: wire.NodeRegister{Addr: "127.0.0.1:1", Cores: 1,
				Tiers: []wire.TierStat{{Kind: 1, CapacityBytes: 1 << 30, Mbps: 8000}}},
			Report: func(hb *wire.Heartbeat) {
				if hb.Early {
					early.Add(1)
				} else {
					regular.Add(1)
				}
			},
			OnAck: func(*wire.NodeAck) {
				if !once.Swap(true) {
					close(registered)
				}
			},
			Wake:    wake,
			WakeGap: gap,
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-registered:
	case <-time.After(10 * time.Second):
		t.Fatal("the node never registered")
	}
	time.Sleep(2 * interval) // past the heartbeats that follow the registration at once
	e0, r0 := early.Load(), regular.Load()
	start := time.Now()
	for time.Since(start) < flood {
		select {
		case wake <- struct{}{}:
		default:
		}
		time.Sleep(100 * time.Microsecond)
	}
	took := time.Since(start)
	e, r := early.Load()-e0, regular.Load()-r0
	t.Logf("in %v: %d early heartbeats, %d regular", took, e, r)
	if most := int64(took/gap) + 1; e > most {
		t.Fatalf("%d early heartbeats in %v, more than one per %v (%d)", e, took, gap, most)
	}
	if e < 2 {
		t.Fatalf("%d early heartbeats in %v of wake-ups", e, took)
	}
	if r < 2 {
		t.Fatalf("%d regular heartbeats in %v (every %v): the wake-ups moved the schedule", r, took, interval)
	}
}
