package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	dataclient "github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// syncKeeping brings a node's job table up to date as syncNode does, each
// heartbeat reporting keep as the persisted values of ended jobs it keeps.
func syncKeeping(t *testing.T, c *Controller, addr string, keep []wire.HeldJob) {
	t.Helper()
	var since uint64
	for i := 0; i < 20; i++ {
		hb := &wire.Heartbeat{Addr: addr, Since: since, Persisted: keep, PersistedJobs: uint64(len(keep))}
		for _, h := range keep {
			hb.PersistedBytes += h.Bytes
		}
		ack, err := c.Heartbeat(hb)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Rev == since && !ack.More {
			return
		}
		since = ack.Rev
	}
	t.Fatalf("node %s did not sync in 20 heartbeats", addr)
}

// expireNow registers a job whose token lives a millisecond and has the
// controller expire it, returning the map it was registered with.
func expireNow(t *testing.T, c *Controller, name string) *wire.PlacementMap {
	t.Helper()
	m, err := c.RegisterJobFrom("", &wire.JobRegister{Name: name, Hints: wire.JobHints{Lambdas: 20}, TTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	c.expireJobs(time.Now())
	if _, err := c.GetMap(m.Job, m.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Fatalf("GetMap of the expired job %s: %v, want unknown job", m.Job, err)
	}
	return m
}

// wantFinal checks that GetMapOrEnded answers the ended job's final map,
// marked ended, with its nodes, weights and epoch.
func wantFinal(t *testing.T, c *Controller, m *wire.PlacementMap) {
	t.Helper()
	got, err := c.GetMapOrEnded(m.Job, m.Token)
	if err != nil {
		t.Fatalf("GetMapOrEnded of the ended job %s with its token: %v", m.Job, err)
	}
	if !got.Ended || got.Job != m.Job || got.Epoch != m.Epoch || got.Tier != m.Tier || string(got.Token) != string(m.Token) {
		t.Fatalf("final map %+v, want job %s epoch %d tier %d, its token, ended", got, m.Job, m.Epoch, m.Tier)
	}
	if len(got.Nodes) != len(m.Nodes) {
		t.Fatalf("final map nodes %+v, want %+v", got.Nodes, m.Nodes)
	}
	for i := range m.Nodes {
		if got.Nodes[i].Addr != m.Nodes[i].Addr || got.Nodes[i].Weight != m.Nodes[i].Weight || got.Nodes[i].State != wire.NodeActive {
			t.Fatalf("final map node %d: %+v, want %+v (active)", i, got.Nodes[i], m.Nodes[i])
		}
	}
}

// keptMap reports whether the controller keeps the final map of job.
func keptMap(c *Controller, job string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended.ids[job] != nil
}

// sweepNow runs the sweeper's pass and saves what it changed, as its tick
// does.
func sweepNow(t *testing.T, c *Controller) {
	t.Helper()
	c.sweep(time.Now())
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
}

func wantUnknown(t *testing.T, c *Controller, job string, tok []byte, what string) {
	t.Helper()
	if m, err := c.GetMapOrEnded(job, tok); !errors.Is(err, wire.ErrUnknownJob) {
		t.Fatalf("GetMapOrEnded of %s with %s: %+v %v, want unknown job", job, what, m, err)
	}
}

// wantBadToken checks that tok, which does not verify for job, gets the
// answer it gets for a job that never existed: bad token.
func wantBadToken(t *testing.T, c *Controller, job string, tok []byte, what string) {
	t.Helper()
	for _, id := range []string{job, "never-1"} {
		if m, err := c.GetMapOrEnded(id, tok); !errors.Is(err, wire.ErrBadToken) {
			t.Fatalf("GetMapOrEnded of %s with %s: %+v %v, want bad token", id, what, m, err)
		}
	}
}

// TestExpiredJobKeepsItsFinalMap: a job whose token expired ended
// without anyone receiving its credential; its persisted values stay on
// its nodes. The controller answers its final map to its token (expired)
// when asked for an ended job's map, and the same unknown job as for any
// unknown job to a request that does not ask (older clients), to a token
// of another gen, to another job's token and to garbage. Deregistering it
// says it ended and how. The map survives a restart, and is dropped once
// no node of it reports the job's persisted values (and stays dropped
// after a restart). On the old code an expired job's map was gone: no
// call found its persisted values from its token.
func TestExpiredJobKeepsItsFinalMap(t *testing.T) {
	r := newRestartable(t, Config{}, true)
	c := r.ctl
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	mustRegister(t, c, dramNode(b, 1<<30, 8000))
	m := expireNow(t, c, "ttljob")
	if len(m.Nodes) != 2 {
		t.Fatalf("job map %+v: want both nodes", m.Nodes)
	}
	other, err := c.RegisterJob("other", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	wantFinal(t, c, m)
	claims, _ := token.ParseJob(testSecret, []byte(m.Job), m.Token)
	wantUnknown(t, c, m.Job, token.SignJob(testSecret, []byte(m.Job), token.Claims{Gen: claims.Gen + 1}), "a token of the next gen")
	wantBadToken(t, c, m.Job, other.Token, "another job's token")
	wantBadToken(t, c, m.Job, []byte("garbage"), "garbage")
	_, err = c.DeregisterJob(t.Context(), m.Job, m.Token)
	if !errors.Is(err, wire.ErrUnknownJob) || !strings.Contains(err.Error(), "token expired") || !strings.Contains(err.Error(), "persist") {
		t.Fatalf("deregistering the expired job: %v, want unknown job saying its token expired and its persisted values stay", err)
	}

	// Node a keeps a persisted value of the job, node b none: kept.
	syncKeeping(t, c, a, []wire.HeldJob{{Job: m.Job, Bytes: 6}})
	syncKeeping(t, c, b, nil)
	sweepNow(t, c)
	wantFinal(t, c, m)

	c = r.restart()
	if _, err := c.GetMap(m.Job, m.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Fatalf("GetMap (no EndedOK) after the restart: %v, want unknown job", err)
	}
	// Restored: kept until the nodes have synced with this run.
	syncKeeping(t, c, b, nil)
	sweepNow(t, c)
	if !keptMap(c, m.Job) {
		t.Fatal("the restored final map was dropped before node a synced with the restarted controller")
	}
	syncKeeping(t, c, a, []wire.HeldJob{{Job: m.Job, Bytes: 6}})
	sweepNow(t, c)
	wantFinal(t, c, m)

	// The value is deleted: node a reports none.
	syncKeeping(t, c, a, nil)
	sweepNow(t, c)
	wantUnknown(t, c, m.Job, m.Token, "its token, once no node keeps its values")
	c = r.restart()
	wantUnknown(t, c, m.Job, m.Token, "its token, after a restart, once no node kept its values")
}

// TestEndedMapKeptWhileANodeMayKeep: a final map stays while a node of it
// may keep the job's values though its report does not name the job: its
// list is truncated (more jobs counted than named), it is dead, or it has
// not applied the revocation; it goes once its report is whole and
// without the job. A deregistered job's map is kept as an expired one's.
func TestEndedMapKeptWhileANodeMayKeep(t *testing.T) {
	c := newTest(t, Config{})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	m, err := c.RegisterJob("dereg", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	sweepNow(t, c) // node a has not heard of the revocation
	wantFinal(t, c, m)
	// Synced, its report names one job of two: the other may be this one.
	var since uint64
	for i := 0; i < 20; i++ {
		ack, err := c.Heartbeat(&wire.Heartbeat{Addr: a, Since: since, Persisted: []wire.HeldJob{{Job: "big-1", Bytes: 1 << 20}},
			PersistedJobs: 2, PersistedBytes: 1<<20 + 1})
		if err != nil {
			t.Fatal(err)
		}
		if ack.Rev == since && !ack.More {
			break
		}
		since = ack.Rev
	}
	sweepNow(t, c)
	wantFinal(t, c, m)
	c.mu.Lock()
	c.setStateLocked(c.nodes[a], wire.NodeDead, "test")
	c.mu.Unlock()
	sweepNow(t, c)
	wantFinal(t, c, m)
	syncKeeping(t, c, a, []wire.HeldJob{{Job: "big-1", Bytes: 1 << 20}})
	sweepNow(t, c)
	wantUnknown(t, c, m.Job, m.Token, "its token, once its node's whole report leaves it out")
}

// TestEndedMapsBounded: beyond Config.MaxEndedJobs the oldest final map
// is forgotten; the newer ones answer.
func TestEndedMapsBounded(t *testing.T) {
	c := newTest(t, Config{MaxEndedJobs: 2})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	var ms []*wire.PlacementMap
	for i := 0; i < 3; i++ {
		ms = append(ms, expireNow(t, c, "b"))
	}
	wantUnknown(t, c, ms[0].Job, ms[0].Token, "its token, the oldest beyond the bound")
	wantFinal(t, c, ms[1])
	wantFinal(t, c, ms[2])
}

// TestEndedMapWaitsForTheEndToReachItsNodes: the final map is answered
// once the job's live nodes have applied its end; before, a node holding
// the job live with its token expired refuses reads of its values, which
// an ended job's handle takes for "none here" (a listing comes up short).
func TestEndedMapWaitsForTheEndToReachItsNodes(t *testing.T) {
	// Heartbeats every 10 s: the wait's bound (confirmWait) is 30 s.
	c := newTest(t, Config{HeartbeatInterval: 10 * time.Second})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	syncKeeping(t, c, a, nil)
	m := expireNow(t, c, "wait")
	got := endedMapAsync(c, m)
	select {
	case err := <-got:
		t.Fatalf("answered (%v) before the node applied the job's end", err)
	case <-time.After(200 * time.Millisecond):
	}
	syncKeeping(t, c, a, []wire.HeldJob{{Job: m.Job, Bytes: 6}})
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not answered 10 s after the node applied the job's end")
	}
}

// TestEndedMapDoesNotWaitForANodeThatAnsweredItsDrop (a new user's
// trial, 2026-12-08): a node that answered the deregistration's drop
// order with a proved count of what it keeps has applied the job's end,
// whatever revision its table is at: the final map does not wait for its
// next heartbeat. Before, open_credential right after a deregistration
// took 1.9-2.0 s every time.
func TestEndedMapDoesNotWaitForANodeThatAnsweredItsDrop(t *testing.T) {
	c := newTest(t, Config{HeartbeatInterval: 10 * time.Second}) // the wait's bound: 30 s
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	syncKeeping(t, c, a, nil)
	m := expireNow(t, c, "answered")
	c.noteKept(a, m.Job, dataclient.Dropped{Kept: 6, KeptProved: true})
	got := endedMapAsync(c, m)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the final map waited for the heartbeat of a node that had answered the job's drop order")
	}
}

// TestForgottenJobSaysHowItEnded (new user's trial): once an ended job's
// final map is no longer kept (its node synced, nothing persisted), its
// own token still learns that it ended, and how: its token's expiry, or
// deregistration (or, without a state store, a restart). Another token
// still gets "bad token". Before, every one of them read "job ID is not
// registered", as for a mistyped id.
func TestForgottenJobSaysHowItEnded(t *testing.T) {
	c := newTest(t, Config{})
	a := "127.0.0.1:7001"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	expired := expireNow(t, c, "ttl")
	dereg, err := c.RegisterJob("dereg", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeregisterJob(t.Context(), dereg.Job, dereg.Token); err != nil {
		t.Fatal(err)
	}
	syncKeeping(t, c, a, nil)
	sweepNow(t, c)
	for _, w := range []struct {
		m    *wire.PlacementMap
		says string
	}{
		{expired, "ended when its token expired at "},
		{dereg, "was deregistered, or this controller, which keeps no state, restarted"},
		// The nodes keep a job's data through such a restart for the
		// orphan grace (before, this said only "was dropped").
		{dereg, "the nodes drop it once they have reported it for the controller's --orphan-grace"},
	} {
		if keptMap(c, w.m.Job) {
			t.Fatalf("the final map of %s is still kept", w.m.Job)
		}
		wantUnknown(t, c, w.m.Job, w.m.Token, "its token")
		_, err := c.GetMapOrEnded(w.m.Job, w.m.Token)
		if !strings.Contains(err.Error(), w.says) || !strings.Contains(err.Error(), "no credential can be made for it now") {
			t.Errorf("GetMapOrEnded of the forgotten job %s: %v; want it to say it %s", w.m.Job, err, w.says)
		}
	}
	wantBadToken(t, c, expired.Job, dereg.Token, "another job's token")
}

// endedMapAsync asks c for m's job's final map (GetMapOrEnded) on a
// goroutine of its own, and delivers its error, or one when the map is
// not marked ended.
func endedMapAsync(c *Controller, m *wire.PlacementMap) <-chan error {
	got := make(chan error, 1)
	go func() {
		fm, err := c.GetMapOrEnded(m.Job, m.Token)
		if err == nil && !fm.Ended {
			err = errors.New("not marked ended")
		}
		got <- err
	}()
	return got
}
