package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Metric is the number a comparison cell is judged on.
type Metric uint8

// Metrics.
const (
	MetricOps  Metric = iota + 1 // ops/s, higher is better
	MetricMBps                   // MB/s, higher is better
	MetricP50                    // p50 latency, lower is better
)

func (m Metric) String() string {
	switch m {
	case MetricOps:
		return "ops/s"
	case MetricMBps:
		return "MB/s"
	case MetricP50:
		return "p50 us"
	}
	return "?"
}

func (m Metric) of(r *Result) float64 {
	switch m {
	case MetricOps:
		return r.OpsPerSec
	case MetricMBps:
		return r.MBPerSec
	case MetricP50:
		return r.P50us
	}
	return 0
}

func (m Metric) format(v float64) string {
	switch m {
	case MetricOps:
		return fmtFloat(v, 0)
	case MetricMBps:
		return fmtFloat(v, 1)
	}
	return fmtFloat(v, 1)
}

// Cell is one line of the side-by-side comparison: the same load run
// against our node and against Redis. Target is the ratio ours/Redis the
// issue asks for (a floor for throughput, a ceiling for p50; 0: none).
// LoopbackShare, when set, is the fraction of a single-stream loopback TCP
// transfer, measured in the same run, that our MB/s must reach. EchoShare,
// when set, is the fraction of the echo server's figure (package perf/echo,
// the small-request limit) that ours must reach, measured in the same run;
// for p50 the share is echo's p50 over ours. Every cell is also compared
// with memcached when a run measured it, with target MemcacheTarget.
type Cell struct {
	Name          string
	Title         string
	Op            Op
	Size          int64
	Conns         int
	Pipeline      int
	Metric        Metric
	Target        float64
	LoopbackShare float64
	EchoShare     float64
	// Apart runs the cell with every server on the first core and the
	// load generator on the second (bench-compare pins them with taskset),
	// as a client on another machine would be. On loopback, a lone
	// connection's client and server otherwise share a core whenever the
	// scheduler's wake-up puts them there, which spares both wake-ups a
	// cross-core interrupt, and a server that busy-polls cannot be woken
	// onto the client's core: measured on a 2-core Intel VM, the node's
	// 1-conn GET p50 was 12-16 us with its default busy polling and 9-10
	// without, Redis's 9.7, when free; pinned apart, 13 us with it and 16
	// without, Redis 16.
	Apart bool
}

// MemcacheTarget is the ratio ours/memcached every cell must reach (a
// ceiling for p50): memcached is multi-threaded, so with as many threads as
// the node has loops it is the peer with the same cores.
const MemcacheTarget = 1.0

// LoopbackLabel labels the loopback TCP measurement in a results file.
const LoopbackLabel = "loopback"

// Matrix is the comparison of issue 2: what bench-compare runs against both
// stores, and the targets it checks.
func Matrix() []Cell {
	const kib, mib = 1 << 10, 1 << 20
	return []Cell{
		{Name: "get-1k-c50", Title: "1 KiB GET, 50 conns", Op: Get, Size: kib, Conns: 50, Pipeline: 1, Metric: MetricOps, Target: 1.2, EchoShare: 0.8},
		{Name: "put-1k-c50", Title: "1 KiB PUT, 50 conns", Op: Put, Size: kib, Conns: 50, Pipeline: 1, Metric: MetricOps, EchoShare: 0.8},
		{Name: "get-1k-p16", Title: "1 KiB GET, 50 conns x 16 pipelined", Op: Get, Size: kib, Conns: 50, Pipeline: 16, Metric: MetricOps, Target: 1.5, EchoShare: 0.8},
		{Name: "put-1k-p16", Title: "1 KiB PUT, 50 conns x 16 pipelined", Op: Put, Size: kib, Conns: 50, Pipeline: 16, Metric: MetricOps, Target: 1.5, EchoShare: 0.8},
		{Name: "get-1m-c8", Title: "1 MiB GET, 8 conns", Op: Get, Size: mib, Conns: 8, Pipeline: 1, Metric: MetricMBps, Target: 1.2, LoopbackShare: 0.8},
		{Name: "get-1k-c1", Title: "1 KiB GET, 1 conn", Op: Get, Size: kib, Conns: 1, Pipeline: 1, Metric: MetricP50, Target: 1.0, EchoShare: 0.8},
		{Name: "get-1k-c1-apart", Title: "1 KiB GET, 1 conn, client and servers on separate cores", Op: Get, Size: kib, Conns: 1, Pipeline: 1, Metric: MetricP50, Target: 1.0, EchoShare: 0.8, Apart: true},
	}
}

