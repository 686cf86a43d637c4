package controller

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestEndedBoundSparesMapsWithValues: the bound on kept final maps
// (Config.MaxEndedJobs) is for maps that may still find persisted values.
// A job p expires with a persisted value its node reports keeping; job q
// expires with none, and the node has applied q's end and reports only
// p's value, so no node may keep anything of q: its map waits only for the
// sweeper. Then job r ends. With a bound of 2, the map to forget is q's
// (needed by nobody), not p's: forgetting p's leaves its value on the node
// with nobody able to find it (an expiry handed its credential to nobody),
// and holds that node's drain until a discarding drain destroys it. On the
// code under test the bound drops the oldest record first, p's, while q's
// unneeded one still counts: a stream of short-lived jobs that persist
// nothing pushes out every expired job's map whose values are still there.
func TestEndedBoundSparesMapsWithValues(t *testing.T) {
	c := newTest(t, Config{MaxEndedJobs: 2})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	p := expireNow(t, c, "p")
	keep := []wire.HeldJob{{Job: p.Job, Bytes: 6}}
	syncKeeping(t, c, a, keep)
	q := expireNow(t, c, "q")
	syncKeeping(t, c, a, keep) // q's end applied; only p's value kept
	r := expireNow(t, c, "r")
	wantFinal(t, c, p)
	wantFinal(t, c, r)
	if keptMap(c, q.Job) {
		t.Errorf("the final map of %s, whose node applied its end and keeps none of its values, is kept over %s's", q.Job, p.Job)
	}
}

