package controller

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestEndedMapKeepsItsLostNodes: a job's map records the nodes that left
// it dead (wire.PlacementMap.Lost), so a client reading a key whose owner
// was such a node answers "lost" (recompute it) instead of "not found"
// (package pocket, lost.go). An ended job's persisted values are read by
// the final map the controller kept, so that map must carry them too. On
// the code under test the final map (endedJob) keeps nodes, weights and
// roles but no lost nodes: a persisted value that went with a dead node
// reads through the job's token as not found, a definite "never written,
// or deleted", while the live job's handle read it as lost.
func TestEndedMapKeepsItsLostNodes(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, ForgetAfter: time.Hour, DeadNodeGrace: time.Minute})
	a, b := "127.0.0.1:7001", "127.0.0.1:7002"
	mustRegister(t, c, dramNode(a, 1<<30, 8000))
	mustRegister(t, c, dramNode(b, 1<<30, 8000))
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 2 {
		t.Fatalf("job map %+v: want both nodes", m.Nodes)
	}
	if err := c.SetNodeState(b, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	sweepPastGrace(c)
	syncKeeping(t, c, a, nil)
	live, err := c.GetMap(m.Job, m.Token)
	if err != nil || len(live.Lost) != 1 || live.Lost[0].Addr != b {
		t.Fatalf("live map after %s left it dead: %+v %v; want %s lost", b, live, err, b)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	syncKeeping(t, c, a, []wire.HeldJob{{Job: m.Job, Bytes: 6}})
	final, err := c.GetMapOrEnded(m.Job, m.Token)
	if err != nil || !final.Ended {
		t.Fatalf("final map: %+v %v", final, err)
	}
	if len(final.Lost) != 1 || final.Lost[0].Addr != b || final.Lost[0].Epoch != live.Lost[0].Epoch {
		t.Fatalf("final map's lost nodes %+v; want the live map's %+v", final.Lost, live.Lost)
	}
}

// TestEndedJobsLostNodeDropsItsPersistedValuesWhenBack: a node the job
// lost is away while the job ends, past Config.ForgetAfter before and
// after. It stays known (a live job, then the job's kept final map, names
// it lost), the final map is kept for it, and when it is back and reports
// the job's persisted values (which it keeps retired, where no credential
// reaches them) it is ordered to drop them, once per report until the
// retry is due. On the old code the node was forgotten, the final map
// dropped, and no order sent: the values stayed for good.
func TestEndedJobsLostNodeDropsItsPersistedValuesWhenBack(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, ForgetAfter: time.Minute, DeadNodeGrace: time.Second})
	a, b, m := jobLosingANode(t, c)
	c.sweep(time.Now().Add(5 * time.Minute)) // past ForgetAfter, the job live
	if !known(c, b.Addr) {
		t.Fatal("a lost node of a live job was forgotten")
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	c.sweep(time.Now().Add(10 * time.Minute)) // past ForgetAfter, the job ended
	if !known(c, b.Addr) || !keptMap(c, m.Job) {
		t.Fatalf("after the job ended: node known %v, final map kept %v; want both", known(c, b.Addr), keptMap(c, m.Job))
	}
	c.mu.Lock()
	c.lostDrops = nil // watch only what the return adds
	c.mu.Unlock()
	keep := []wire.HeldJob{{Job: m.Job, Bytes: 6}}
	for range 3 {
		c.heartbeat(&wire.Heartbeat{Addr: b.Addr, Persisted: keep, PersistedJobs: 1, PersistedBytes: 6})
	}
	c.mu.Lock()
	drops := slices.Clone(c.lostDrops)
	c.mu.Unlock()
	if len(drops) != 1 || drops[0] != (lostDrop{addr: b.Addr, job: m.Job}) {
		t.Fatalf("drop orders %+v after three heartbeats reporting the values; want one for %s's values of %s", drops, b.Addr, m.Job)
	}
	// Once the node reports them gone, nothing needs the final map.
	syncKeeping(t, c, b.Addr, nil)
	syncKeeping(t, c, a.Addr, nil)
	c.sweep(time.Now())
	if keptMap(c, m.Job) {
		t.Fatal("the final map is kept after its lost node dropped the values")
	}
}

