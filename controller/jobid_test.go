package controller

import (
	"strconv"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestJobNumbersTellNothing: job numbers are random, not a sequence. Before,
// a job's number was the next of one counter for every tenant, so a tenant
// registering two jobs learned how many other tenants registered between
// them (a hostile trial), and a controller restored from an older copy of
// its state numbered its next job as the copy's counter said, handing out
// again an id it had given since. Fails on the old code: the three numbers
// were consecutive, and the restored controller's job took the id of the
// job registered after the copy.
func TestJobNumbersTellNothing(t *testing.T) {
	st := state.NewMemory()
	c := newTest(t, Config{Store: st})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	var nums []uint64
	var ids []string
	register := func(c *Controller) string {
		t.Helper()
		m, err := c.RegisterJob("sort", wire.JobHints{})
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(m.Job, "sort-"), 10, 64)
		if err != nil || n == 0 || n > maxJobNumber {
			t.Fatalf("job id %q: want sort-N, N in [1, %d]", m.Job, uint64(maxJobNumber))
		}
		nums, ids = append(nums, n), append(ids, m.Job)
		return m.Job
	}
	register(c)
	older := st.Copy()
	register(c)
	register(c)
	if nums[1] == nums[0]+1 && nums[2] == nums[1]+1 {
		t.Fatalf("job numbers %v are a sequence: a tenant can count the others' registrations", nums)
	}
	c.Close()
	r := newTest(t, Config{Store: older})
	mustRegister(t, r, dramNode("127.0.0.1:7001", 1<<30, 8000))
	again := register(r)
	for _, id := range ids[:3] {
		if again == id {
			t.Fatalf("the controller restored from an older copy handed out %s again (ids %v)", again, ids)
		}
	}
}

// TestJobIDAvoidsHeldIDs: a random number already held by a job, live,
// ended or tombstoned, is drawn again.
func TestJobIDAvoidsHeldIDs(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	m, err := c.RegisterJob("sort", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	held := c.jobIDHeldLocked(m.Job)
	c.mu.Unlock()
	if !held {
		t.Fatalf("a live job's id %s is not held", m.Job)
	}
	if _, err := c.DeregisterJob(t.Context(), m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	held = c.jobIDHeldLocked(m.Job)
	c.mu.Unlock()
	if !held {
		t.Fatalf("a deregistered job's id %s is not held while its tombstone is kept", m.Job)
	}
}
