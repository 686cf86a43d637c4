package main

import (
	"os"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/perf/trace"
)

// TestTraceControllerOptions: the trace's controller options pass the
// checks pocket up's pass (a zero orphan grace made every pocket trace
// fail before it started).
func TestTraceControllerOptions(t *testing.T) {
	o := traceUpOptions()
	o.serve.data = t.TempDir()
	var cfg controller.Config
	if _, err := o.serve.apply(&cfg, o.listen); err != nil {
		t.Fatal(err)
	}
	defer o.serve.close()
	if cfg.OrphanGrace != controller.DefaultOrphanGrace || cfg.DeadNodeGrace != controller.DefaultDeadNodeGrace {
		t.Fatalf("graces %v, %v", cfg.OrphanGrace, cfg.DeadNodeGrace)
	}
}

func TestTraceSummary(t *testing.T) {
	res := &trace.Result{NodeSeconds: 405, StaticNodeSeconds: 900, NoGrowthNodes: 6, NoGrowthNodeSeconds: 1080, PeakNodes: 5, PeakSeconds: 6, OverNodeSeconds: 21, Jobs: []trace.JobResult{
		{Name: "sort1", Written: 256, Verified: 256},
		{Name: "stream", Spec: trace.JobSpec{Follow: true}, Written: 256, Verified: 255, Errors: 1, MinNodes: 1, MaxNodes: 3, MapChanges: 4, OverNodeSeconds: 12},
	}}
	want := "node-seconds 405 of 900 static (45%; of 1080, 38%, for a static cluster without per-job growth, 6 nodes), peak 5 nodes for 6 s, 21 node-seconds of load beyond the nodes' bandwidth, 1 job error(s), 511 of 512 values verified; stream's map 1-3 node(s), 4 change(s), 12 node-seconds beyond its nodes' bandwidth"
	if got := traceSummary(res); got != want {
		t.Fatalf("summary\n%s\nwant\n%s", got, want)
	}
	// The same cluster twice over is said once (a new user's trial: "of
	// 472 static (55%; of 472, 55%, for a static cluster without per-job
	// growth, 4 nodes)").
	res.NoGrowthNodes, res.NoGrowthNodeSeconds = res.PeakNodes, res.StaticNodeSeconds
	if got := traceSummary(res); !strings.HasPrefix(got, "node-seconds 405 of 900 static (45%), peak 5 nodes") {
		t.Fatalf("summary with no larger static cluster: %s", got)
	}
	// The floor, when known, is said with its share of the static cluster.
	res.FloorBand = 450
	if got := traceSummary(res); !strings.Contains(got, "; no controller within the band could use fewer than 450 node-seconds (50%) on this trace; stream's map") {
		t.Fatalf("summary with the trace's floor: %s", got)
	}
	if jobErrors(res) != 1 {
		t.Fatal("a job error exits 0")
	}
	res.Jobs[1].Errors = 0
	if jobErrors(res) != 0 {
		t.Fatal("no job error exits 1")
	}
	if !strings.Contains(traceNames(), `"elastic"`) {
		t.Fatal(traceNames())
	}
}

// TestTraceRefusesNoAutoscale: --autoscale=false, which the trace's help
// lists with pocket up's flags, is refused before a cluster starts rather
// than ignored (a new user's trial: "a flag that does nothing").
func TestTraceRefusesNoAutoscale(t *testing.T) {
	out, code := captured(t, &os.Stderr, func() int { return runTrace([]string{"--autoscale=false"}) })
	if code == 0 || !strings.Contains(out, "--autoscale=false: a trace runs against an autoscaling cluster only") {
		t.Fatalf("exit %d, stderr %q", code, out)
	}
}