// TestEndedBoundAfterRestartForgetsTheOldestEnd: the bound forgets the
// final map of the job that ended first ("in the order they ended",
// ended.go), also after a restart. Job a registers before job b, b is
// deregistered first, then a. After a restart, job c ends: with a bound
// of 2 the map to forget is b's, which ended first. On the code under
// test the restore queues the records in registration order (by gen), so
// the bound forgets a's, the most recently ended of the two: after a
// restart, which map a flood pushes out depends on when jobs registered,
// and a long job that just ended loses its map first.
func TestEndedBoundAfterRestartForgetsTheOldestEnd(t *testing.T) {
	r := newRestartable(t, Config{MaxEndedJobs: 2}, false)
	c := r.ctl
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	a, err := c.RegisterJob("a", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.RegisterJob("b", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*wire.PlacementMap{b, a} {
		if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct end times
	}
	c = r.restart()
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000)) // heard again: no RestoreSettle wait
	m, err := c.RegisterJob("c", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	if keptMap(c, b.Job) {
		t.Errorf("the final map of %s, which ended first, is kept beyond the bound", b.Job)
	}
	if !keptMap(c, a.Job) {
		t.Errorf("the final map of %s, which ended after %s, is forgotten first", a.Job, b.Job)
	}
}

// TestEndedBoundHoldsAfterARestart: Config.MaxEndedJobs bounds the final
// maps kept, also those a restart restores: a controller restarted with
// a lower bound (or on state a build with a higher default wrote) keeps at
// most its bound. On the code under test the restore enters every stored
// record and the bound is applied only at the next job's end: until then
// the restarted controller keeps, saves and answers all of them.
func TestEndedBoundHoldsAfterARestart(t *testing.T) {
	r := newRestartable(t, Config{}, false)
	c := r.ctl
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	for range 3 {
		expireNow(t, c, "e")
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	r.cfg.MaxEndedJobs = 2
	c = r.restart()
	c.mu.Lock()
	n := len(c.ended.ids)
	c.mu.Unlock()
	if n > 2 {
		t.Fatalf("%d final maps kept after a restart with MaxEndedJobs 2", n)
	}
}

// TestEndedBoundForgetsTheFloodersMaps: past the bound on kept final maps,
// the client that registered the most of them loses its own oldest, so a
// client ending jobs by the hundred does not push out another client's
// map. Here a victim's job expires keeping a persisted value, then an
// attacker's five jobs do the same, with a bound of 3: the victim's map
// stays, the attacker's two oldest go. The old bound forgot the oldest of
// all, the victim's first (a hostile trial: 4,200 registrations from one
// address, and the victim's token stopped opening its values).
func TestEndedBoundForgetsTheFloodersMaps(t *testing.T) {
	c := newTest(t, Config{MaxEndedJobs: 3})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	expireFrom := expirer(t, c, a)
	victim := expireFrom("192.0.2.1", "victim")
	var flood []*wire.PlacementMap
	for i := range 5 {
		flood = append(flood, expireFrom("198.51.100.7", fmt.Sprintf("tiny%d", i)))
	}
	wantFinal(t, c, victim)
	for i, m := range flood {
		if kept := keptMap(c, m.Job); kept != (i >= 3) {
			t.Errorf("the attacker's map %d of 5 kept %v, want %v (the bound's three: the victim's and the attacker's two newest)", i, kept, i >= 3)
		}
	}
}

// TestEndedMapKeepsItsClientOverARestart: the client that registered an
// ended job, which the bound counts by, is in the stored record.
func TestEndedMapKeepsItsClientOverARestart(t *testing.T) {
	r := newRestartable(t, Config{}, false)
	c := r.ctl
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	m, err := c.RegisterJobFrom("192.0.2.1", &wire.JobRegister{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	c = r.restart()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.ended.ids[m.Job]; e == nil || e.client != "192.0.2.1" {
		t.Fatalf("restored final map %+v, want it kept with its client 192.0.2.1", e)
	}
}

// TestEndedBoundCrowdPushesOutItsOwnNewest: clients tied at the most kept
// maps lose the newest first, so a crowd of identities with one map each
// (a hostile trial: 4,096 source addresses, each ending a job that
// persisted a byte) does not push out a map kept longer. On the old code
// the tie went by the client's name, and the victim's map went first.
func TestEndedBoundCrowdPushesOutItsOwnNewest(t *testing.T) {
	c := newTest(t, Config{MaxEndedJobs: 3})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	expireFrom := expirer(t, c, a)
	victim := expireFrom("10.0.0.1", "victim") // its name sorts before the crowd's
	var crowd []*wire.PlacementMap
	for i := range 5 {
		crowd = append(crowd, expireFrom(fmt.Sprintf("198.51.100.%d", i+1), fmt.Sprintf("tiny%d", i)))
	}
	wantFinal(t, c, victim)
	for i, m := range crowd {
		if kept := keptMap(c, m.Job); kept != (i < 2) {
			t.Errorf("the crowd's map %d of 5 kept %v, want %v (the bound's three: the victim's and the crowd's two first)", i, kept, i < 2)
		}
	}
}

// expirer returns a function that registers a job of name from client,
// lets its token expire, and has the node at addr report keeping a
// persisted value of it (and of every job it expired before).
func expirer(t *testing.T, c *Controller, addr string) func(client, name string) *wire.PlacementMap {
	var keep []wire.HeldJob
	return func(client, name string) *wire.PlacementMap {
		t.Helper()
		m, err := c.RegisterJobFrom(client, &wire.JobRegister{Name: name, TTL: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		c.expireJobs(time.Now())
		keep = append(keep, wire.HeldJob{Job: m.Job, Bytes: 6})
		syncKeeping(t, c, addr, keep)
		return m
	}
}

// TestForgottenMapsAreLoggedSpaced (hostile trial, 2026-12-08): the final
// maps the bound forgets are logged one line at most every forgotEvery,
// the next line counting those not logged. Before, each had a line: a
// trial ending jobs by the thousand logged 11,632 of them.
func TestForgottenMapsAreLoggedSpaced(t *testing.T) {
	var log strings.Builder
	c := newTest(t, Config{MaxEndedJobs: 1, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	var keep []wire.HeldJob
	for i := range 6 {
		m := expireNow(t, c, fmt.Sprintf("j%d", i))
		keep = append(keep, wire.HeldJob{Job: m.Job, Bytes: 6})
		syncKeeping(t, c, a, keep) // each keeps a value: no map goes unneeded
	}
	if n := strings.Count(log.String(), "final map is forgotten"); n != 1 {
		t.Fatalf("%d lines for 5 maps forgotten within %v; want 1:\n%s", n, forgotEvery, log.String())
	}
	var f forgotLog
	now := time.Unix(1000, 0)
	for range 4 {
		f.note(now)
	}
	if unsaid, ok := f.note(now.Add(forgotEvery)); !ok || unsaid != 3 {
		t.Fatalf("a line %v after the first: %v, with %d unsaid; want one, counting 3", forgotEvery, ok, unsaid)
	}
}
