package micro

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Files the suite writes into its output directory.
const (
	JSONFile      = "micro.json"
	MarkdownFile  = "micro.md"
	LatencyPNG    = "micro-latency.png"
	ThroughputPNG = "micro-throughput.png"
)

// Save writes the report as JSON, Markdown and PNG plots into dir.
func (r *Report) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, JSONFile), append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, MarkdownFile))
	if err != nil {
		return err
	}
	r.WriteMarkdown(f)
	if err := f.Close(); err != nil {
		return err
	}
	if err := r.plotLatency(filepath.Join(dir, LatencyPNG)); err != nil {
		return fmt.Errorf("micro: latency plot: %w", err)
	}
	if err := r.plotThroughput(filepath.Join(dir, ThroughputPNG)); err != nil {
		return fmt.Errorf("micro: throughput plot: %w", err)
	}
	return nil
}

// WriteMarkdown prints the report's tables.
func (r *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "Machine: %s; %s. Values of %d bytes.\n\n", r.Machine, r.GoVersion, r.ValueSize)
	fmt.Fprintf(w, "Unloaded latency (one client, one request at a time, %d samples):\n\n", r.Samples)
	fmt.Fprintln(w, "| store | op | p50 us | p99 us | mean us |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|")
	for _, l := range r.Latency {
		fmt.Fprintf(w, "| %s | %s | %.1f | %.1f | %.1f |\n", l.Store, l.Op, l.P50us, l.P99us, l.MeanUs)
	}
	fmt.Fprintf(w, "\nOne node's get throughput by clients (one request in flight each, %g s per cell):\n\n", r.Duration)
	writeRates(w, r.Throughput)
	fmt.Fprintln(w, "\nSmall-request IOPS (many requests in flight):")
	fmt.Fprintln(w)
	writeRates(w, r.IOPS)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
}

func writeRates(w io.Writer, ts []Throughput) {
	fmt.Fprintln(w, "| store | op | clients | in flight | ops/s | errors |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|")
	for _, t := range ts {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %.0f | %d |\n", t.Store, t.Op, t.Clients, t.Inflight, t.OpsPerSec, t.Errors)
	}
}

// stores lists the store names in the order they first appear.
func (r *Report) stores() []string {
	var names []string
	seen := map[string]bool{}
	for _, l := range r.Latency {
		if !seen[l.Store] {
			seen[l.Store] = true
			names = append(names, l.Store)
		}
	}
	return names
}

// plotLatency draws p50 latency per op, one bar group per store.
func (r *Report) plotLatency(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Unloaded %d-byte latency (p50)", r.ValueSize)
	p.Y.Label.Text = "microseconds"
	ops := []string{"put", "get", "lookup"}
	stores := r.stores()
	w := vg.Points(18)
	for i, s := range stores {
		vals := make(plotter.Values, len(ops))
		for j, op := range ops {
			for _, l := range r.Latency {
				if l.Store == s && l.Op == op {
					vals[j] = l.P50us
				}
			}
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bars.Color = plotutil.Color(i)
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(float64(i)-float64(len(stores)-1)/2)
		p.Add(bars)
		p.Legend.Add(s, bars)
	}
	p.Legend.Top = true
	p.NominalX(ops...)
	return p.Save(6*vg.Inch, 4*vg.Inch, path)
}

// plotThroughput draws get ops/s against clients, one line per store.
func (r *Report) plotThroughput(path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("One node, %d-byte gets", r.ValueSize)
	p.X.Label.Text = "clients"
	p.Y.Label.Text = "ops/s"
	var args []any
	for _, s := range r.stores() {
		var xys plotter.XYs
		for _, t := range r.Throughput {
			if t.Store == s {
				xys = append(xys, plotter.XY{X: float64(t.Clients), Y: t.OpsPerSec})
			}
		}
		args = append(args, s, xys)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	return p.Save(6*vg.Inch, 4*vg.Inch, path)
}
