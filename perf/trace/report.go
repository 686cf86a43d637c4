package trace

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// TargetRatio is issue 15's target for node-seconds used over those of a
// static cluster sized for the peak (Result.Ratio: the run's own peak, the
// measure of the "48 % without per-job growth"), on the trace with
// the long job.
const TargetRatio = 0.45

// Markdown writes the run's report: the command, the totals against
// static peak provisioning, each job's figures, each followed job's nodes
// over time, and the samples every step seconds of trace time.
func (r *Result) Markdown(w io.Writer, command, png string, step float64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Trace: jobs arriving and leaving against `pocket up --autoscale`\n\n")
	fmt.Fprintf(&b, "Command:\n\n    %s\n\n", command)
	fmt.Fprintf(&b, "Trace length %.0f s of trace time at timescale %.2f (%.0f s of wall time).\n\n",
		r.Length.Seconds(), r.Timescale, r.Length.Seconds()*r.Timescale)
	if r.Setup != "" {
		fmt.Fprintf(&b, "%s\n\n", r.Setup)
	}
	if r.Interrupted > 0 {
		fmt.Fprintf(&b, "**Interrupted** at t=%.0f s of trace time: the figures cover the time run, and the jobs running then "+
			"were not verified (their keys are not counted as errors); those not yet arrived did not run.\n\n", r.Interrupted)
	}
	r.writeTotals(&b)
	r.writeJobs(&b)
	if png != "" {
		fmt.Fprintf(&b, "\n![allocated and used bandwidth, node count, followed jobs' nodes](%s)\n", png)
	}
	for _, j := range r.Followed() {
		r.writeFollowed(&b, j, step)
	}
	if len(r.Decisions) > 0 {
		fmt.Fprintf(&b, "\nAutoscaler decisions (trace seconds):\n\n")
		for _, d := range r.Decisions {
			fmt.Fprintf(&b, "- %s\n", d)
		}
	}
	r.writeSamples(&b, step)
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Result) writeTotals(b *strings.Builder) {
	written, verified := 0, 0
	for _, j := range r.Jobs {
		written, verified = written+j.Written, verified+j.Verified
	}
	fmt.Fprintf(b, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(b, "| node-seconds used | %.0f |\n", r.NodeSeconds)
	fmt.Fprintf(b, "| peak nodes | %d, for %.0f s |\n", r.PeakNodes, r.PeakSeconds)
	fmt.Fprintf(b, "| node-seconds of a static cluster of this run's peak (%d nodes) | %.0f |\n", r.PeakNodes, r.StaticNodeSeconds)
	fmt.Fprintf(b, "| used / static | **%.0f%%** %s |\n", 100*r.Ratio(), r.targetNote())
	if r.FloorBand > 0 && r.StaticNodeSeconds > 0 {
		fmt.Fprintf(b, "| the fewest node-seconds any controller could use on this trace, its nodes filled to %.0f%% (each job needs the larger of its hint and its load as its nodes measure it; nodes added and removed in no time, the load known ahead) | %.0f (%.0f%% of the static cluster; used is %.2fx) |\n",
			100*r.band(), r.FloorBand, 100*r.FloorRatio(), r.NodeSeconds/r.FloorBand)
		same := ""
		if math.Round(r.FloorFull) == math.Round(r.FloorBand) {
			// A new user's trial took two equal rows for a fault.
			same = ": the same, the jobs' needs take as many whole nodes either way"
		}
		fmt.Fprintf(b, "| the same with nodes filled to 100%% | %.0f (%.0f%%)%s |\n", r.FloorFull, 100*r.FloorFull/r.StaticNodeSeconds, same)
	}
	fmt.Fprintf(b, "| for comparison: node-seconds of the static cluster a controller without per-job growth needs (%d nodes: each job holds its largest need, allotment or own traffic, for its whole run, at %.0f%% of a node) | %.0f |\n",
		r.NoGrowthNodes, 100*r.band(), r.NoGrowthNodeSeconds)
	fmt.Fprintf(b, "| used / that cluster | %.0f%% |\n", 100*r.NoGrowthRatio())
	fmt.Fprintf(b, "| node-seconds of load beyond the nodes' bandwidth (nodes measuring over 100%%) | %.0f |\n", r.OverNodeSeconds)
	fmt.Fprintf(b, "| job errors | %d |\n", r.Errors())
	fmt.Fprintf(b, "| values read back and checked at each job's end | %d of %d |\n\n", verified, written)
}

// targetNote says what the ratio is measured against: TargetRatio, for a
// run at timescale 1 of a trace with a followed job whose load changes;
// otherwise why this run does not measure it. The controller's cool-down,
// heartbeat averages and band checks run in wall time whatever the
// timescale, so a faster replay gives the cluster less time to shrink and
// distorts its node-seconds (0.1 turned 48 % into 83 %).
func (r *Result) targetNote() string {
	switch {
	case r.Timescale != 1:
		return fmt.Sprintf("(not measuring the target of at most %.0f%%: at timescale %.2f the controller's cool-down and averages still run in wall time; run at timescale 1)",
			100*TargetRatio, r.Timescale)
	case len(r.Followed()) == 0:
		return fmt.Sprintf("(the target of at most %.0f%% is for the trace with the long job, --trace elastic)", 100*TargetRatio)
	}
	if f := r.FloorRatio(); f > TargetRatio {
		return fmt.Sprintf("(target: at most %.0f%%, below this trace's floor of %.0f%% at the band: see below)", 100*TargetRatio, 100*f)
	}
	return fmt.Sprintf("(target: at most %.0f%%)", 100*TargetRatio)
}

// band is the run's Band, or the default for a Result built by hand.
func (r *Result) band() float64 {
	if !(r.Band > 0 && r.Band <= 1) { // NaN too
		return 0.8
	}
	return r.Band
}

func (r *Result) writeJobs(b *strings.Builder) {
	fmt.Fprintf(b, "| job | id | hint Mb/s | peak offered Mb/s | largest need Mb/s (allotment or own traffic) | nodes at registration | nodes while running | map changes (grow, shrink, drain) | node-s beyond its nodes' bandwidth | puts | gets | MB put and got | verified | errors |\n")
	fmt.Fprintf(b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, j := range r.Jobs {
		fmt.Fprintf(b, "| %s | %s | %d | %.0f | %.0f | %d | %s | %d | %.0f | %d | %d | %.0f | %d of %d | %d%s |\n",
			j.Name, j.ID, j.Spec.Hints.PeakMbps, j.Spec.PeakMbps(), j.NeedMbps, j.Nodes, nodeRange(j), j.MapChanges, j.OverNodeSeconds,
			j.Puts, j.Gets, float64(j.Bytes)/1e6, j.Verified, j.Written, j.Errors, firstErr(j.FirstEr))
	}
}

func nodeRange(j JobResult) string {
	if j.MinNodes == j.MaxNodes {
		return fmt.Sprint(j.MinNodes)
	}
	return fmt.Sprintf("%d-%d", j.MinNodes, j.MaxNodes)
}

// writeFollowed writes one followed job's phases (offered and achieved)
// and its map over time.
func (r *Result) writeFollowed(b *strings.Builder, j JobResult, step float64) {
	fmt.Fprintf(b, "\nJob %s over time: registered with a %d Mb/s hint, its load rising to %.0f Mb/s and falling again.\n\n",
		j.Name, j.Spec.Hints.PeakMbps, j.Spec.PeakMbps())
	fmt.Fprintf(b, "Offered and achieved count puts and gets together; a node's measured figure is the larger of its rx and tx, about half of a job that puts and gets alike.\n\n")
	fmt.Fprintf(b, "| phase (trace s) | offered Mb/s | achieved Mb/s |\n|---|---|---|\n")
	at := j.Spec.Arrive
	for i, ph := range j.Spec.phases() {
		got := "-"
		if i < len(j.PhaseMbps) {
			got = fmt.Sprintf("%.0f", j.PhaseMbps[i])
		}
		fmt.Fprintf(b, "| %.0f-%.0f | %.0f | %s |\n", at.Seconds(), (at + ph.For).Seconds(), ph.Mbps, got)
		at += ph.For
	}
	fmt.Fprintf(b, "\n| t | offered Mb/s | nodes in its map | joining | map epoch | measured on its nodes Mb/s |\n|---|---|---|---|---|---|\n")
	next := math.Inf(-1)
	for _, p := range r.Points {
		jp, ok := p.PerJob[j.Name]
		if !ok || p.T < next {
			continue
		}
		next = p.T + step
		fmt.Fprintf(b, "| %.0f | %.0f | %d | %d | %d | %.0f |\n", p.T, j.Spec.MbpsAt(traceTime(p.T)-j.Spec.Arrive),
			jp.Nodes, jp.Joining, jp.Epoch, jp.UsedMbps)
	}
}

func traceTime(sec float64) time.Duration { return time.Duration(sec * float64(time.Second)) }

func (r *Result) writeSamples(b *strings.Builder, step float64) {
	followed := r.Followed()
	fmt.Fprintf(b, "\nSamples (trace seconds; megabits per wall second; nodes running include draining ones). "+
		"\"used\" is what the nodes measured, averaged over 3 heartbeats, so it trails the allotments and the offered load by a few seconds.\n\n")
	fmt.Fprintf(b, "| t | nodes | active | jobs | allocated | used | capacity |")
	for _, j := range followed {
		fmt.Fprintf(b, " %s nodes |", j.Name)
	}
	fmt.Fprintf(b, "\n|---|---|---|---|---|---|---|%s\n", strings.Repeat("---|", len(followed)))
	next := math.Inf(-1)
	for _, p := range r.Points {
		if p.T < next {
			continue
		}
		next = p.T + step
		fmt.Fprintf(b, "| %.0f | %d | %d | %d | %.0f | %.0f | %.0f |", p.T, p.Nodes, p.Active, p.Jobs, p.AllocMbps, p.UsedMbps, p.CapMbps)
		for _, j := range followed {
			if jp, ok := p.PerJob[j.Name]; ok {
				fmt.Fprintf(b, " %d |", jp.Nodes)
			} else {
				fmt.Fprintf(b, " - |")
			}
		}
		b.WriteString("\n")
	}
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// series is one line of a panel: a name, a value per sample (NaN where
// it has none) and a colour.
type series struct {
	name   string
	y      func(Point) float64
	c      color.RGBA
	dashed bool
	step   bool
}

// PlotPNG draws two panels over trace time: bandwidth (allocated from
// hints, used as measured, capacity of the active nodes, and each
// followed job's offered load and what its nodes measured) and node count
// (the cluster's, and the nodes in each followed job's map).
func (r *Result) PlotPNG(path string) error {
	bw := plot.New()
	bw.Title.Text = "Bandwidth"
	bw.Y.Label.Text = "Mb/s"
	bw.Legend.Top = true
	bwSeries := []series{
		{name: "capacity (active nodes)", y: func(p Point) float64 { return p.CapMbps }, c: color.RGBA{R: 150, G: 150, B: 150, A: 255}},
		{name: "allocated (hints)", y: func(p Point) float64 { return p.AllocMbps }, c: color.RGBA{B: 200, A: 255}},
		{name: "used (measured)", y: func(p Point) float64 { return p.UsedMbps }, c: color.RGBA{R: 220, G: 100, A: 255}},
	}
	nodes := plot.New()
	nodes.Title.Text = "Nodes"
	nodes.X.Label.Text = "trace time (s)"
	nodes.Y.Label.Text = "nodes"
	nodes.Legend.Top = true
	nodeSeries := []series{{name: "cluster (running)", y: func(p Point) float64 { return float64(p.Nodes) }, c: color.RGBA{A: 255}, step: true}}
	for _, j := range r.Followed() {
		bwSeries = append(bwSeries, r.offered(j), jobSeries(j.Name+": measured on its nodes", j.Name, color.RGBA{G: 150, A: 255},
			func(jp JobPoint) float64 { return jp.UsedMbps }))
		nodeSeries = append(nodeSeries, jobSeries(j.Name+"'s map", j.Name, color.RGBA{G: 150, A: 255},
			func(jp JobPoint) float64 { return float64(jp.Nodes) }))
	}
	if err := r.addLines(bw, bwSeries); err != nil {
		return err
	}
	if err := r.addLines(nodes, nodeSeries); err != nil {
		return err
	}
	nodes.Y.Min, nodes.Y.Max = 0, float64(r.PeakNodes)+1
	nodes.Y.Tick.Marker = plot.TickerFunc(wholeTicks)
	bw.X.Min, nodes.X.Min = 0, 0
	return savePanels(path, bw, nodes)
}

// wholeTicks marks each whole number from min to max (a node count has
// no "2.50"), every second one labelled past 12.
func wholeTicks(min, max float64) []plot.Tick {
	every := 1
	if max-min > 12 {
		every = 2
	}
	var ts []plot.Tick
	for v := int(math.Ceil(min)); float64(v) <= max; v++ {
		t := plot.Tick{Value: float64(v)}
		if v%every == 0 {
			t.Label = fmt.Sprint(v)
		}
		ts = append(ts, t)
	}
	return ts
}

// offered is a followed job's offered load over the samples.
func (r *Result) offered(j JobResult) series {
	return series{name: j.Name + ": offered (puts + gets)", c: color.RGBA{G: 150, B: 150, A: 255}, dashed: true, step: true,
		y: func(p Point) float64 { return j.Spec.MbpsAt(traceTime(p.T) - j.Spec.Arrive) }}
}

// jobSeries is a figure of one job's map, NaN where it is not registered.
func jobSeries(name, job string, c color.RGBA, f func(JobPoint) float64) series {
	return series{name: name, c: c, dashed: true, step: true, y: func(p Point) float64 {
		jp, ok := p.PerJob[job]
		if !ok {
			return math.NaN()
		}
		return f(jp)
	}}
}

// addLines adds each series as lines between the samples that have a
// value (a series with none adds nothing).
func (r *Result) addLines(p *plot.Plot, ss []series) error {
	for _, s := range ss {
		first := true
		for _, run := range r.runs(s.y) {
			l, err := plotter.NewLine(run)
			if err != nil {
				return err
			}
			l.Color, l.Width = s.c, vg.Points(1.5)
			if s.dashed {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			}
			if s.step {
				l.StepStyle = plotter.PostStep
			}
			p.Add(l)
			if first {
				p.Legend.Add(s.name, l)
				first = false
			}
		}
	}
	return nil
}

// runs splits a series into stretches of samples that have a value.
func (r *Result) runs(y func(Point) float64) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for _, p := range r.Points {
		v := y(p)
		if math.IsNaN(v) {
			if len(cur) > 0 {
				out, cur = append(out, cur), nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: p.T, Y: v})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// savePanels stacks plots vertically in one PNG.
func savePanels(path string, ps ...*plot.Plot) error {
	const width, height = 8 * vg.Inch, 7 * vg.Inch
	img := vgimg.New(width, height)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(ps), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadX: vg.Points(4), PadY: vg.Points(8)}
	grid := make([][]*plot.Plot, len(ps))
	for i, p := range ps {
		grid[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range ps {
		p.Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	png := vgimg.PngCanvas{Canvas: img}
	if _, err := png.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
