package trace

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

func TestTotals(t *testing.T) {
	r := &Result{Points: []Point{{T: 0, Nodes: 1}, {T: 10, Nodes: 4}, {T: 20, Nodes: 2}, {T: 40, Nodes: 1}}}
	r.totals()
	// 1x10 + 4x10 + 2x20 = 90 node-seconds; the peak of 4 for 40 s is 160.
	if r.NodeSeconds != 90 || r.PeakNodes != 4 || r.StaticNodeSeconds != 160 {
		t.Fatalf("totals: %+v", r)
	}
	if got := r.Ratio(); got != 90.0/160 {
		t.Fatalf("ratio %v", got)
	}
}

func TestPoint(t *testing.T) {
	st := &wire.ClusterStatus{
		Nodes: []wire.NodeStatus{
			{State: wire.NodeActive, RxMbps: 100, TxMbps: 300, Tiers: []wire.TierStat{{Mbps: 250}}},
			{State: wire.NodeDraining, RxMbps: 50, Tiers: []wire.TierStat{{Mbps: 250}}},
			{State: wire.NodeDead, RxMbps: 999},
			{State: wire.NodeActive},
		},
		Jobs: []wire.JobStatus{{AllocMbps: 600}, {AllocMbps: 200}},
	}
	p := point(st)
	want := Point{Nodes: 3, Active: 2, Jobs: 2, AllocMbps: 800, UsedMbps: 350, CapMbps: 250 + defaultNodeMbps}
	if p != want {
		t.Fatalf("point %+v, want %+v", p, want)
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

func TestReportAndPlot(t *testing.T) {
	r := &Result{Timescale: 1, Length: 30 * time.Second, Decisions: []string{"t=10 add 3 node(s): hints"},
		Jobs: []JobResult{{Name: "sort1", ID: "sort1-1", Nodes: 3, Puts: 10, Gets: 10, Bytes: 5e6}}}
	for i := 0; i <= 30; i++ {
		n := 1
		if i >= 10 && i < 20 {
			n = 4
		}
		r.Points = append(r.Points, Point{T: float64(i), Nodes: n, Active: n, AllocMbps: float64(100 * (n - 1)), UsedMbps: float64(90 * (n - 1)), CapMbps: float64(250 * n)})
	}
	r.totals()
	var b bytes.Buffer
	if err := r.Markdown(&b, "pocket trace", "trace.png", 5); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| node-seconds used | 60 |", "| peak nodes | 4 |", "| used / static | **50%**", "| sort1 | sort1-1 | 3 | 10 | 10 | 5 | 0 |", "- t=10 add 3 node(s)", "| 10 | 4 | 4 | 0 | 300 | 270 | 1000 |"} {
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