// TestEndedJobsMemberNodeGetsNoDropOrder: persisted values an ended job
// kept on a node of its final map are the job's to read: no drop order
// goes there, even if the map names the node lost too (taken back).
func TestEndedJobsMemberNodeGetsNoDropOrder(t *testing.T) {
	c := deadTest(t, time.Minute)
	a, _, m := jobLosingANode(t, c)
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.lostDrops = nil
	c.ended.ids[m.Job].lost = append(c.ended.ids[m.Job].lost, wire.LostNode{Addr: a.Addr, Weight: 1, Epoch: 2})
	c.mu.Unlock()
	c.heartbeat(&wire.Heartbeat{Addr: a.Addr, Persisted: []wire.HeldJob{{Job: m.Job, Bytes: 6}}, PersistedJobs: 1, PersistedBytes: 6})
	c.mu.Lock()
	n := len(c.lostDrops)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d drop orders to a node of the ended job's final map", n)
	}
}

func known(c *Controller, addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.nodes[addr]
	return ok
}

// TestLostNodeForgottenAfterForgetLostAfter: a lost node that stays dead
// is forgotten after Config.ForgetLostAfter, and the final map kept for
// its return goes with it, so a node that never comes back does not stay
// in the registry and the state for good.
func TestLostNodeForgottenAfterForgetLostAfter(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, ForgetAfter: time.Minute, ForgetLostAfter: 30 * time.Minute, DeadNodeGrace: time.Second})
	a, b, m := jobLosingANode(t, c)
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	syncKeeping(t, c, a.Addr, nil)
	c.sweep(time.Now().Add(20 * time.Minute))
	if !known(c, b.Addr) || !keptMap(c, m.Job) {
		t.Fatalf("within ForgetLostAfter: node known %v, final map kept %v; want both", known(c, b.Addr), keptMap(c, m.Job))
	}
	c.sweep(time.Now().Add(40 * time.Minute))
	if known(c, b.Addr) || keptMap(c, m.Job) {
		t.Fatalf("past ForgetLostAfter: node known %v, final map kept %v; want neither", known(c, b.Addr), keptMap(c, m.Job))
	}
}

// endedOnTwo ends a job registered on two nodes of incarnations 1 and 2,
// both of which report its persisted values; it returns the nodes and the
// job's map.
func endedOnTwo(t *testing.T, c *Controller, name string) (a, b *wire.NodeRegister, m *wire.PlacementMap) {
	t.Helper()
	return endedOnTwoFrom(t, c, "", name)
}

// endedOnTwoFrom is endedOnTwo of a job client registered ("": no
// client, as RegisterJob).
func endedOnTwoFrom(t *testing.T, c *Controller, client, name string) (a, b *wire.NodeRegister, m *wire.PlacementMap) {
	t.Helper()
	a, b = dramNode("127.0.0.1:7001", 1<<30, 8000), dramNode("127.0.0.1:7002", 1<<30, 8000)
	a.Incarnation, b.Incarnation = 1, 2
	mustRegister(t, c, a)
	mustRegister(t, c, b)
	m, err := c.RegisterJobFrom(client, &wire.JobRegister{Name: name})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	keep := []wire.HeldJob{{Job: m.Job, Bytes: 6}}
	syncKeeping(t, c, a.Addr, keep)
	syncKeeping(t, c, b.Addr, keep)
	return a, b, m
}

// restart registers a new process (incarnation inc) at reg's address,
// confirmed.
func restart(t *testing.T, c *Controller, reg *wire.NodeRegister, inc uint64) {
	t.Helper()
	r := *reg
	r.Incarnation = inc
	if _, err := c.registerNode(&r, true); err != nil {
		t.Fatal(err)
	}
}

// TestEndedJobsNodeRestartNamesItLost: a node of an ended job's final
// map that restarts, having reported the job's persisted values, leaves
// the map's nodes for its lost ones, so a credential's reads of its keys
// answer "lost". With every node restarted no value is left, and the map
// is still kept, to answer "lost" rather than an unknown job. On the old
// code the map kept the restarted node as a member (its keys read "not
// found") and was dropped once no node kept a value.
func TestEndedJobsNodeRestartNamesItLost(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour})
	a, b, m := endedOnTwo(t, c, "j")
	restart(t, c, b, 12)
	final, err := c.GetMapOrEnded(m.Job, m.Token)
	if err != nil || len(final.Nodes) != 1 || final.Nodes[0].Addr != a.Addr ||
		len(final.Lost) != 1 || final.Lost[0].Addr != b.Addr || final.Lost[0].Epoch != m.Epoch+1 {
		t.Fatalf("final map after %s restarted: %+v %v; want %s a node, %s lost at epoch %d", b.Addr, final, err, a.Addr, b.Addr, m.Epoch+1)
	}
	restart(t, c, a, 11)
	syncKeeping(t, c, a.Addr, nil)
	syncKeeping(t, c, b.Addr, nil)
	sweepNow(t, c)
	final, err = c.GetMapOrEnded(m.Job, m.Token)
	if err != nil || len(final.Nodes) != 0 || len(final.Lost) != 2 {
		t.Fatalf("final map after both nodes restarted: %+v %v; want both lost, kept", final, err)
	}
}

