package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/orchestrator"
	"github.com/pocketstore/pocket/wire"
)

func init() {
	register("up", "run a local cluster: the controller and N storage nodes", runUp)
}

// upOptions describe a local cluster.
type upOptions struct {
	listen   string
	nodes    int
	dram     string
	nodeMbps float64 // DRAM bandwidth each node reports (0: the controller's default)
	quiet    bool
	metrics  string // serve the controller's /metrics here
	// secretFile holds the cluster secret (created if missing); "" takes
	// $POCKET_SECRET, else a fresh secret in a temporary file.
	secretFile string

	autoscale bool
	scale     controller.AutoscaleConfig // band, bounds, cool-down
}

// upCluster is a running local cluster.
type upCluster struct {
	ctl    *controller.Controller
	addr   string
	secret *ownSecret
	orch   *orchestrator.Local
	auto   *controller.Autoscaler
	mserv  *http.Server
}

func (u *upCluster) close() {
	if u.mserv != nil {
		_ = u.mserv.Close()
	}
	_ = u.ctl.Close() // stops the autoscaler first, so it starts no node now
	_ = u.orch.Close()
	u.secret.close()
}

// nodeSpec is the template of every node of the cluster.
func (o *upOptions) nodeSpec(ctl string) orchestrator.NodeSpec {
	spec := orchestrator.NodeSpec{DRAM: o.dram, Controller: ctl}
	if o.nodeMbps > 0 {
		spec.Args = []string{"--dram-mbps", strconv.FormatFloat(o.nodeMbps, 'f', -1, 64)}
	}
	return spec
}

// startUp starts the controller in this process and the nodes as child
// processes that register with it; with autoscale, the autoscaler then
// starts and drains nodes through the same orchestrator. The nodes get the
// cluster secret in their environment, never in their arguments.
func startUp(ctx context.Context, o upOptions) (*upCluster, error) {
	secret, err := loadOwnSecret(o.secretFile)
	if err != nil {
		return nil, err
	}
	logf := log.Printf
	if o.quiet {
		logf = func(string, ...any) {}
	}
	ctl, err := controller.New(controller.Config{Secret: secret.key, Logf: logf})
	if err != nil {
		secret.close()
		return nil, err
	}
	addr, err := ctl.Listen(o.listen)
	if err != nil {
		ctl.Close()
		secret.close()
		return nil, err
	}
	u := &upCluster{ctl: ctl, addr: addr.String(), secret: secret,
		orch: &orchestrator.Local{Env: []string{token.EnvSecret + "=" + string(secret.key)}}}
	if !o.quiet {
		u.orch.Log = os.Stderr
	}
	if o.metrics != "" {
		u.mserv = &http.Server{Addr: o.metrics, Handler: metricsMux(ctl), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := u.mserv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Printf("up: metrics on %s: %v", o.metrics, err)
			}
		}()
	}
	for i := 0; i < o.nodes; i++ {
		if _, err := u.orch.Start(ctx, o.nodeSpec(u.addr)); err != nil {
			return u, err
		}
	}
	if err := u.awaitNodes(ctx, o.nodes); err != nil {
		return u, err
	}
	if o.autoscale {
		cfg := o.scale
		cfg.Orchestrator, cfg.Addr, cfg.Spec = u.orch, u.addr, o.nodeSpec(u.addr)
		if u.auto, err = ctl.StartAutoscaler(cfg); err != nil {
			return u, err
		}
	}
	return u, nil
}

func metricsMux(ctl *controller.Controller) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", ctl.MetricsHandler())
	return mux
}

// awaitNodes waits until the controller lists n active nodes.
func (u *upCluster) awaitNodes(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		active := 0
		for _, ns := range u.ctl.Status().Nodes {
			if ns.State == wire.NodeActive {
				active++
			}
		}
		if active >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("up: %d of %d nodes registered: %w", active, n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// bindScale adds the autoscaler's flags.
func bindScale(fs *flag.FlagSet, o *upOptions) {
	fs.BoolVar(&o.autoscale, "autoscale", false, "grow and shrink the cluster with its utilization (starts --min-nodes nodes)")
	fs.IntVar(&o.scale.MinNodes, "min-nodes", 1, "with --autoscale: fewest nodes")
	fs.IntVar(&o.scale.MaxNodes, "max-nodes", 8, "with --autoscale: most nodes")
	fs.Float64Var(&o.scale.High, "scale-high", 0.8, "with --autoscale: add nodes above this utilization")
	fs.Float64Var(&o.scale.Low, "scale-low", 0.6, "with --autoscale: drain a node below this utilization")
	fs.DurationVar(&o.scale.Cooldown, "cooldown", 10*time.Second, "with --autoscale: least time between changes")
	fs.DurationVar(&o.scale.DrainDeadline, "drain-deadline", controller.DefaultDrainDeadline, "with --autoscale: deadline of a scale-in drain")
	fs.Float64Var(&o.nodeMbps, "node-mbps", 0, "network bandwidth each node reports, Mb/s (default: the controller's 8000)")
}

func runUp(args []string) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	var o upOptions
	fs.StringVar(&o.listen, "listen", ctlDefaultAddr, "controller address")
	fs.IntVar(&o.nodes, "nodes", 3, "storage nodes to start (with --autoscale: --min-nodes)")
	fs.StringVar(&o.dram, "dram", "1GiB", "DRAM tier of each node")
	fs.StringVar(&o.metrics, "metrics", "", "serve the controller's Prometheus /metrics on this address")
	fs.StringVar(&o.secretFile, "secret-file", "", "file holding the cluster secret, mode 0600; created with a fresh secret if missing\n(default $"+token.EnvSecret+"; else a fresh secret in a temporary file, removed when the cluster stops)")
	bindScale(fs, &o)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.autoscale {
		o.nodes = o.scale.MinNodes
	}
	if o.nodes < 1 {
		return fail("up: --nodes and --min-nodes must be at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	u, err := startUp(ctx, o)
	if u != nil {
		defer u.close()
	}
	if err != nil {
		return fail("%v", err)
	}
	printUp(u, o)
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		fmt.Println("stopping the cluster")
	}
	return 0
}

func printUp(u *upCluster, o upOptions) {
	fmt.Printf("pocket cluster up: controller %s, %d nodes of %s DRAM\n", u.addr, o.nodes, o.dram)
	for _, n := range u.orch.Nodes() {
		fmt.Printf("  node %s\n", n.Addr)
	}
	if o.autoscale {
		fmt.Printf("autoscaling between %d and %d nodes, band %.0f%%-%.0f%%, cool-down %v\n",
			o.scale.MinNodes, o.scale.MaxNodes, 100*o.scale.Low, 100*o.scale.High, o.scale.Cooldown)
	}
	if o.metrics != "" {
		fmt.Printf("controller metrics on http://%s/metrics\n", o.metrics)
	}
	fmt.Printf("point the other commands at it with:\n  export %s=%s\n", metaclient.EnvController, u.addr)
	secretArg, note := u.secret.usage()
	fmt.Printf("to add a node or drain one (%s):\n  pocket node --controller %s%s\n  pocket node drain ADDR%s\n",
		note, u.addr, secretArg, secretArg)
	fmt.Println("then: pocket job register NAME; pocket put JOBID KEY FILE; pocket get JOBID KEY; pocket status. Ctrl-C stops the cluster.")
}
