package trace

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

func TestTotals(t *testing.T) {
	r := &Result{Points: []Point{{T: 0, Nodes: 1, Over: 1}, {T: 10, Nodes: 4}, {T: 20, Nodes: 2, Over: 0.5}, {T: 40, Nodes: 1, Over: 9}}}
	r.totals()
	// 1x10 + 4x10 + 2x20 = 90 node-seconds; the peak of 4 for 40 s is 160;
	// 1x10 + 0.5x20 = 20 node-seconds over (the last sample ends the run).
	if r.NodeSeconds != 90 || r.PeakNodes != 4 || r.StaticNodeSeconds != 160 || r.PeakSeconds != 10 || r.OverNodeSeconds != 20 {
		t.Fatalf("totals: %+v", r)
	}
	if got := r.Ratio(); got != 90.0/160 {
		t.Fatalf("ratio %v", got)
	}
}

func TestPoint(t *testing.T) {
	st := &wire.ClusterStatus{
		Nodes: []wire.NodeStatus{
			{Addr: "a", State: wire.NodeActive, RxMbps: 100, TxMbps: 500, Tiers: []wire.TierStat{{Mbps: 250}}},
			{Addr: "b", State: wire.NodeDraining, RxMbps: 50, Tiers: []wire.TierStat{{Mbps: 250}}},
			{Addr: "c", State: wire.NodeDead, RxMbps: 999},
			{Addr: "d", State: wire.NodeActive},
		},
		Jobs: []wire.JobStatus{
			{Name: "sort", Epoch: 3, AllocMbps: 600, UsedMbps: 320, Nodes: []wire.MapNode{{Addr: "a"}, {Addr: "b", State: wire.NodeDraining}}},
			// The dead node is left out, its 999 Mb/s with it; a joining
			// node counts, and so do its figures.
			{Name: "stream", Epoch: 7, AllocMbps: 200, Nodes: []wire.MapNode{
				{Addr: "a", State: wire.NodeActive}, {Addr: "c", State: wire.NodeDead}, {Addr: "d", State: wire.NodeJoining}}},
		},
	}
	// Node a measures 500 of its 250 Mb/s: 1 node over.
	want := Point{Nodes: 3, Active: 2, Jobs: 2, AllocMbps: 800, UsedMbps: 550, CapMbps: 250 + defaultNodeMbps, Over: 1,
		PerJob: map[string]JobPoint{
			"sort":   {Nodes: 2, Epoch: 3, UsedMbps: 550, Over: 1, AllocMbps: 600, OwnMbps: 320},
			"stream": {Nodes: 2, Joining: 1, Epoch: 7, UsedMbps: 500, Over: 1, AllocMbps: 200},
		}}
	if p := point(st); !reflect.DeepEqual(p, want) {
		t.Fatalf("point %+v, want %+v", p, want)
	}
	if p := point(&wire.ClusterStatus{}); p.PerJob != nil {
		t.Fatalf("no jobs, per-job %v", p.PerJob)
	}
}

func TestJobFromSamples(t *testing.T) {
	pts := []Point{
		{T: 0},
		{T: 1, PerJob: map[string]JobPoint{"stream": {Nodes: 1, Epoch: 1, Over: 1.5}}},
		{T: 2, PerJob: map[string]JobPoint{"stream": {Nodes: 3, Epoch: 2}, "sort": {Nodes: 4, Epoch: 1, Over: 0.5}}},
		{T: 3, PerJob: map[string]JobPoint{"stream": {Nodes: 3, Epoch: 2}}},
		{T: 4, PerJob: map[string]JobPoint{"stream": {Nodes: 2, Epoch: 4, Over: 0.25}}},
		{T: 6},
	}
	r := &Result{Points: pts, Jobs: []JobResult{{Name: "stream"}, {Name: "sort"}, {Name: "never"}}}
	r.totals()
	got := r.Jobs
	// Over 1.5 nodes for 1 s, then 0.25 for 2 s.
	if s := got[0]; s.MinNodes != 1 || s.MaxNodes != 3 || s.MapChanges != 2 || s.OverNodeSeconds != 2 {
		t.Fatalf("stream: %+v", s)
	}
	if s := got[1]; s.MinNodes != 4 || s.MaxNodes != 4 || s.MapChanges != 0 || s.OverNodeSeconds != 0.5 {
		t.Fatalf("sort: %+v", s)
	}
	if s := got[2]; s.MinNodes != 0 || s.MaxNodes != 0 || s.MapChanges != 0 {
		t.Fatalf("a job never sampled: %+v", s)
	}
}