// TestEndedJobsNodeThatHeldNoneStaysAMember: a node that reported none of
// the ended job's persisted values (synced past its end) holds none: its
// restart loses nothing, and the final map keeps it as a member.
func TestEndedJobsNodeThatHeldNoneStaysAMember(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour})
	_, b, m := endedOnTwo(t, c, "j")
	syncKeeping(t, c, b.Addr, nil)
	restart(t, c, b, 12)
	final, err := c.GetMapOrEnded(m.Job, m.Token)
	if err != nil || len(final.Nodes) != 2 || len(final.Lost) != 0 {
		t.Fatalf("final map after a node that held none restarted: %+v %v; want both nodes, none lost", final, err)
	}
}

// TestLostOnlyFinalMapsGoFirstOverTheBound: over Config.MaxEndedJobs,
// a final map kept only to answer "lost" goes before one whose values
// nodes still keep.
func TestLostOnlyFinalMapsGoFirstOverTheBound(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, MaxEndedJobs: 1})
	a, b, m := endedOnTwo(t, c, "j")
	restart(t, c, a, 11)
	restart(t, c, b, 12)
	syncKeeping(t, c, a.Addr, nil)
	syncKeeping(t, c, b.Addr, nil)
	sweepNow(t, c)
	if !keptMap(c, m.Job) {
		t.Fatal("the lost-only final map was not kept")
	}
	k, err := c.RegisterJob("k", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeregisterJob(t.Context(), k.Job, k.Token); err != nil {
		t.Fatal(err)
	}
	if keptMap(c, m.Job) || !keptMap(c, k.Job) {
		t.Fatalf("over the bound of 1: lost-only map kept %v, the new one kept %v; want the new one only", keptMap(c, m.Job), keptMap(c, k.Job))
	}
}

// TestNodeRetiredLostIsToldToStopPastForgetAfter: a node retired with
// values unmoved (died while draining: maybe frozen) is remembered for
// ForgetLostAfter: its process coming back later than ForgetAfter is told
// to stop serving, while a new process there registers. On the old code
// it was forgotten after ForgetAfter and registered again with what it
// held, the persisted values of jobs that ended meanwhile included.
func TestNodeRetiredLostIsToldToStopPastForgetAfter(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, ForgetAfter: time.Minute, ForgetLostAfter: time.Hour})
	addr := "127.0.0.1:7001"
	c.mu.Lock()
	c.gone[addr] = retiredNode{at: time.Now(), inc: 7, why: "died while draining", lost: true}
	c.mu.Unlock()
	c.sweep(time.Now().Add(10 * time.Minute))
	old := dramNode(addr, 1<<30, 8000)
	old.Incarnation = 7
	if _, err := c.RegisterNode(old); !errors.Is(err, wire.ErrDraining) {
		t.Fatalf("the retired process back 10 minutes on: %v; want told to stop serving", err)
	}
	fresh := dramNode(addr, 1<<30, 8000)
	fresh.Incarnation = 8
	mustRegister(t, c, fresh)
	c.mu.Lock()
	c.gone["127.0.0.1:7002"] = retiredNode{at: time.Now(), inc: 9, why: "drained", lost: false}
	c.mu.Unlock()
	c.sweep(time.Now().Add(2 * time.Minute))
	c.mu.Lock()
	_, kept := c.gone["127.0.0.1:7002"]
	c.mu.Unlock()
	if kept {
		t.Fatal("a node drained with its data moved is remembered past ForgetAfter")
	}
}

