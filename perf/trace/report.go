package trace

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Markdown writes the run's report: the command, the totals against
// static peak provisioning, each job's figures, and the samples every
// step seconds of trace time.
func (r *Result) Markdown(w io.Writer, command, png string, step float64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Trace: jobs arriving and leaving against `pocket up --autoscale`\n\n")
	fmt.Fprintf(&b, "Command:\n\n    %s\n\n", command)
	fmt.Fprintf(&b, "Trace length %.0f s of trace time at timescale %.2f (%.0f s of wall time).\n\n",
		r.Length.Seconds(), r.Timescale, r.Length.Seconds()*r.Timescale)
	if r.Setup != "" {
		fmt.Fprintf(&b, "%s\n\n", r.Setup)
	}
	fmt.Fprintf(&b, "| figure | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| node-seconds used | %.0f |\n", r.NodeSeconds)
	fmt.Fprintf(&b, "| peak nodes | %d |\n", r.PeakNodes)
	fmt.Fprintf(&b, "| node-seconds of a static cluster sized for the peak | %.0f |\n", r.StaticNodeSeconds)
	fmt.Fprintf(&b, "| used / static | **%.0f%%** (target: at most 50%%) |\n\n", 100*r.Ratio())
	fmt.Fprintf(&b, "| job | id | nodes at registration | puts | gets | MB moved | errors |\n|---|---|---|---|---|---|---|\n")
	for _, j := range r.Jobs {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %.0f | %d%s |\n", j.Name, j.ID, j.Nodes, j.Puts, j.Gets,
			float64(j.Bytes)/1e6, j.Errors, firstErr(j.FirstEr))
	}
	if png != "" {
		fmt.Fprintf(&b, "\n![allocated and used bandwidth, node count](%s)\n", png)
	}
	if len(r.Decisions) > 0 {
		fmt.Fprintf(&b, "\nAutoscaler decisions (trace seconds):\n\n")
		for _, d := range r.Decisions {
			fmt.Fprintf(&b, "- %s\n", d)
		}
	}
	fmt.Fprintf(&b, "\nSamples (trace seconds; Mb/s; nodes running include draining ones):\n\n")
	fmt.Fprintf(&b, "| t | nodes | active | jobs | allocated | used | capacity |\n|---|---|---|---|---|---|---|\n")
	next := math.Inf(-1)
	for _, p := range r.Points {
		if p.T < next {
			continue
		}
		next = p.T + step
		fmt.Fprintf(&b, "| %.0f | %d | %d | %d | %.0f | %.0f | %.0f |\n", p.T, p.Nodes, p.Active, p.Jobs, p.AllocMbps, p.UsedMbps, p.CapMbps)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func firstErr(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

// PlotPNG draws two panels over trace time: bandwidth (allocated from
// hints, used as measured, capacity of the active nodes) and node count.
func (r *Result) PlotPNG(path string) error {
	bw := plot.New()
	bw.Title.Text = "Bandwidth"
	bw.Y.Label.Text = "Mb/s"
	bw.Legend.Top = true
	series := []struct {
		name string
		y    func(Point) float64
		c    color.RGBA
	}{
		{"capacity (active nodes)", func(p Point) float64 { return p.CapMbps }, color.RGBA{R: 150, G: 150, B: 150, A: 255}},
		{"allocated (hints)", func(p Point) float64 { return p.AllocMbps }, color.RGBA{B: 200, A: 255}},
		{"used (measured)", func(p Point) float64 { return p.UsedMbps }, color.RGBA{R: 220, G: 100, A: 255}},
	}
	for _, s := range series {
		l, err := plotter.NewLine(r.xys(s.y))
		if err != nil {
			return err
		}
		l.Color = s.c
		l.Width = vg.Points(1.5)
		bw.Add(l)
		bw.Legend.Add(s.name, l)
	}
	nodes := plot.New()
	nodes.Title.Text = "Nodes"
	nodes.X.Label.Text = "trace time (s)"
	nodes.Y.Label.Text = "nodes"
	nodes.Y.Min = 0
	l, err := plotter.NewLine(r.xys(func(p Point) float64 { return float64(p.Nodes) }))
	if err != nil {
		return err
	}
	l.StepStyle = plotter.PostStep
	l.Width = vg.Points(1.5)
	nodes.Add(l)
	nodes.Y.Max = float64(r.PeakNodes) + 1
	bw.X.Min, nodes.X.Min = 0, 0
	return savePanels(path, bw, nodes)
}

func (r *Result) xys(y func(Point) float64) plotter.XYs {
	out := make(plotter.XYs, len(r.Points))
	for i, p := range r.Points {
		out[i] = plotter.XY{X: p.T, Y: y(p)}
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
