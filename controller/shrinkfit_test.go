package controller

import (
	"testing"
	"time"
)

// TestShrinkKeepsTheRestUnderTheBandInCapacity: a job that grew onto a
// second node, now quiet on the network (10 %) but holding 600 MiB on one
// node and 400 MiB on the other (1 GiB each: 49 %, under the band's low),
// does not shed a node: the one left would hold 1000 MiB, 98 %. The old
// policy checked the rest's bandwidth only and shed it (a hostile trial:
// "1 will run at 110%"; the node filled and the move never ended). With
// 100 MiB on each it sheds one.
func TestShrinkKeepsTheRestUnderTheBandInCapacity(t *testing.T) {
	r := newScaleRig(t, 3, AutoscaleConfig{Cooldown: time.Hour, Smooth: 1, JobCooldown: time.Second, MinNodes: 3})
	m0 := oneNodeJob(t, r, "long", 500, true)
	home := m0.Nodes[0].Addr
	nodes := func() int {
		m, _ := r.c.GetMap(m0.Job, m0.Token)
		return len(m.Nodes)
	}
	r.loadHome(home, 950, 0)
	r.a.Step()
	r.loadHome(home, 950, 0) // the nodes hear of the grown map: it is handed out
	if nodes() != 2 {
		t.Fatalf("job on %d node(s) after its node ran at 95%%", nodes())
	}
	if !finishMove(r, m0.Job) {
		t.Fatal("no move after the job grew")
	}
	r.c.mu.Lock()
	j := r.c.jobs[m0.Job]
	r.c.mu.Unlock()
	hold := func(homeBytes, otherBytes int64) {
		for _, n := range r.c.Status().Nodes {
			used := int64(0)
			switch {
			case n.Addr == home:
				used = homeBytes
			case holdsNode(r.c, m0.Job, n.Addr):
				used = otherBytes
			}
			r.heartbeat(n.Addr, 100, used, nil)
		}
	}
	for range 4 {
		hold(600<<20, 400<<20)
		r.clock.advance(2 * time.Second)
		r.a.Step()
	}
	if nodes() != 2 || j.move != nil {
		t.Fatalf("shed a node whose bytes the other could not hold under the band (%d nodes, moving %v): %s", nodes(), j.move != nil, r.logs.msgs())
	}
	hold(100<<20, 100<<20)
	r.clock.advance(2 * time.Second)
	r.a.Step()
	if j.move == nil {
		t.Fatalf("did not shed a node at 10%% with 100 MiB on each: %s", r.logs.msgs())
	}
}