// WriteMatrix lists the cells for a shell loop, one per line:
// "name op size conns pipeline echo apart", echo 1 when the cell is also
// run against the echo server (EchoShare set), apart 1 when the servers
// and the generator are pinned to separate cores (Apart), else 0.
func WriteMatrix(w io.Writer) error {
	var b strings.Builder
	for _, c := range Matrix() {
		fmt.Fprintf(&b, "%s %s %d %d %d %d %d\n", c.Name, c.Op, c.Size, c.Conns, c.Pipeline, b2i(c.EchoShare > 0), b2i(c.Apart))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtRatio formats ratio q with two decimals, or three when two would
// print the target itself for a q that is not (0.998 against 1.00 reads
// "0.998x", not a "1.00x" that misses a 1.00x target).
func fmtRatio(q, target float64) string {
	if two := fmt.Sprintf("%.2f", q); two == fmt.Sprintf("%.2f", target) && q != target {
		return fmt.Sprintf("%.3fx", q)
	}
	return fmt.Sprintf("%.2fx", q)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// WriteComparison prints the Markdown table of the comparison from the
// results of a bench-compare run: per cell, our node's and Redis's figure,
// the ratio, the target and whether it was met; then, when the results hold
// them, a row against memcached and one as a share of the echo server (and
// of loopback TCP for large values). Results are matched to cells by label
// and to stores by target scheme. When a cell was run more
// than once (repeats on a noisy machine), the run with the median figure
// counts, and any run with errors marks the cell.
func WriteComparison(w io.Writer, results []Result) error {
	byKey := map[string][]*Result{}
	for i := range results {
		r := &results[i]
		k := r.Label + "/" + r.Store()
		byKey[k] = append(byKey[k], r)
	}
	var b strings.Builder
	b.WriteString("| cell | metric | pocket | Redis or limit | ratio | target | met |\n")
	b.WriteString("|---|---|---:|---:|---:|---|---|\n")
	loop := median(MetricMBps, byKey[LoopbackLabel+"/tcp"])
	hasMemcache, hasEcho := hasStore(results, StoreMemcache), hasStore(results, StoreEcho)
	for _, c := range Matrix() {
		ours := median(c.Metric, byKey[c.Name+"/"+StorePocket])
		b.WriteString(compareRow(c, ours, median(c.Metric, byKey[c.Name+"/"+StoreRedis])))
		if hasMemcache {
			b.WriteString(memcacheRow(c, ours, median(c.Metric, byKey[c.Name+"/"+StoreMemcache])))
		}
		if hasEcho && c.EchoShare > 0 {
			b.WriteString(echoRow(c, ours, median(c.Metric, byKey[c.Name+"/"+StoreEcho])))
		}
		if c.LoopbackShare > 0 {
			b.WriteString(loopbackRow(c, ours, loop))
		}
	}
	if loop != nil {
		fmt.Fprintf(&b, "| loopback TCP, 1 stream | MB/s | %s | | | | |\n", fmtFloat(loop.MBPerSec, 1))
	}
	fmt.Fprintf(&b, "\nratio is pocket/Redis, or pocket/memcached on a memcached row (for p50, lower is better); a share-of-echo row divides our figure by the echo server's, the small-request limit (for p50, echo's p50 by ours); the loopback row compares with a single-stream TCP transfer on 127.0.0.1. All measured in the same run. Median of %d run(s) per cell and store.\n", maxRuns(byKey))
	writeCPUTable(&b, byKey)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCPUTable adds, when the results carry them (pocket bench
// --server-pid), each store's CPU time per operation by cell: the server's
// and, in parentheses, the generator's, medians of the runs (cpu.go).
func writeCPUTable(b *strings.Builder, byKey map[string][]*Result) {
	stores := []struct{ name, title string }{
		{StorePocket, "pocket"}, {StoreRedis, "Redis"}, {StoreMemcache, "memcached"}, {StoreEcho, "echo"},
	}
	var rows strings.Builder
	for _, c := range Matrix() {
		row, some := "| "+c.Title, false
		for _, st := range stores {
			srv, gen := medianOf(byKey[c.Name+"/"+st.name], func(r *Result) float64 { return r.ServerCPUus }),
				medianOf(byKey[c.Name+"/"+st.name], func(r *Result) float64 { return r.GenCPUus })
			if srv > 0 {
				row += fmt.Sprintf(" | %s (%s)", fmtFloat(srv, 2), fmtFloat(gen, 2))
				some = true
			} else {
				row += " | n/a"
			}
		}
		if some {
			rows.WriteString(row + " |\n")
		}
	}
	if rows.Len() == 0 {
		return
	}
	b.WriteString("\nCPU time per operation, us, user + system over the measured window: each server's, and in parentheses the generator's in the same runs (medians).\n\n")
	b.WriteString("| cell | pocket | Redis | memcached | echo |\n|---|---:|---:|---:|---:|\n")
	b.WriteString(rows.String())
}

// medianOf is the median of f over the runs that have it (f > 0), or 0.
func medianOf(runs []*Result, f func(*Result) float64) float64 {
	var v []float64
	for _, r := range runs {
		if x := f(r); x > 0 {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// median returns the run whose metric is the median (the upper one for an
// even count), or a run with errors if there is one, or nil for none.
func median(m Metric, runs []*Result) *Result {
	if len(runs) == 0 {
		return nil
	}
	for _, r := range runs {
		if r.failed() {
			return r
		}
	}
	sorted := slices.SortedFunc(slices.Values(runs), func(a, b *Result) int {
		return cmp.Compare(m.of(a), m.of(b))
	})
	return sorted[len(sorted)/2]
}

// value formats a result's metric, or explains why there is none.
func value(m Metric, r *Result) (string, bool) {
	switch {
	case r == nil:
		return "n/a", false
	case r.Errors > 0 || r.FirstError != "" || r.NoSpace > 0:
		return fmt.Sprintf("%s (%d errors)", m.format(m.of(r)), r.Errors+r.NoSpace), false
	case r.RequestedS > 0:
		return fmt.Sprintf("%s (ended after %.1fs of %gs)", m.format(m.of(r)), r.DurationS, r.RequestedS), false
	}
	return m.format(m.of(r)), true
}

// failed reports whether a run is no figure to compare: it saw errors or
// puts refused for space, or ended before its --duration (RequestedS).
func (r *Result) failed() bool {
	return r.Errors > 0 || r.FirstError != "" || r.NoSpace > 0 || r.RequestedS > 0
}

func compareRow(c Cell, ours, theirs *Result) string {
	a, okA := value(c.Metric, ours)
	b, okB := value(c.Metric, theirs)
	ratio, target, met := "n/a", "—", "—"
	if c.Target > 0 {
		op := "≥"
		if c.Metric == MetricP50 {
			op = "≤"
		}
		target = fmt.Sprintf("%s %.2fx", op, c.Target)
	}
	if okA && okB && c.Metric.of(theirs) > 0 {
		q := c.Metric.of(ours) / c.Metric.of(theirs)
		ratio = fmtRatio(q, c.Target)
		if c.Target > 0 {
			met = yesNo(q >= c.Target)
			if c.Metric == MetricP50 {
				met = yesNo(q <= c.Target)
			}
		}
	} else if c.Target > 0 {
		met = unmet(ours)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s |\n", c.Title, c.Metric, a, b, ratio, target, met)
}

// hasStore reports whether any result measured the store.
func hasStore(results []Result, store string) bool {
	for i := range results {
		if results[i].Store() == store {
			return true
		}
	}
	return false
}

// memcacheRow compares a cell with memcached: ours/memcached, at least
// MemcacheTarget (for p50, at most).
func memcacheRow(c Cell, ours, theirs *Result) string {
	a, okA := value(c.Metric, ours)
	b, okB := value(c.Metric, theirs)
	op, ratio, met := "≥", "n/a", unmet(ours)
	if c.Metric == MetricP50 {
		op = "≤"
	}
	if okA && okB && c.Metric.of(theirs) > 0 {
		q := c.Metric.of(ours) / c.Metric.of(theirs)
		ratio = fmtRatio(q, MemcacheTarget)
		met = yesNo(q >= MemcacheTarget)
		if c.Metric == MetricP50 {
			met = yesNo(q <= MemcacheTarget)
		}
	}
	return fmt.Sprintf("| %s, vs memcached | %s | %s | memcached %s | %s | %s %.2fx | %s |\n", c.Title, c.Metric, a, b, ratio, op, MemcacheTarget, met)
}

// echoRow gives a cell as a share of the echo server's figure: ours/echo,
// or echo/ours for p50 (a share of the rate one connection allows).
func echoRow(c Cell, ours, limit *Result) string {
	a, okA := value(c.Metric, ours)
	b, okB := value(c.Metric, limit)
	ratio, met := "n/a", unmet(ours)
	if okA && okB && c.Metric.of(ours) > 0 && c.Metric.of(limit) > 0 {
		q := c.Metric.of(ours) / c.Metric.of(limit)
		if c.Metric == MetricP50 {
			q = 1 / q
		}
		ratio = fmtRatio(q, c.EchoShare)
		met = yesNo(q >= c.EchoShare)
	}
	return fmt.Sprintf("| %s, share of echo server | %s | %s | echo %s | %s | ≥ %.2fx | %s |\n", c.Title, c.Metric, a, b, ratio, c.EchoShare, met)
}

func loopbackRow(c Cell, ours, loop *Result) string {
	a, okA := value(MetricMBps, ours)
	ref, ratio, met := "n/a", "n/a", unmet(ours)
	if loop != nil {
		ref = "loopback " + fmtFloat(loop.MBPerSec, 1)
	}
	if okA && loop != nil && loop.MBPerSec > 0 {
		q := ours.MBPerSec / loop.MBPerSec
		ratio = fmtRatio(q, c.LoopbackShare)
		met = yesNo(q >= c.LoopbackShare)
	}
	return fmt.Sprintf("| %s, share of loopback | MB/s | %s | %s | %s | ≥ %.2fx | %s |\n", c.Title, a, ref, ratio, c.LoopbackShare, met)
}

// maxRuns is the largest number of runs of one cell against one store.
func maxRuns(byKey map[string][]*Result) int {
	n := 0
	for _, runs := range byKey {
		n = max(n, len(runs))
	}
	return n
}

// unmet is the met column of a row without a ratio: "no" when our run
// failed (errors, puts refused for space, ended early), "not run" when
// the results hold no run of ours for the cell, else "n/a" (the peer's or
// the limit's figure is missing or failed). Before, every row without a
// ratio said "no": the report of one cell's results marked every other
// cell's target missed (a new user's trial).
func unmet(ours *Result) string {
	switch {
	case ours == nil:
		return "not run"
	case ours.failed():
		return "no"
	}
	return "n/a"
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}
