package controller

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestNodeMapFetchThroughBusyFlood (hostile review of ca50808): a storage
// node's own map fetches (its drainer's and mover's GetMap on the Client
// it runs RunNode on) go through a flood of busy connections over
// MaxConns, as its heartbeats do. Before ca50808 they shared the node's
// one connection, which had proved the node role (outside MaxConns, never
// evicted). Since ca50808 the heartbeats have a connection of their own
// and the fetches go over a plain connection: it is evicted once idle for
// a second and its redial lands on probation, where a map fetch gets the
// MaxConns refusal, so a flood stalls a node's drain.
func TestNodeMapFetchThroughBusyFlood(t *testing.T) {
	const maxConns = 4
	c := newTest(t, Config{MaxConns: maxConns, MaxConnsPerPeer: -1, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 3 * time.Second, DeadNodeGrace: time.Minute, ForgetAfter: time.Hour})
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	node := "127.0.0.1:7001"
	mc := metaclient.New(a.String(), metaclient.Options{Secret: testSecret, Logger: quietLog})
	defer mc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := make(chan error, 1)
	go func() {
		run <- mc.RunNode(ctx, metaclient.NodeLoop{Register: *dramNode(node, 1<<30, 8000), Interval: 100 * time.Millisecond})
	}()
	defer func() { cancel(); <-run }()
	var m *wire.PlacementMap
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if m, err = c.RegisterJob("flooded", wire.JobHints{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never registered: %v", err)
		}
	}
	fetch := func() error {
		fctx, fcancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer fcancel()
		_, err := mc.GetMap(fctx, m.Job, m.Token)
		return err
	}
	if err := fetch(); err != nil {
		t.Fatalf("map fetch before the flood: %v", err)
	}
	stop := make(chan struct{})
	_, floodDone := busyFlood(a.String(), []string{"127.0.0.2", "127.0.0.3"}, 4, stop)
	defer func() { close(stop); floodDone() }()
	time.Sleep(1500 * time.Millisecond) // the flood fills MaxConns; the node's fetch connection idles past evictMinIdle
	var failed []error
	for i := 0; i < 4; i++ {
		if err := fetch(); err != nil {
			failed = append(failed, err)
		}
		time.Sleep(1200 * time.Millisecond) // a drain pass later: idle again
	}
	if len(failed) > 0 {
		t.Fatalf("%d of 4 map fetches by the node during the flood failed (its heartbeats went through): %v",
			len(failed), errors.Join(failed...))
	}
	c.mu.Lock()
	st := c.nodes[node].state
	c.mu.Unlock()
	if st != wire.NodeActive {
		t.Fatalf("node %s is %v", node, st)
	}
}