// TestNoGrowth: the static cluster without per-job growth holds every
// job's largest need for its whole run, so two jobs whose peaks the run
// kept apart count together while both are registered.
func TestNoGrowth(t *testing.T) {
	node := func(t float64, n int, jobs map[string]JobPoint) Point {
		return Point{T: t, Nodes: n, Active: n, CapMbps: float64(250 * n), PerJob: jobs}
	}
	pts := []Point{
		node(0, 1, nil),
		// a's peak (its own 500 Mb/s over its 100 allotted) while b idles.
		node(10, 3, map[string]JobPoint{"a": {AllocMbps: 100, OwnMbps: 500}, "b": {AllocMbps: 300, OwnMbps: 10}}),
		// b's peak after a went back to its allotment.
		node(20, 3, map[string]JobPoint{"a": {AllocMbps: 100, OwnMbps: 90}, "b": {AllocMbps: 300, OwnMbps: 550}}),
		node(30, 1, map[string]JobPoint{"a": {AllocMbps: 100}}),
		node(40, 1, nil),
	}
	r := &Result{Points: pts, Jobs: []JobResult{{Name: "a"}, {Name: "b"}}}
	r.totals()
	// 500 + 550 = 1050 Mb/s on nodes of 250 filled to 80 %: 6 nodes (5.25),
	// where the run peaked at 3.
	if r.Jobs[0].NeedMbps != 500 || r.Jobs[1].NeedMbps != 550 || r.NoGrowthNodes != 6 || r.NoGrowthNodeSeconds != 240 || r.PeakNodes != 3 {
		t.Fatalf("needs %v, %v; no-growth %d nodes, %v node-s; peak %d", r.Jobs[0].NeedMbps, r.Jobs[1].NeedMbps, r.NoGrowthNodes, r.NoGrowthNodeSeconds, r.PeakNodes)
	}
	// A sum that is a whole number of nodes needs that number; at a band
	// of 100 %, 1050 Mb/s on 250 Mb/s nodes is 5 (4.2).
	r.Band = 1
	r.totals()
	if r.NoGrowthNodes != 5 {
		t.Fatalf("at a 100%% band: %d nodes, want 5", r.NoGrowthNodes)
	}
	r.Points[2].PerJob["b"] = JobPoint{AllocMbps: 300, OwnMbps: 500}
	r.totals()
	if r.NoGrowthNodes != 4 {
		t.Fatalf("1000 Mb/s on 250 Mb/s nodes: %d nodes, want 4", r.NoGrowthNodes)
	}
	// A band that is not a share (NaN, over 1) is the default 80 %.
	for _, b := range []float64{math.NaN(), 1.5, -1} {
		r.Band = b
		r.totals()
		if r.NoGrowthNodes != 5 {
			t.Fatalf("band %v: %d nodes, want 5 (1000 Mb/s at 80%% of 250)", b, r.NoGrowthNodes)
		}
	}
	r.Band = 1
	// Never below the run's own peak.
	r.Points[1].Nodes, r.Points[1].Active, r.Points[1].CapMbps = 9, 9, 9*250
	r.totals()
	if r.NoGrowthNodes != 9 {
		t.Fatalf("run peaked at 9: %d", r.NoGrowthNodes)
	}
}

