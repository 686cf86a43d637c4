package pocket

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestFanOutCallsRefreshAStaleMap: every fan-out call (list, count,
// recursive delete, delete of a chunked object) made with a map from
// before a drain refreshes the map on the nodes' stale-epoch answer and
// succeeds, as single-key calls do. Before, they failed with "stale map
// epoch".
func TestFanOutCallsRefreshAStaleMap(t *testing.T) {
	ctl, addr, nodes := startDrainCluster(t, 3, 64<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Dial(ctx, addr, Config{ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	job, err := s.RegisterJob(ctx, "fanout", Hints{PeakMbps: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		size := 100
		if i%10 == 0 {
			size = 300 << 10 // chunked
		}
		if err := job.Put(ctx, fmt.Sprintf("d/%02d", i), make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	stale := job.Map()
	victim := fullest(nodes).node.Addr().String()
	if _, err := ctl.Drain(victim, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 40*time.Second, "the drained node to leave", func() bool {
		for _, n := range ctl.Status().Nodes {
			if n.Addr == victim {
				return false
			}
		}
		return true
	})
	calls := []struct {
		name string
		f    func(j *Job) error
	}{
		{"List", func(j *Job) error {
			ents, err := j.List(ctx, "d/")
			if err == nil && len(ents) != 40 {
				err = fmt.Errorf("%d entries, want 40", len(ents))
			}
			return err
		}},
		{"CountFiles", func(j *Job) error {
			n, err := j.CountFiles(ctx, "d")
			if err == nil && n != 40 {
				err = fmt.Errorf("%d files, want 40", n)
			}
			return err
		}},
		{"Delete of a chunked object", func(j *Job) error { return j.Delete(ctx, "d/10") }},
		{"RemoveAll", func(j *Job) error { return j.RemoveAll(ctx, "d") }},
	}
	for _, c := range calls {
		j, err := s.newJob(stale) // the map from before the drain
		if err != nil {
			t.Fatal(err)
		}
		if err := c.f(j); err != nil {
			t.Fatalf("%s with a map from before the drain: %v", c.name, err)
		}
	}
	ents, err := job.List(ctx, "")
	if err != nil || len(ents) != 0 {
		t.Fatalf("left after RemoveAll: %v, %v", ents, err)
	}
}
