package controller

import (
	"bufio"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// failingStore is a store whose writes fail while fail is set (a full
// disk, an etcd request timing out), and succeed again after.
type failingStore struct {
	state.Store
	fail atomic.Bool
}

func (s *failingStore) Apply(b *state.Batch) error {
	if s.fail.Load() {
		return errors.New("disk full (test)")
	}
	return s.Store.Apply(b)
}

// TestFailedRegistrationLeavesNoJob: a registration whose write fails
// answers CodeUnavailable ("state not saved") and hands out no token,
// yet RegisterJobFrom has already entered the job (enterJob) and nothing
// takes it out: the job stays registered without anyone holding its
// token, its nodes' allotment and its client's MaxJobsPerClient slot held,
// and the next successful write of anything stores it, so it survives a
// restart too. No token means nobody can deregister it (an operator cannot
// either: README "Not yet"); a job with no TTL stays forever. A failed
// registration must leave no job.
func TestFailedRegistrationLeavesNoJob(t *testing.T) {
	st := &failingStore{Store: state.NewMemory()}
	cfg := Config{Secret: testSecret, Logger: quietLog, Store: st, MaxJobsPerClient: 1, DeadAfter: time.Hour}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))

	const client = "10.0.0.9"
	st.fail.Store(true)
	m, err := c.RegisterJobFrom(client, &wire.JobRegister{Name: "sort", Hints: wire.JobHints{Lambdas: 4}})
	if !errors.Is(err, wire.ErrUnavailable) || m != nil {
		t.Fatalf("registration while the store fails: %+v %v, want CodeUnavailable and no map", m, err)
	}
	st.fail.Store(false)
	// The store works again; a node's heartbeat writes what changed.
	if _, err := c.Heartbeat(&wire.Heartbeat{Addr: "127.0.0.1:7001"}); err != nil {
		t.Fatal(err)
	}
	if n := c.Status().JobCount; n != 0 {
		t.Errorf("jobs after a failed registration: %d, want 0", n)
	}

	// The client, told its registration failed, registers again.
	handed := map[string]bool{}
	if m, err := c.RegisterJobFrom(client, &wire.JobRegister{Name: "sort", Hints: wire.JobHints{Lambdas: 4}}); err != nil {
		t.Errorf("registering again once the store works: %v (the failed registration left a job holding the client's slot)", err)
	} else {
		handed[m.Job] = true
	}

	// After a restart on the same store: only the jobs whose tokens were
	// handed out.
	c.Close()
	if c, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	for _, j := range c.ListJobs(0, 100).Jobs {
		if !handed[j.Job] {
			t.Errorf("restored job %s, whose registration answered %q: its token was never handed out", j.Job, "state not saved")
		}
	}
}

