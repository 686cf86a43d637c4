package main

import (
	"context"
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
	o := upOptions{listen: "127.0.0.1:0", serve: &ctlServe{}}
	fs.StringVar(&o.dram, "dram", "256MiB", "DRAM tier of each node")
	timescale := fs.Float64("timescale", 1, "wall seconds per trace second (0.5 runs the 120 s trace in 60 s)")
	out := fs.String("out", "", "directory for report.md and trace.png (default: print the report)")
	verbose := fs.Bool("v", false, "log the controller's and the autoscaler's decisions as they happen")
	bindScale(fs, &o)
	// The demo's nodes are small so that a loopback load needs several,
	// and its cool-down short so that a two-minute trace shows the shape.
	for name, v := range map[string]string{"node-mbps": "250", "cooldown": "5s"} {
		if err := fs.Set(name, v); err != nil {
			return fail("trace: %v", err)
		}
		fs.Lookup(name).DefValue = v
	}
	if _, code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
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
		Jobs:      trace.Pocket(),
		Timescale: *timescale,
		Logf:      logf,
	})
	if err != nil {
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
	return writeTrace(res, *out, "pocket trace "+strings.Join(args, " "))
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
		return 0
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
	fmt.Printf("node-seconds %.0f of %.0f static (%.0f%%), peak %d nodes; report in %s\n",
		res.NodeSeconds, res.StaticNodeSeconds, 100*res.Ratio(), res.PeakNodes, dir)
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
