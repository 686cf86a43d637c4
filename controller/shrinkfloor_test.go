package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// finishMove ends j's change as if every node of its map had reported
// its values moved.
func (r *scaleRig) finishMove(j *job) {
	r.t.Helper()
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	if j.move == nil {
		r.t.Fatal("no change in progress")
	}
	for _, mn := range j.nodes {
		j.move.done[mn.Addr] = j.epoch
	}
	if !r.c.finishMoveLocked(j, r.clock.now()) {
		r.t.Fatal("the change did not end")
	}
}

func mapLen(r *scaleRig, j *job) (nodes int, moving bool) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return len(j.nodes), j.move != nil
}

// TestShrinkFloorAfterADrain: a job whose hints (1500 Mb/s) sized it on 2
// nodes of 1000 Mb/s grows to 4; one of the 2 it was sized with drains
// from the cluster, leaving 3 (2 of them added by growth, as far as the
// job's growth count knows). When its load is gone the map sheds down to
// the 2 its hints need, not below, and not within three job cool-downs
// of the drain's change of its map. The old controller shed a node 2 s
// after the drain (the cool-down ran from the job's own last change) and
// went on down to 1 node (its floor was its growth count, which a drain
// does not lower).
func TestShrinkFloorAfterADrain(t *testing.T) {
	r := newScaleRig(t, 5, AutoscaleConfig{Cooldown: time.Hour, Smooth: 1, JobCooldown: time.Second, MinNodes: 4})
	m, err := r.c.RegisterJob("hinted", wire.JobHints{PeakMbps: 1500})
	if err != nil || len(m.Nodes) != 2 {
		t.Fatalf("register: %+v %v; want 2 nodes", m, err)
	}
	r.c.mu.Lock()
	j := r.c.jobs[m.Job]
	j.created = r.clock.now().Add(-time.Minute)
	r.c.mu.Unlock()
	for i := 0; i < 2; i++ {
		if err := r.c.GrowJob(m.Job, ""); err != nil {
			t.Fatal(err)
		}
		r.finishMove(j)
	}
	if n, _ := mapLen(r, j); n != 4 {
		t.Fatalf("map of %d nodes after two growths", n)
	}
	r.clock.advance(time.Minute) // the growths are long past

	// One of the nodes it was sized with drains from the cluster.
	drained := m.Nodes[0].Addr
	if _, err := r.c.Drain(drained, time.Minute); err != nil {
		t.Fatal(err)
	}
	r.beat(10, 0)
	if d := r.a.Step(); d.Action != ActionNone {
		t.Fatalf("the cluster policy acted: %+v", d)
	}
	if _, moving := mapLen(r, j); moving {
		t.Fatal("the job's map changed while a node of it drains")
	}
	// Its next heartbeat confirms the maps it leaves: it is retired once
	// it has (TestRestoredDrainRetiresItsNodeOnceSynced).
	for i := 0; i < 2; i++ {
		r.heartbeat(drained, 0, 0, []wire.Metric{{Name: MetricDrainDone, Value: 1}})
	}
	r.c.drainTick(time.Now())
	if n, _ := mapLen(r, j); n != 3 {
		t.Fatalf("map of %d nodes after the drain; want 3", n)
	}

	// Quiet: within three job cool-downs of the drain's change, nothing.
	r.beat(10, 0)
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if _, moving := mapLen(r, j); moving {
		t.Fatalf("shed a node 2 s after the drain changed the map: %+v", r.a.Decisions())
	}
	// Then one node goes, down to the 2 its hints need.
	r.beat(10, 0)
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if _, moving := mapLen(r, j); !moving {
		t.Fatalf("no shrink 4 s after the drain with its 3 nodes at 1%%: %+v", r.a.JobUtilization())
	}
	r.finishMove(j)
	for i := 0; i < 5; i++ {
		r.beat(10, 0)
		r.clock.advance(10 * time.Second)
		r.a.Step()
		if n, moving := mapLen(r, j); n != 2 || moving {
			t.Fatalf("map of %d nodes (changing %v): shrank below the 2 nodes its hints of 1500 Mb/s on 1000 Mb/s nodes need", n, moving)
		}
	}
}
