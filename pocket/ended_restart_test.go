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
