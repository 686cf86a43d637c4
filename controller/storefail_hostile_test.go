package controller

import (
	"bufio"
	"errors"
	"io"
	"net"
	"slices"
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