func TestFillCheck(t *testing.T) {
	b := make([]byte, 4096)
	fill(b, 7)
	if !check(b, 7, len(b)) || check(b, 8, len(b)) || check(b[:100], 7, len(b)) {
		t.Fatal("check does not tell values apart")
	}
	b[100] ^= 1
	if check(b, 7, len(b)) {
		t.Fatal("check misses a flipped bit")
	}
}

// reportResult is a run of a cluster going 1 -> 4 -> 1 nodes over 30 s,
// with a followed job whose map goes 1 -> 3 -> 2 nodes from t=5 to t=25.
func reportResult() *Result {
	stream := JobSpec{Name: "stream", Kind: Video, Arrive: 5 * time.Second, ValueSize: 8, Keys: 1, Follow: true,
		Phases: []Phase{{For: 5 * time.Second, Mbps: 100}, {For: 10 * time.Second, Mbps: 900}, {For: 5 * time.Second, Mbps: 100}},
		Hints:  pocket.Hints{PeakMbps: 100}}
	r := &Result{Timescale: 1, Length: 30 * time.Second, Decisions: []string{"t=10 add 3 node(s): hints"},
		Jobs: []JobResult{
			{Spec: JobSpec{Name: "sort1", Mbps: 600, Hints: pocket.Hints{PeakMbps: 600}}, Name: "sort1", ID: "sort1-1", Nodes: 3, Puts: 10, Gets: 10, Bytes: 5e6, Written: 10, Verified: 10},
			{Spec: stream, Name: "stream", ID: "stream-2", Nodes: 1, Puts: 4, Gets: 3, Bytes: 7e6, Written: 4, Verified: 3, Errors: 1,
				FirstEr: "verify part-00001: not found", PhaseMbps: []float64{98, 850, 101}},
		}}
	for i := 0; i <= 30; i++ {
		n := 1
		if i >= 10 && i < 20 {
			n = 4
		}
		p := Point{T: float64(i), Nodes: n, Active: n, AllocMbps: float64(100 * (n - 1)), UsedMbps: float64(90 * (n - 1)), CapMbps: float64(250 * n)}
		if i >= 5 && i < 25 {
			jn := map[bool]int{true: 3, false: 1}[i >= 10 && i < 20]
			if i >= 20 {
				jn = 2
			}
			epoch := uint64(1 + 2*(i/10)) // each change of the map: two epochs
			if i < 10 {
				epoch = 1
			}
			p.PerJob = map[string]JobPoint{"stream": {Nodes: jn, Epoch: epoch, UsedMbps: float64(40 * jn), Over: float64(jn / 3), AllocMbps: 100, OwnMbps: float64(40 * jn)}}
		}
		if i >= 10 && i < 20 {
			if p.PerJob == nil {
				p.PerJob = map[string]JobPoint{}
			}
			p.PerJob["sort1"] = JobPoint{Nodes: 3, Epoch: 1, AllocMbps: 600, OwnMbps: 700}
		}
		r.Points = append(r.Points, p)
	}
	r.totals()
	return r
}

