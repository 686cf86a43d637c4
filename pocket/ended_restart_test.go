package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestEndedJobsValuesReadLostAfterTheirNodeRestarts: a job persists 30
// values over 3 nodes and ends; one node restarts (a new process at its
// address). Through the job's credential its keys read ErrLost, never
// "not found", and the others read back. On the old code (a new user's
// trial) the restarted node's keys read "not found: node ... holds none
// of the ended job's values" and a listing of 17 of 30 keys looked
// complete.
func TestEndedJobsValuesReadLostAfterTheirNodeRestarts(t *testing.T) {
	c := newTestCluster(t, 3, 64<<20)
	ctx := context.Background()
	s := c.store()
	j, err := s.RegisterJob(ctx, "persist3", Hints{Lambdas: 40})
	if err != nil || len(j.Map().Nodes) != 3 {
		t.Fatalf("job on %d of 3 nodes: %v", len(j.Map().Nodes), err)
	}
	victim := c.nodes[0].node.Addr().String()
	var onVictim []string
	for i := range 30 {
		k := fmt.Sprint("out/", i)
		if err := j.Put(ctx, k, []byte(k), Persist()); err != nil {
			t.Fatal(err)
		}
		if j.route([]byte(k), 0).addr == victim {
			onVictim = append(onVictim, k)
		}
	}
	if len(onVictim) == 0 {
		t.Fatal("no key on the node to restart")
	}
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	cred := j.Credential()
	c.nodes[0].stop()
	c.addNodeAt(victim)
	if !waitUntil(15*time.Second, func() bool {
		m, err := c.ctl.GetMapOrEnded(j.ID(), j.Token())
		return err == nil && slices.ContainsFunc(m.Lost, func(l wire.LostNode) bool { return l.Addr == victim })
	}) {
		m, err := c.ctl.GetMapOrEnded(j.ID(), j.Token())
		t.Fatalf("the ended job's final map does not name the restarted node lost: %+v %v", m, err)
	}
	r, err := s.OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		k := fmt.Sprint("out/", i)
		got, err := r.Get(ctx, k)
		switch {
		case slices.Contains(onVictim, k):
			if !errors.Is(err, ErrLost) {
				t.Fatalf("get %s, held by the restarted node: %q, %v; want ErrLost", k, got, err)
			}
		case err != nil || !bytes.Equal(got, []byte(k)):
			t.Fatalf("get %s: %q, %v", k, got, err)
		}
	}
}

// TestEndedJobWhoseOnlyNodeRestartedReadsLost: an ended job's one node
// restarts: the final map names no node, only a lost one. Reads through
// the credential, opened again from the job's own credential, answer
// ErrLost, and a listing is empty and partial. On 7820b00 the get
// panicked (placement over no node) and a credential of such a map did
// not decode.
func TestEndedJobWhoseOnlyNodeRestartedReadsLost(t *testing.T) {
	c := newTestCluster(t, 1, 64<<20)
	ctx := context.Background()
	s := c.store()
	j, err := s.RegisterJob(ctx, "only", Hints{})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "out/0", []byte("v"), Persist()); err != nil {
		t.Fatal(err)
	}
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	cred := j.Credential()
	addr := c.nodes[0].node.Addr().String()
	c.nodes[0].stop()
	c.addNodeAt(addr)
	if !waitUntil(15*time.Second, func() bool {
		m, err := c.ctl.GetMapOrEnded(j.ID(), j.Token())
		return err == nil && len(m.Nodes) == 0 && len(m.Lost) == 1
	}) {
		m, err := c.ctl.GetMapOrEnded(j.ID(), j.Token())
		t.Fatalf("final map after its one node restarted: %+v %v; want no node and it lost", m, err)
	}
	r, err := s.OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.OpenCredential(r.Credential())
	if err != nil {
		t.Fatalf("the credential of a map with lost nodes only: %v", err)
	}
	for _, h := range []*Job{r, r2} {
		if got, err := h.Get(ctx, "out/0"); !errors.Is(err, ErrLost) {
			t.Fatalf("get through a map with no node left: %q, %v; want ErrLost", got, err)
		}
		l, err := h.ListReport(ctx, "")
		if err != nil || len(l.Entries) != 0 || !l.Partial() {
			t.Fatalf("listing through a map with no node left: %+v %v; want empty and partial", l, err)
		}
		// RemoveAll of a name finds nothing to delete, as with nodes left
		// (on d41599f it failed with ErrLost).
		if res, err := h.RemoveAllCount(ctx, "out/0"); err != nil || res.Count() != 0 {
			t.Fatalf("RemoveAll through a map with no node left: %+v, %v; want nothing deleted, no error", res, err)
		}
		for _, size := range []int{1, 3 << 20} {
			if err := h.Put(ctx, "x", make([]byte, size), Persist()); !errors.Is(err, wire.ErrRevoked) {
				t.Fatalf("put of %d bytes to an ended job with no node left: %v; want revoked", size, err)
			}
		}
	}
}
