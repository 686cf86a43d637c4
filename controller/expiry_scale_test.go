package controller

import (
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// expiringJobs registers n jobs of one-second tokens on a four-node
// controller and returns it.
func expiringJobs(tb testing.TB, n int) *Controller {
	tb.Helper()
	c := newTest(tb, Config{MaxJobs: 2 * n})
	for i := range 4 {
		mustRegister(tb, c, dramNode(fmt.Sprintf("127.0.0.1:%d", 7001+i), 1<<40, 1e6))
	}
	for i := range n {
		if _, err := c.RegisterJobFrom("", &wire.JobRegister{Name: fmt.Sprintf("j%d", i), TTL: time.Second}); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

// TestExpiryEndsJobsByTheBatch (hostile re-check, 2026-12-07): jobs whose
// tokens expire together are ended expireBatchLen at a time, the lock
// let go between batches, and every one is ended in the end, with the
// kept final maps within their bound. Before, 81,856 jobs registered with
// one TTL expired in one hold of the lock of over 30 s (each end also
// passed over every kept final map), and every node's heartbeat timed out
// until their leases lapsed. BenchmarkExpireJobs measures the whole.
func TestExpiryEndsJobsByTheBatch(t *testing.T) {
	const n = 3*expireBatchLen + 7
	c := expiringJobs(t, n)
	later := time.Now().Add(time.Hour)
	if !c.expireBatch(later) {
		t.Fatal("the first batch says no more jobs are due")
	}
	c.mu.Lock()
	left := len(c.jobs)
	c.mu.Unlock()
	if left != n-expireBatchLen {
		t.Fatalf("%d jobs left after one batch of %d; want %d ended", left, n, expireBatchLen)
	}
	c.expireJobs(later)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.jobs) != 0 || len(c.ended.ids) > c.cfg.MaxEndedJobs {
		t.Fatalf("%d jobs left, %d final maps kept (bound %d)", len(c.jobs), len(c.ended.ids), c.cfg.MaxEndedJobs)
	}
}

// BenchmarkExpireJobs: 20,000 jobs expiring together, past the bound of
// kept final maps (4,096).
func BenchmarkExpireJobs(b *testing.B) {
	for range b.N {
		b.StopTimer()
		c := expiringJobs(b, 20000)
		b.StartTimer()
		c.expireJobs(time.Now().Add(time.Hour))
	}
}