// TestEndedJobsLostNodeDropsWhenTheListLeavesItOut: a returned lost node
// that keeps persisted values of more ended jobs than its heartbeat names
// (the largest wire.MaxPersistedJobs) is ordered to drop the ended job
// that lost it, named or not; once it answers that it keeps none, it is
// not ordered again, and the final map is not kept for it. On the old
// code no order went: the job was not among the 64 named.
func TestEndedJobsLostNodeDropsWhenTheListLeavesItOut(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, ForgetAfter: time.Minute, DeadNodeGrace: time.Second})
	a, b, m := jobLosingANode(t, c)
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	syncKeeping(t, c, a.Addr, nil)
	c.mu.Lock()
	c.lostDrops = nil
	c.mu.Unlock()
	largest := make([]wire.HeldJob, wire.MaxPersistedJobs)
	for i := range largest {
		largest[i] = wire.HeldJob{Job: fmt.Sprintf("big-%d", i), Bytes: 3000}
	}
	hb := &wire.Heartbeat{Addr: b.Addr, Incarnation: 5, Persisted: largest, PersistedJobs: wire.MaxPersistedJobs + 1}
	c.heartbeat(hb)
	c.mu.Lock()
	drops := slices.Clone(c.lostDrops)
	c.lostDrops = nil
	c.mu.Unlock()
	if len(drops) != 1 || drops[0] != (lostDrop{addr: b.Addr, job: m.Job}) {
		t.Fatalf("drop orders %+v; want one for %s's values of %s, which its list leaves out", drops, b.Addr, m.Job)
	}
	c.noteEndedDropped(m.Job, b.Addr, 5)
	c.mu.Lock()
	clear(c.endedDrops)
	c.mu.Unlock()
	c.heartbeat(hb)
	c.sweep(time.Now())
	c.mu.Lock()
	n := len(c.lostDrops)
	c.mu.Unlock()
	if n != 0 || keptMap(c, m.Job) {
		t.Fatalf("after the node dropped them: %d drop orders, final map kept %v; want none, not kept", n, keptMap(c, m.Job))
	}
}

// TestFinalMapOfLostNodesOnlySurvivesARestart: an ended job's final map
// whose every node was lost since it ended (no node, lost ones only) is
// saved and restored as such, so its keys still answer lost after a
// controller restart; the nodes of a final map keep their Since across
// it. On the code before, the restore took a record without nodes for a
// plain tombstone and dropped the map (a hostile trial: "not found" and
// ls exit 0 after the restart), and Since was not kept.
func TestFinalMapOfLostNodesOnlySurvivesARestart(t *testing.T) {
	r := newRestartable(t, Config{DeadAfter: time.Hour}, true)
	a, b, m := endedOnTwo(t, r.ctl, "j")
	r.ctl.mu.Lock()
	r.ctl.ended.ids[m.Job].nodes[1].Since = 4 // as a node that joined at epoch 4
	r.ctl.mu.Unlock()
	restart(t, r.ctl, a, 11)
	if err := r.ctl.flush(); err != nil {
		t.Fatal(err)
	}
	r.restart()
	final, err := r.ctl.GetMapOrEnded(m.Job, m.Token)
	if err != nil || len(final.Nodes) != 1 || final.Nodes[0].Addr != b.Addr || final.Nodes[0].Since != 4 || len(final.Lost) != 1 {
		t.Fatalf("final map after a restart: %+v %v; want %s (since 4) and %s lost", final, err, b.Addr, a.Addr)
	}
	restart(t, r.ctl, b, 12)
	if err := r.ctl.flush(); err != nil {
		t.Fatal(err)
	}
	r.restart()
	final, err = r.ctl.GetMapOrEnded(m.Job, m.Token)
	if err != nil || len(final.Nodes) != 0 || len(final.Lost) != 2 {
		t.Fatalf("final map of lost nodes only after a restart: %+v %v; want both lost", final, err)
	}
}

// TestFinalNodesKeepSince: a job's final map keeps each node's Since (the
// first epoch at which it held its whole share): placement over the lost
// nodes leaves out a node that came after a loss. On the code before, it
// was 0 in every final map, and a credential that took the controller's
// final map named lost values "not found" (a hostile trial: 14 of 52).
func TestFinalNodesKeepSince(t *testing.T) {
	got := finalNodes([]wire.MapNode{{Addr: "a", Weight: 0.5}, {Addr: "c", Weight: 0.5, Since: 5, State: wire.NodeJoining}})
	if got[0].Since != 0 || got[1].Since != 5 || got[1].State != wire.NodeJoining {
		t.Fatalf("final nodes %+v; want c since 5, joining", got)
	}
}

