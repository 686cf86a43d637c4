package controller

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// restartable runs controllers one after another on one store, as
// `pocket controller --data-dir` restarted on the same directory: each
// restart abandons the running controller without any cleanup (its
// goroutines stop; nothing more reaches the store, as after kill -9) and
// opens a new one on a fresh handle of the same store.
type restartable struct {
	t     *testing.T
	cfg   Config
	open  func() state.Store // a fresh handle (the previous one is dropped)
	ctl   *Controller
	store state.Store
}

func newRestartable(t *testing.T, cfg Config, bolt bool) *restartable {
	r := &restartable{t: t, cfg: cfg}
	if bolt {
		dir := t.TempDir()
		r.open = func() state.Store {
			if r.store != nil {
				r.store.Close() // the process died: the OS releases the file
			}
			s, err := state.OpenBolt(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	} else {
		m := state.NewMemory()
		r.open = func() state.Store { return m }
	}
	t.Cleanup(func() {
		r.ctl.Close()
		r.store.Close()
	})
	r.restart()
	return r
}

func (r *restartable) restart() *Controller {
	r.t.Helper()
	if r.ctl != nil {
		r.ctl.Close()
	}
	r.store = r.open()
	cfg := r.cfg
	cfg.Secret, cfg.Store = testSecret, r.store
	if cfg.Logger == nil {
		cfg.Logger = quietLog
	}
	c, err := New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.ctl = c
	return c
}

// jobSeq is the N of a job id "name-N".
func jobSeq(t *testing.T, id string) uint64 {
	n, err := strconv.ParseUint(id[strings.LastIndexByte(id, '-')+1:], 10, 64)
	if err != nil {
		t.Fatalf("job id %q: %v", id, err)
	}
	return n
}

// TestRestartKeepsJobs (issue 12 item 1): after a restart on the same
// store every job answers its old token with its old map, epoch and
// expiry; it can be deregistered; new jobs get new ids and later gens;
// the nodes are known (no registration needed) in their states; a node's
// job table is brought to the new run by a snapshot listing the old jobs
// with their gens and epochs (so the node keeps them and their data).
func TestRestartKeepsJobs(t *testing.T) {
	for _, bolt := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "bolt"}[bolt], func(t *testing.T) {
			testRestartKeepsJobs(t, bolt)
		})
	}
}

