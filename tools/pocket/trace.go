package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/perf/trace"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

func init() {
	register("trace", "", "replay jobs arriving and leaving against an autoscaling local cluster; report and plot", runTrace)
}

func runTrace(args []string) int {
	fs := newFlagSet("trace")
	o := traceUpOptions()
	fs.StringVar(&o.dram, "dram", "256MiB", "DRAM tier of each node")
	timescale := fs.Float64("timescale", 1, "wall seconds per trace second (0.5 runs the 180 s elastic trace in 90 s; the controller's cool-downs stay in wall time, so only 1 measures the target)")
	which := fs.String("trace", "elastic", "the jobs to replay: "+traceNames())
	out := fs.String("out", "", "directory for report.md and trace.png (default: print the report)")
	verbose := fs.Bool("v", false, "log the controller's and the autoscaler's decisions as they happen")
	bindScale(fs, &o)
	fs.StringVar(&o.listen, "listen", o.listen, "controller address (port 0: one the kernel picks)")
	fs.StringVar(&o.nodePorts, "node-ports", "", "ports the nodes listen on, FIRST-LAST, at least --max-nodes of them (default: ports the kernel picks)")
	// The demo's nodes are small so that a loopback load needs several,
	// and its cool-down short so that a two-minute trace shows the shape.
	for name, v := range map[string]string{"node-mbps": "250", "cooldown": "5s"} {
		if err := fs.Set(name, v); err != nil {
			return fail("trace: %v", err)
		}
		fs.Lookup(name).DefValue = v
	}
	fs.Lookup("node-mbps").Usage = "network bandwidth each node reports, Mb/s"
	fs.Lookup("autoscale").Usage = "always on here: the trace runs against an autoscaling cluster"
	if _, code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	if flagGiven(fs, "autoscale") && !o.autoscale {
		return usageError("trace", errors.New("--autoscale=false: a trace runs against an autoscaling cluster only (--no-job-scaling keeps each job's map as sized)"))
	}
	jobs, err := trace.Named(*which)
	if err == nil {
		err = o.checkScale()
	}
	if err == nil {
		o.autoscale = true // checkNodePorts counts --max-nodes
		err = o.checkNodePorts()
	}
	if err == nil {
		_, err = sizeFlag("dram", o.dram, o.dram, "means no DRAM tier")
	}
	if err == nil && !(*timescale > 0) {
		err = fmt.Errorf("--timescale %v: want wall seconds per trace second, above 0", *timescale)
	}
	if err != nil {
		return usageError("trace", err)
	}
	o.autoscale, o.quiet = true, !*verbose
	o.nodes = o.scale.MinNodes
	// The cluster lives as long as this command: its CA and certificates
	// go in a private temporary directory.
	data, err := os.MkdirTemp("", "pocket-trace-")
	if err != nil {
		return fail("trace: %v", err)
	}
	defer os.RemoveAll(data)
	o.serve.data = data
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	u, err := startUp(ctx, o)
	if u != nil {
		defer u.close()
	}
	if err != nil {
		return fail("trace: %v", err)
	}
	tc, err := memberConfig(u.tlsDir, pki.RoleClient)
	if err != nil {
		return fail("trace: %v", err)
	}
	store, err := pocket.Dial(ctx, u.addr, pocket.Config{TLS: tc})
	if err != nil {
		return fail("trace: %v", err)
	}
	defer store.Close()
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	start := time.Now()
	res, err := trace.Run(ctx, trace.Config{
		Store:     store,
		Status:    func(context.Context) (*wire.ClusterStatus, error) { return u.ctl.Status(), nil },
		Jobs:      jobs,
		Timescale: *timescale,
		Band:      o.scale.High,
		NodeMbps:  cmp.Or(o.nodeMbps, controller.DefaultPolicy().NodeMbps),
		MinNodes:  o.scale.MinNodes,
		Logf:      logf,
	})
	interrupted := err != nil && res != nil && ctx.Err() != nil
	if err != nil && !interrupted {
		return fail("trace: %v", err)
	}
	res.Setup = fmt.Sprintf("Cluster: `pocket up --autoscale` in process, nodes of %s DRAM reporting %.0f Mb/s each, band %.0f%%-%.0f%%, "+
		"%d to %d nodes, cool-down %v. Machine: %d cores, %s, %s/%s; all nodes and the load generator share it over loopback.",
		o.dram, o.nodeMbps, 100*o.scale.Low, 100*o.scale.High, o.scale.MinNodes, o.scale.MaxNodes, o.scale.Cooldown,
		runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	res.Decisions = append(res.Decisions, startFigures(u.auto.Starts()))
	for _, d := range u.auto.Decisions() {
		res.Decisions = append(res.Decisions, fmt.Sprintf("t=%.0f %s %s: %s", d.At.Sub(start).Seconds() / *timescale, d.Action, decisionNodes(d.Count, d.Drain), d.Reason))
	}
	code := writeTrace(res, *out, "pocket trace "+strings.Join(args, " "))
	if interrupted {
		// As the other commands interrupted: the report of what ran, and
		// exit 1 (before, "trace: context canceled" and no report).
		warn("trace", "interrupted at t=%.0f s of trace time: the report covers the time run", res.Interrupted)
		return 1
	}
	return code
}

// traceNames describes the named traces for the --trace flag.
func traceNames() string {
	return `"elastic" (Pocket's sort, video, sort and a long job whose load rises and falls, 180 s) or "pocket" (the first three, 120 s)`
}

// traceUpOptions is the cluster a trace runs against, before its flags:
// on loopback, with pocket up's defaults for the controller's graces (a
// zero orphan grace is refused).
func traceUpOptions() upOptions {
	return upOptions{listen: "127.0.0.1:0", serve: &ctlServe{orphanGrace: controller.DefaultOrphanGrace, deadGrace: controller.DefaultDeadNodeGrace}}
}

func decisionNodes(count int, drain []string) string {
	if len(drain) > 0 {
		return strings.Join(drain, ", ")
	}
	return fmt.Sprintf("%d node(s)", count)
}

// writeTrace prints the report, or writes it and the plot to dir.
func writeTrace(res *trace.Result, dir, command string) int {
	if dir == "" {
		if err := res.Markdown(os.Stdout, command, "", 5); err != nil {
			return fail("trace: %v", err)
		}
		return jobErrors(res)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail("trace: %v", err)
	}
	if err := res.PlotPNG(filepath.Join(dir, "trace.png")); err != nil {
		return fail("trace: plot: %v", err)
	}
	f, err := os.Create(filepath.Join(dir, "report.md"))
	if err != nil {
		return fail("trace: %v", err)
	}
	if err := res.Markdown(f, command, "trace.png", 5); err != nil {
		f.Close()
		return fail("trace: %v", err)
	}
	if err := f.Close(); err != nil {
		return fail("trace: %v", err)
	}
	fmt.Printf("%s; report in %s\n", traceSummary(res), dir)
	return jobErrors(res)
}

// traceSummary is the run's figures in one line.
func traceSummary(res *trace.Result) string {
	written, verified := 0, 0
	for _, j := range res.Jobs {
		written, verified = written+j.Written, verified+j.Verified
	}
	// The static cluster without per-job growth is named only when it is
	// larger than the run's own peak (else the two figures are one).
	noGrowth := ""
	if res.NoGrowthNodes > res.PeakNodes {
		noGrowth = fmt.Sprintf("; of %.0f, %.0f%%, for a static cluster without per-job growth, %d nodes", res.NoGrowthNodeSeconds, 100*res.NoGrowthRatio(), res.NoGrowthNodes)
	}
	s := fmt.Sprintf("node-seconds %.0f of %.0f static (%.0f%%%s), peak %d nodes for %.0f s, %.0f node-seconds of load beyond the nodes' bandwidth, %d job error(s), %d of %d values verified",
		res.NodeSeconds, res.StaticNodeSeconds, 100*res.Ratio(), noGrowth, res.PeakNodes, res.PeakSeconds, res.OverNodeSeconds, res.Errors(), verified, written)
	if res.FloorBand > 0 {
		s += fmt.Sprintf("; no controller within the band could use fewer than %.0f node-seconds (%.0f%%) on this trace", res.FloorBand, 100*res.FloorRatio())
	}
	for _, j := range res.Followed() {
		s += fmt.Sprintf("; %s's map %s node(s), %d change(s), %.0f node-seconds beyond its nodes' bandwidth",
			j.Name, nodeSpan(j.MinNodes, j.MaxNodes), j.MapChanges, j.OverNodeSeconds)
	}
	return s
}

func nodeSpan(lo, hi int) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// jobErrors is the exit code: 1 when a job had an error (the report says
// which), else 0.
func jobErrors(res *trace.Result) int {
	if n := res.Errors(); n > 0 {
		return fail("trace: %d job error(s); see the job table for the first of each", n)
	}
	return 0
}

// startFigures summarizes how fast new nodes served and registered.
func startFigures(ss []controller.NodeStart) string {
	var serving, registered time.Duration
	for _, s := range ss {
		serving, registered = max(serving, s.Serving), max(registered, s.Registered)
	}
	return fmt.Sprintf("%d node start(s): the slowest served %v and registered %v after its start",
		len(ss), serving.Round(time.Millisecond), registered.Round(time.Millisecond))
}

// flagGiven reports whether the flag name was given on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
