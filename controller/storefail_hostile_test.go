package controller

import (
	"errors"
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