func TestReportAndPlot(t *testing.T) {
	r := reportResult()
	var b bytes.Buffer
	if err := r.Markdown(&b, "pocket trace", "trace.png", 5); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		// sort1 needs 700 Mb/s and stream 120 at most: 820 on nodes of
		// 250 Mb/s filled to 80 % is 5 nodes, 150 node-seconds.
		"| node-seconds used | 60 |", "| peak nodes | 4, for 10 s |", "(5 nodes: each job holds its largest need, allotment or own traffic, for its whole run, at 80% of a node) | 150 |",
		"| used / that cluster | 40% |",
		"| node-seconds of a static cluster of this run's peak (4 nodes) | 120 |", "| used / static | **50%** (target: at most 45%) |",
		"| node-seconds of load beyond the nodes' bandwidth (nodes measuring over 100%) | 0 |", "| job errors | 1 |", "| values read back and checked at each job's end | 13 of 14 |",
		"| sort1 | sort1-1 | 600 | 600 | 700 | 3 | 3 | 0 | 0 | 10 | 10 | 5 | 10 of 10 | 0 |",
		"| stream | stream-2 | 100 | 900 | 120 | 1 | 1-3 | 2 | 10 | 4 | 3 | 7 | 3 of 4 | 1 (verify part-00001: not found) |",
		"Job stream over time: registered with a 100 Mb/s hint, its load rising to 900 Mb/s",
		"| 5-10 | 100 | 98 |", "| 10-20 | 900 | 850 |", "| 20-25 | 100 | 101 |",
		"| 10 | 900 | 3 | 0 | 3 | 120 |", "| 20 | 100 | 2 | 0 | 5 | 80 |",
		"- t=10 add 3 node(s)",
		"| t | nodes | active | jobs | allocated | used | capacity | stream nodes |",
		"| 0 | 1 | 1 | 0 | 0 | 0 | 250 | - |", "| 10 | 4 | 4 | 0 | 300 | 270 | 1000 | 3 |", "| 25 | 1 | 1 | 0 | 0 | 0 | 250 | - |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, b.String())
		}
	}
	path := filepath.Join(t.TempDir(), "trace.png")
	if err := r.PlotPNG(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil || img.Bounds().Dx() < 500 {
		t.Fatalf("plot: %v %v", img, err)
	}
}

func TestRuns(t *testing.T) {
	r := reportResult()
	runs := r.runs(func(p Point) float64 {
		if jp, ok := p.PerJob["stream"]; ok {
			return float64(jp.Nodes)
		}
		return nan()
	})
	if len(runs) != 1 || len(runs[0]) != 20 || runs[0][0].X != 5 || runs[0][19].X != 24 {
		t.Fatalf("runs of the followed job: %v", runs)
	}
}

// TestTargetOnlyForTheScoredRun: the report holds the ratio against the
// target only for a run at timescale 1 of a trace with the long job; a
// faster replay (wall-time cool-downs) or the trace without the long job
// says why it does not measure it.
func TestTargetOnlyForTheScoredRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Result)
		want  string
		avoid string
	}{
		{"scored", func(*Result) {}, "(target: at most 45%)", "not measuring"},
		{"fast replay", func(r *Result) { r.Timescale = 0.1 }, "not measuring the target of at most 45%: at timescale 0.10", "(target: at most"},
		{"no long job", func(r *Result) {
			for i := range r.Jobs {
				r.Jobs[i].Spec.Follow = false
			}
		}, "is for the trace with the long job, --trace elastic", "(target: at most"},
		{"floor above the target", func(r *Result) { r.FloorBand, r.FloorFull = 56, 48 },
			"(target: at most 45%, below this trace's floor of 47% at the band: see below) |\n" +
				"| the fewest node-seconds any controller could use on this trace, its nodes filled to 80% (each job needs the larger of its hint and its load as its nodes measure it; nodes added and removed in no time, the load known ahead) | 56 (47% of the static cluster; used is 1.07x) |\n" +
				"| the same with nodes filled to 100% | 48 (40%) |", "fewest node-seconds any controller could use on this trace, its nodes filled to 80% (each job needs the larger of its hint and its load as its nodes measure it; nodes added and removed in no time, the load known ahead) | 0"},
		{"floor the same filled whole", func(r *Result) { r.FloorBand, r.FloorFull = 56, 56 },
			"| the same with nodes filled to 100% | 56 (47%): the same, the jobs' needs take as many whole nodes either way |", "(40%)"},
	} {
		r := reportResult()
		tc.edit(r)
		var b bytes.Buffer
		if err := r.Markdown(&b, "pocket trace", "", 5); err != nil {
			t.Fatal(err)
		}
		if s := b.String(); !strings.Contains(s, tc.want) || strings.Contains(s, tc.avoid) {
			t.Errorf("%s: the report's ratio line does not say %q (or says %q):\n%s", tc.name, tc.want, tc.avoid, s[:min(len(s), 1200)])
		}
	}
}
