package controller

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestBusyTenantLeavesOthersTheirShare (hostile trial, 2026-12-06): a
// tenant whose connections fill MaxConns and keep asking (none idle, none
// silent) no longer keeps another tenant off the controller: the other's
// new connection takes the place of one of the flooder's, and the
// flooder's next one is refused. Before, alice was refused "N
// connections, none idle" 62 times of 62 while mallory's 1,100
// connections each asked for a profile every 400 ms.
func TestBusyTenantLeavesOthersTheirShare(t *testing.T) {
	busyTenantLeavesShare(t, func(c *Config) { c.MaxConns, c.MaxConnsPerPeer = fairSlots, -1 }, "MaxConns")
}

// TestBusyTenantLeavesOthersTheirShareOfAPeer (hostile trial,
// 2026-12-08): the same within one peer's MaxConnsPerPeer: a tenant whose
// connections fill its address's bound and keep asking no longer keeps
// another tenant from that address (lambdas behind one NAT) off the
// controller. Before, the other's connection, over the peer's bound, was
// never admitted: 10 registrations of 10 refused.
func TestBusyTenantLeavesOthersTheirShareOfAPeer(t *testing.T) {
	busyTenantLeavesShare(t, func(c *Config) { c.MaxConns, c.MaxConnsPerPeer = 1000, fairSlots }, "MaxConnsPerPeer")
}

// fairSlots is the connections mallory fills in busyTenantLeavesShare.
const fairSlots = 6

// busyTenantLeavesShare has mallory fill fairSlots connections, the bound
// cfg sets, each asking every 20 ms; then alice, from the same address,
// registers and deregisters a job, and another connection of mallory's
// is refused naming limit.
func busyTenantLeavesShare(t *testing.T, cfg func(*Config), limit string) {
	t.Helper()
	r := newTenantRigWith(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for range fairSlots {
		mc := r.client("mallory")
		if _, err := mc.JobProfile(ctx, "nothing"); wire.CodeOf(err) == wire.CodeLimit {
			t.Fatalf("mallory's connections below %s: %v", limit, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, _ = mc.JobProfile(ctx, "nothing")
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	waitPlain(t, r.c, fairSlots)

	rc, done := context.WithTimeout(ctx, 10*time.Second)
	defer done()
	alice := r.clientOnce("alice")
	m, err := alice.RegisterJob(rc, "sort", wire.JobHints{})
	if err != nil {
		t.Fatalf("alice's registration beside mallory's busy connections at %s: %v; want it served", limit, err)
	}
	if _, err := alice.DeregisterJob(rc, m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	more := r.clientOnce("mallory")
	_, err = more.JobProfile(rc, "nothing")
	if wire.CodeOf(err) != wire.CodeLimit || !strings.Contains(err.Error(), "("+limit+" ") {
		t.Fatalf("another connection of mallory's, who holds the most: %v; want CodeLimit naming %s", err, limit)
	}
}

// clientOnce is r.client, but its calls are not tried again when the
// controller refuses its connection.
func (r *tenantRig) clientOnce(member string) *metaclient.Client {
	cfg, err := pki.ClientConfig(r.dir, member)
	if err != nil {
		r.t.Fatal(err)
	}
	mc := metaclient.New(r.addr, metaclient.Options{TLS: cfg, Logger: quietLog, RetryFor: -1})
	r.t.Cleanup(func() { mc.Close() })
	return mc
}

// waitPlain waits until c's server counts n connections against MaxConns.
func waitPlain(t *testing.T, c *Controller, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c.srv.mu.Lock()
		plain := c.srv.plain
		c.srv.mu.Unlock()
		if plain == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections counted by MaxConns, want %d", plain, n)
		}
	}
}

// TestProbationEvictsThePeerHoldingMost: with every probation slot taken,
// a newcomer takes the place of the oldest probation connection of the
// address holding the most of them, not of the oldest of all. Before, a
// hostile re-check's churn of silent connections from three addresses
// closed another tenant's connections during their TLS handshake (6 of
// 39 registrations went through): the victim's was the oldest.
func TestProbationEvictsThePeerHoldingMost(t *testing.T) {
	var s server
	s.init(quietLog)
	now := time.Now()
	add := func(peer string, at time.Time) net.Conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		s.conns[a] = &connInfo{peer: peer, owner: peer, last: at, prob: true}
		s.peers[peer]++
		s.onProb++
		return a
	}
	victim := add("10.0.0.1", now.Add(-time.Second))
	for i := range nodeProbation - 1 {
		add("10.0.0.2", now.Add(time.Duration(i)*time.Millisecond))
	}
	s.mu.Lock()
	s.evictProbationLocked()
	s.mu.Unlock()
	if _, ok := s.conns[victim]; !ok {
		t.Fatal("the lone probation connection of 10.0.0.1, the oldest, was evicted; want one of 10.0.0.2's")
	}
	if s.peers["10.0.0.2"] != nodeProbation-2 || s.onProb != nodeProbation-1 {
		t.Fatalf("10.0.0.2 holds %d, %d on probation; want %d and %d", s.peers["10.0.0.2"], s.onProb, nodeProbation-2, nodeProbation-1)
	}
}

// TestAdmittedOnFairShareIsBusy: a connection admitted off probation by
// its first request (admitFair) counts as busy until that request's reply,
// so that no eviction at MaxConns closes it meanwhile. Before, it counted
// as idle from its admission: a registration that took over a second
// (the re-check's ran up to 3.4 s under a flood) could be closed by the
// next newcomer, and its client read "outcome unknown: EOF".
func TestAdmittedOnFairShareIsBusy(t *testing.T) {
	c := newTest(t, Config{MaxConns: 3, MaxConnsPerPeer: -1})
	s := &c.srv
	add := func(owner string, prob bool) net.Conn {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		s.mu.Lock()
		s.conns[a] = &connInfo{peer: owner, owner: owner, last: time.Now(), prob: prob}
		s.peers[owner]++
		if prob {
			s.onProb++
		} else {
			s.plain++
		}
		s.mu.Unlock()
		return a
	}
	for range 3 {
		add("10.0.0.2", false)
	}
	newcomer := add("10.0.0.1", true)
	if !c.admitFair(newcomer) {
		t.Fatal("a probation connection of an owner with none was not admitted beside an owner with 3")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.conns[newcomer].busy {
		t.Fatal("admitted connection not busy while its first request is served")
	}
	if !s.evictIdleLocked(time.Now().Add(time.Minute)) {
		t.Fatal("no idle connection evicted a minute on")
	}
	if _, ok := s.conns[newcomer]; !ok {
		t.Fatal("the admitted connection, its first request under way, was evicted as idle")
	}
}