// TestLostDropWaitsForTheSavedLoss: a node that left a job's map dead
// (DeadNodeGrace) and comes back is ordered to drop its stale data of the
// job (returnedLocked, dispatchLostDrops). Heartbeat and RegisterNode send
// those orders before their flush, so while the store fails the order
// goes out although the loss it follows from was never saved: the node
// drops the job's data, the heartbeat answers "state not saved", and a
// controller restarted on the store has the node back in the job's map,
// not lost, so its keys read as not found instead of lost (recompute). A
// drop order must wait until the loss is saved ("every change is saved
// before anything derived from it is answered", persist.go).
func TestLostDropWaitsForTheSavedLoss(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	drops := make(chan string, 16)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(conn)
				lim := wire.DefaultLimits()
				var hb [wire.HeaderLen]byte
				if _, err := io.ReadFull(r, hb[:]); err != nil {
					return
				}
				if h, err := wire.ParseHeader(hb[:], &lim); err == nil {
					drops <- h.Op.String()
				}
			}()
		}
	}()
	back := ln.Addr().String()

	st := &failingStore{Store: state.NewMemory()}
	cfg := Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour, ForgetAfter: time.Hour,
		DeadNodeGrace: time.Minute, DropTimeout: 300 * time.Millisecond}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	mustRegister(t, c, dramNode(back, 1<<30, 8000))
	m, err := c.RegisterJob("j", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(m.Nodes, func(n wire.MapNode) bool { return n.Addr == back }) {
		t.Fatalf("job placed on %+v, not on %s", m.Nodes, back)
	}

	st.fail.Store(true)
	c.SetNodeState(back, wire.NodeDead) // state not saved
	sweepPastGrace(c)                   // the node leaves the map, lost; not saved
	_, hbErr := c.Heartbeat(&wire.Heartbeat{Addr: back})
	if !errors.Is(hbErr, wire.ErrUnavailable) {
		t.Fatalf("heartbeat while the store fails: %v, want state not saved", hbErr)
	}
	select {
	case op := <-drops:
		t.Errorf("the returned node got a %s order for job %s while the loss behind it was not saved (heartbeat: %v)", op, m.Job, hbErr)
	case <-time.After(time.Second):
	}

	// What a restart on the store knows: the node in the map, not lost.
	st.fail.Store(false)
	c.Close()
	if c, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	inMap, lost := c.jobs[m.Job].has(back), c.lostByLocked(c.jobs[m.Job], back)
	c.mu.Unlock()
	if inMap && !lost {
		t.Logf("after a restart node %s is in job %s's map again, not lost", back, m.Job)
	}
}

// TestUnsavedDrainRetiresNoNode: a drain order whose write fails is
// answered "state not saved" (CodeUnavailable) and, as Drain's doc says,
// the node drains all the same, to be saved at the sweeper's next tick.
// But the retirement that ends the drain acts at once, saved or not:
// while the store still fails, drainTick retires the node, its retire
// hooks run (an orchestrator stops the node) and its next registration is
// told it "was drained and retired: it must stop serving" (CodeDraining,
// on which pocket node exits for good), while the store holds the node
// active, in its jobs' maps. A controller restarted on that store waits
// for a node whose process is gone. What cannot be undone (stopping the
// node, telling it to exit) must wait until the drain and the retirement
// are saved.
func TestUnsavedDrainRetiresNoNode(t *testing.T) {
	st := &failingStore{Store: state.NewMemory()}
	cfg := Config{Secret: testSecret, Logger: quietLog, Store: st, DeadAfter: time.Hour, ForgetAfter: time.Hour}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	const x = "127.0.0.1:7001"
	regX := dramNode(x, 1<<30, 8000)
	regX.Incarnation = 42
	mustRegister(t, c, regX)
	mustRegister(t, c, dramNode("127.0.0.1:7002", 1<<30, 8000))
	var mu sync.Mutex // the sweeper may run the hooks too
	var retired []string
	c.OnRetire(func(addr, why string) {
		mu.Lock()
		retired = append(retired, addr)
		mu.Unlock()
	})

	st.fail.Store(true)
	if _, err := c.DrainWith(x, DrainOptions{Deadline: time.Minute}); !errors.Is(err, wire.ErrUnavailable) {
		t.Fatalf("drain while the store fails: %v, want state not saved", err)
	}
	// The node reports itself empty (its heartbeat answers "state not
	// saved" too); the sweeper's next tick.
	c.Heartbeat(&wire.Heartbeat{Addr: x, Incarnation: 42,
		Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 8000}}})
	c.drainTick(time.Now())
	_, regErr := c.RegisterNode(regX)
	mu.Lock()
	defer mu.Unlock()
	if len(retired) > 0 || errors.Is(regErr, wire.ErrDraining) {
		t.Errorf("a drain answered 'state not saved' retired node %s: retire hooks ran for %v; its registration: %v", x, retired, regErr)
	}

	st.fail.Store(false)
	c.Close()
	if c, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Status().Nodes {
		if n.Addr == x {
			t.Logf("after a restart node %s is %s", x, n.State)
		}
	}
}