// TestLostOnlyMapOutlivesAnotherClientsFlood: over Config.MaxEndedJobs,
// the maps kept only to answer "lost" go first of the client with the
// most kept maps, not of anyone: a victim's lost-only map stays while an
// attacker's flood of ended jobs (each keeping a persisted value) loses
// its own oldest. On the old code the victim's went first (a hostile
// trial: 4,200 jobs of one client, each persisting a byte, and the
// victim's lost keys read "not found", its listing complete).
func TestLostOnlyMapOutlivesAnotherClientsFlood(t *testing.T) {
	c := newTest(t, Config{DeadAfter: time.Hour, MaxEndedJobs: 3})
	a, b, victim := endedOnTwoFrom(t, c, "192.0.2.1", "victim")
	restart(t, c, a, 11)
	restart(t, c, b, 12)
	var held []wire.HeldJob
	syncKeeping(t, c, a.Addr, held)
	syncKeeping(t, c, b.Addr, held)
	sweepNow(t, c)
	if !keptMap(c, victim.Job) {
		t.Fatal("the victim's lost-only final map was not kept")
	}
	var flood []*wire.PlacementMap
	for i := range 5 {
		m, err := c.RegisterJobFrom("198.51.100.7", &wire.JobRegister{Name: fmt.Sprintf("tiny%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
			t.Fatal(err)
		}
		held = append(held, wire.HeldJob{Job: m.Job, Bytes: 1})
		syncKeeping(t, c, a.Addr, held)
		syncKeeping(t, c, b.Addr, held)
		flood = append(flood, m)
	}
	if !keptMap(c, victim.Job) {
		t.Fatal("another client's flood of ended jobs evicted the victim's lost-only final map")
	}
	for i, m := range flood {
		if kept := keptMap(c, m.Job); kept != (i >= 3) {
			t.Errorf("the attacker's map %d of 5 kept %v, want %v (the bound's three: the victim's and the attacker's two newest)", i, kept, i >= 3)
		}
	}
}

// TestEndedJobsDrainedNodeLeavesNotLost: a node draining as its job ends,
// which moved all its data and reports done in a heartbeat from before it
// heard of the end, is retired. It keeps none of the job's persisted
// values (it moved them as a live job's), so the final map lets it go as
// a node that left, not lost; a node that reports keeping them, drained
// with the discard, is lost. On the old code both were listed lost: a new
// user's trial read "lost" for keys never written, its values all moved.
func TestEndedJobsDrainedNodeLeavesNotLost(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keeps   bool // b reports keeping the job's persisted values
		wantOut bool // b is listed lost
	}{{"moved", false, false}, {"kept-discarded", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTest(t, Config{DeadAfter: time.Hour})
			a, b := dramNode("127.0.0.1:7001", 1<<30, 8000), dramNode("127.0.0.1:7002", 1<<30, 8000)
			a.Incarnation, b.Incarnation = 1, 2
			mustRegister(t, c, a)
			mustRegister(t, c, b)
			m, err := c.RegisterJobFrom("", &wire.JobRegister{Name: "j"})
			if err != nil || len(m.Nodes) != 2 {
				t.Fatalf("%+v %v", m, err)
			}
			if _, err := c.DrainWith(b.Addr, DrainOptions{Deadline: time.Minute, DiscardPersisted: tc.keeps}); err != nil {
				t.Fatal(err)
			}
			heardAll(t, c)
			ack, err := c.Heartbeat(&wire.Heartbeat{Addr: b.Addr})
			if err != nil {
				t.Fatal(err)
			}
			before := ack.Rev // b's view: the drain, not the job's end
			if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
				t.Fatal(err)
			}
			syncKeeping(t, c, a.Addr, []wire.HeldJob{{Job: m.Job, Bytes: 6}})
			hb := &wire.Heartbeat{Addr: b.Addr, Since: before,
				Tiers:   []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30}},
				Metrics: []wire.Metric{{Name: MetricDrainDone, Value: 1}}}
			if tc.keeps {
				hb.Persisted, hb.PersistedJobs, hb.PersistedBytes = []wire.HeldJob{{Job: m.Job, Bytes: 6}}, 1, 6
			}
			if _, err := c.Heartbeat(hb); err != nil {
				t.Fatal(err)
			}
			c.drainTick(time.Now())
			if st := c.Status(); len(st.Nodes) != 1 {
				t.Fatalf("nodes after the drain: %+v; want %s retired", st.Nodes, b.Addr)
			}
			final, err := c.GetMapOrEnded(m.Job, m.Token)
			if err != nil || !final.Ended || len(final.Nodes) != 1 || final.Nodes[0].Addr != a.Addr || final.Epoch != m.Epoch+1 {
				t.Fatalf("final map: %+v %v; want %s alone at the drain's epoch %d", final, err, a.Addr, m.Epoch+1)
			}
			if lost := len(final.Lost) == 1 && final.Lost[0].Addr == b.Addr; lost != tc.wantOut || len(final.Lost) > 1 {
				t.Fatalf("final map's lost nodes %+v; want %s lost: %v", final.Lost, b.Addr, tc.wantOut)
			}
		})
	}
}