func testRestartKeepsJobs(t *testing.T, bolt bool) {
	r := newRestartable(t, Config{DeadAfter: time.Hour}, bolt)
	c := r.ctl
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"} {
		mustRegister(t, c, dramNode(a, 1<<30, 8000))
	}
	sort1, err := c.RegisterJobFrom("10.0.0.9", &wire.JobRegister{Name: "sort", Hints: wire.JobHints{Lambdas: 20}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := c.RegisterJob("gone", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	// A node dies and comes back: the epochs of its jobs move.
	if err := c.SetNodeState(sort1.Nodes[0].Addr, wire.NodeDead); err != nil {
		t.Fatal(err)
	}
	if err := c.SetNodeState("127.0.0.1:7003", wire.NodeDraining); err != nil {
		t.Fatal(err)
	}
	before, err := c.GetMap(sort1.Job, sort1.Token)
	if err != nil || before.Epoch < 2 {
		t.Fatalf("map after a node died: %+v %v", before, err)
	}
	if _, err := c.DeregisterJob(context.Background(), gone.Job, gone.Token); err != nil {
		t.Fatal(err)
	}
	hb := &wire.Heartbeat{Addr: "127.0.0.1:7002"}
	ack, err := c.Heartbeat(hb)
	if err != nil {
		t.Fatal(err)
	}
	hb.Since = ack.Rev

	c = r.restart()
	// The running nodes sync with the new run: until they have, a map is
	// not handed out (a restart must not publish an epoch they do not know).
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"} {
		if a != sort1.Nodes[0].Addr { // the dead one stays silent
			syncNode(t, c, a)
		}
	}

	after, err := c.GetMap(sort1.Job, sort1.Token)
	if err != nil {
		t.Fatalf("old token after the restart: %v", err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("map after the restart:\n got %+v\nwant %+v", after, before)
	}
	if _, err := c.GetMap(gone.Job, gone.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Fatalf("deregistered job after the restart: %v", err)
	}
	st := c.Status()
	states := map[string]wire.NodeState{}
	for _, n := range st.Nodes {
		states[n.Addr] = n.State
	}
	want := map[string]wire.NodeState{sort1.Nodes[0].Addr: wire.NodeDead, "127.0.0.1:7003": wire.NodeDraining}
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002"} {
		if _, ok := want[a]; !ok {
			want[a] = wire.NodeActive
		}
	}
	if !reflect.DeepEqual(states, want) {
		t.Fatalf("node states after the restart: %v, want %v", states, want)
	}
	// A running node heartbeats with its old revision: it is known, and
	// gets a snapshot that lists the old job as it was.
	ack, err = c.Heartbeat(hb)
	if err != nil || !ack.Known || !ack.Full {
		t.Fatalf("old node's heartbeat: %+v %v; want known, a snapshot", ack, err)
	}
	if len(ack.Jobs) != 1 || ack.Jobs[0].Job != sort1.Job || ack.Jobs[0].Gen == 0 || ack.Jobs[0].Expires != sort1.Expires {
		t.Fatalf("snapshot %+v; want %s with its gen and expiry", ack.Jobs, sort1.Job)
	}
	oldGen := ack.Jobs[0].Gen

	next, err := c.RegisterJob("sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if n := jobSeq(t, next.Job); n == jobSeq(t, gone.Job) || n == jobSeq(t, sort1.Job) {
		t.Fatalf("new job %s after %s and %s: its number repeats", next.Job, sort1.Job, gone.Job)
	}
	ack, err = c.Heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7002", Since: ack.Rev})
	if err != nil {
		t.Fatal(err)
	}
	for _, je := range ack.Jobs {
		if je.Job == next.Job && je.Gen <= oldGen {
			t.Fatalf("new job's gen %d is not after the old run's %d", je.Gen, oldGen)
		}
	}
	if _, err := c.DeregisterJob(context.Background(), sort1.Job, sort1.Token); err != nil {
		t.Fatalf("deregister with the old token after the restart: %v", err)
	}
	c = r.restart()
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"} {
		if a != sort1.Nodes[0].Addr {
			syncNode(t, c, a)
		}
	}
	if _, err := c.GetMap(sort1.Job, sort1.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Fatalf("job deregistered after a restart is back after another: %v", err)
	}
	if _, err := c.GetMap(next.Job, next.Token); err != nil {
		t.Fatalf("second run's job after another restart: %v", err)
	}
}

// TestStoreFailureRefuses: while the store fails, a registration gets
// CodeUnavailable (no token that a restart would not know); once it works
// again, what was not saved is.
func TestStoreFailureRefuses(t *testing.T) {
	r := newRestartable(t, Config{}, false)
	c := r.ctl
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	m := r.store.(*state.Memory)
	m.SetFail(errors.New("disk full"))
	if _, err := c.RegisterJob("j", wire.JobHints{}); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("register with a failing store: %v; want unavailable", err)
	}
	m.SetFail(nil)
	pm, err := c.RegisterJob("k", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	c = r.restart()
	if _, err := c.GetMap(pm.Job, pm.Token); err != nil {
		t.Fatalf("job saved after the store recovered: %v", err)
	}
}

// TestOtherSecretRefused: a store whose jobs were signed with another
// secret is refused with ErrOtherSecret (every token would fail).
func TestOtherSecretRefused(t *testing.T) {
	r := newRestartable(t, Config{}, false)
	mustRegister(t, r.ctl, dramNode("127.0.0.1:7001", 1<<30, 8000))
	if _, err := r.ctl.RegisterJob("j", wire.JobHints{}); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Secret: []byte("another-secret-0123456789abcdef"), Store: r.store, Logger: quietLog})
	if !errors.Is(err, ErrOtherSecret) {
		t.Fatalf("New with another secret: %v; want ErrOtherSecret", err)
	}
}

