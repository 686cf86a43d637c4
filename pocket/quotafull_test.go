package pocket

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/wire"
)

// TestClusterRefusesPutsPastByteQuota: a job whose client stores past
// the controller's MaxBytesPerClient has its puts refused (CodeLimit,
// naming the byte quota) within a few heartbeats, long before the nodes
// are full; its values stay readable, and once it deletes them its puts
// are taken again. Before, the quota bounded only what was allotted: the
// same puts ran on until the nodes' tiers were full (a hostile trial
// stored 4 GiB on a 64 MiB quota).
func TestClusterRefusesPutsPastByteQuota(t *testing.T) {
	const capacity = 256 << 20
	c := newTestCluster(t, 2, capacity)
	c.restartController(controller.Config{Secret: testSecret, HeartbeatInterval: 100 * time.Millisecond,
		DeadAfter: 500 * time.Millisecond, Logger: quietLog, MaxBytesPerClient: 16 << 20})
	c.awaitActive(2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := c.store().RegisterJob(ctx, "fill", Hints{CapacityBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 256<<10)
	var stored int64
	var refused error
	for i := 0; stored < 2*capacity; i++ {
		err := j.Put(ctx, fmt.Sprintf("k%d", i), val)
		if err != nil {
			refused = err
			break
		}
		stored += int64(len(val))
		time.Sleep(time.Millisecond) // at most 256 MB/s: the refusal comes within a few heartbeats
	}
	if !errors.Is(refused, wire.ErrLimit) || !strings.Contains(refused.Error(), "byte quota") {
		t.Fatalf("after %d MiB of puts on a 16 MiB quota: %v; want refused for the byte quota", stored>>20, refused)
	}
	t.Logf("refused after %d MiB of puts: %v", stored>>20, refused)
	if stored >= capacity {
		t.Fatalf("refused only after %d MiB on a 16 MiB quota (the nodes hold %d MiB)", stored>>20, int64(2*capacity)>>20)
	}
	if _, err := j.Get(ctx, "k0"); err != nil {
		t.Fatalf("a value of the job over its quota: %v", err)
	}
	if _, err := j.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := j.Put(ctx, "again", val)
		if err == nil {
			break
		}
		if !errors.Is(err, wire.ErrLimit) || time.Now().After(deadline) {
			t.Fatalf("put after the job deleted its values: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPersistedBytesCountAtDeregistration (hostile trial, 2026-12-08):
// the persisted values a job's nodes say they keep when its
// deregistration orders them to drop its data count against its client's
// byte quota at once, before the nodes' next heartbeats. Before, the job's
// bytes in its nodes' last per-job figures counted until then: a client
// that registered, put 60 MiB of persisted values, deregistered and
// registered again at once, in turn, stored 180 MiB on a 64 MiB quota.
func TestPersistedBytesCountAtDeregistration(t *testing.T) {
	c := newTestCluster(t, 1, 256<<20)
	c.restartController(controller.Config{Secret: testSecret, HeartbeatInterval: 5 * time.Second,
		DeadAfter: 30 * time.Second, Logger: quietLog, MaxBytesPerClient: 16 << 20})
	c.awaitActive(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := c.store().RegisterJob(ctx, "keep", Hints{CapacityBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 1<<20)
	for i := range 12 {
		if err := j.Put(ctx, fmt.Sprintf("k%d", i), val, Persist()); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.store().RegisterJob(ctx, "again", Hints{CapacityBytes: 8 << 20})
	if !errors.Is(err, wire.ErrLimit) || !strings.Contains(err.Error(), "persisted values hold 12") {
		t.Fatalf("a registration of 8 MiB right after a job kept 12 MiB of persisted values on a 16 MiB quota: %v; want refused, counting them", err)
	}
}