// BenchmarkRegisterJobStore is a registration with each kind of store,
// from 8 goroutines at once (their writes share fsyncs).
func BenchmarkRegisterJobStore(b *testing.B) {
	for _, kind := range []string{"none", "memory", "bolt"} {
		b.Run(kind, func(b *testing.B) {
			cfg := Config{Secret: testSecret, Logger: quietLog, RegisterRate: -1, MaxJobs: 1 << 30, DeadAfter: time.Hour}
			switch kind {
			case "memory":
				cfg.Store = state.NewMemory()
			case "bolt":
				s, err := state.OpenBolt(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				cfg.Store = s
			}
			c, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if _, err := c.RegisterNode(dramNode("127.0.0.1:7001", 1<<40, 1e9)); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.RegisterJob("bench", wire.JobHints{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// syncNode brings a node's job table up to date as its agent would: it
// heartbeats (without tier figures) applying each ack's revision while the
// ack says More, then once more so the controller sees it synced.
func syncNode(t *testing.T, c *Controller, addr string) {
	t.Helper()
	var since uint64
	for i := 0; i < 20; i++ {
		ack, err := c.Heartbeat(&wire.Heartbeat{Addr: addr, Since: since})
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

// TestRestoredNodesGetAFirstHeartbeatGrace: a controller restarted from
// its state waits restoreGrace beyond DeadAfter for a restored node's
// first heartbeat before it marks the node dead. Before, with short
// heartbeats (DeadAfter 300 ms) a busy CI machine saw a running node
// marked dead right after the restart, and a client's get answered
// "node is dead" (TestControllerKill9KeepsJobs, once).
func TestRestoredNodesGetAFirstHeartbeatGrace(t *testing.T) {
	r := newRestartable(t, Config{DeadAfter: 300 * time.Millisecond}, false)
	mustRegister(t, r.ctl, dramNode("127.0.0.1:7001", 1<<30, 1000))
	c := r.restart()
	c.sweep(time.Now().Add(time.Second))
	if st := c.Status().Nodes[0].State; st != wire.NodeActive {
		t.Fatalf("restored node %v a second after the restart, before its first heartbeat was due", st)
	}
	c.sweep(time.Now().Add(restoreGrace + time.Second))
	if st := c.Status().Nodes[0].State; st != wire.NodeDead {
		t.Fatalf("restored node that never heartbeats: %v after the grace and DeadAfter, want dead", st)
	}
}

// TestAutoscalerWaitsForRestoredNodes: after a restart on its state, the
// autoscaler decides nothing while restored nodes have not been heard
// from; once they heartbeat it acts on their figures. Before, the
// restored nodes counted as capacity at once: `pocket up` restarted on its
// data directory (whose earlier nodes stopped with it) drained a node it
// had just started and, once the earlier nodes were marked dead, started
// another (a new user's trial).
func TestAutoscalerWaitsForRestoredNodes(t *testing.T) {
	logs := &logSink{}
	r := newRestartable(t, Config{Logger: logs.logger()}, false)
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002"} {
		mustRegister(t, r.ctl, dramNode(a, 1<<30, 1000))
	}
	c := r.restart()
	clock := &fakeClock{t: time.Now()}
	a, err := c.StartAutoscaler(AutoscaleConfig{Orchestrator: &fakeOrch{c: c, mbps: 1000}, Now: clock.now,
		Interval: time.Hour, MinNodes: 3, MaxNodes: 4, Smooth: 1, NoJobScaling: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := a.Step(); d.Action != ActionNone {
		t.Fatalf("decision while both restored nodes await their first heartbeat: %+v", d)
	}
	if !logs.contains("await their first heartbeat") {
		t.Fatalf("the hold is not logged: %q", logs.msgs())
	}
	beatTier(t, c, "127.0.0.1:7001", 1<<30, 1000, 0)
	if d := a.Step(); d.Action != ActionNone {
		t.Fatalf("decision while one restored node awaits its first heartbeat: %+v", d)
	}
	beatTier(t, c, "127.0.0.1:7002", 1<<30, 1000, 0)
	if d := a.Step(); d.Action != ActionAdd || d.Count != 1 {
		t.Fatalf("decision with both restored nodes heard (2 nodes, MinNodes 3): %+v; want add 1", d)
	}
}
