package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/orchestrator/k8s"
	"github.com/pocketstore/pocket/orchestrator/spot"
)

func init() {
	register("spot", "[ADDR...]", "drain this host's nodes when its spot or preemptible instance gets its termination notice", runSpot)
}

// spotOptions are the flags of `pocket spot`; drain flags are passed on
// to `pocket node drain`.
type spotOptions struct {
	provider string
	metadata string
	interval time.Duration
	limit    time.Duration
	margin   time.Duration
	k8sHost  string
	k8sNS    string
	drain    []string // --controller, --secret-file, --tls-dir, --insecure as given
}

func (o *spotOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.provider, "provider", "", "cloud whose metadata service gives the notice: aws (EC2 spot, 2 min) or gce (spot and preemptible VMs, 30 s)")
	fs.StringVar(&o.metadata, "metadata", "", "metadata service URL (default http://169.254.169.254 for aws, http://metadata.google.internal for gce)")
	fs.DurationVar(&o.interval, "interval", 5*time.Second, "time between polls of the metadata service")
	fs.DurationVar(&o.limit, "deadline", 2*time.Minute, "longest drain deadline; a notice that leaves less time gets that time less --margin")
	fs.DurationVar(&o.margin, "margin", 10*time.Second, "time kept between the drain's deadline and the host's end")
	fs.StringVar(&o.k8sHost, "k8s-host", "", "also drain the node pods scheduled on this Kubernetes node (spec.nodeName; in a DaemonSet, from the downward API)")
	fs.StringVar(&o.k8sNS, "k8s-namespace", "", "namespace of the node pods (default $"+k8s.EnvPodNamespace+")")
	// The values are checked as node drain checks them, when spot starts:
	// drain runs only when the host's termination notice comes, too late
	// to hear that a value is wrong.
	pass := func(name, help string, check func(string) error) {
		fs.Func(name, help, func(v string) error {
			if err := check(v); err != nil {
				return err
			}
			o.drain = append(o.drain, "--"+name, v)
			return nil
		})
	}
	pass("controller", "controller `ADDR`, passed to pocket node drain (default $POCKET_CONTROLLER or "+ctlDefaultAddr+")",
		func(v string) error { return dialList.check("--controller", v) })
	pass("secret-file", "`FILE` holding the cluster secret, mode 0600, passed to pocket node drain (default $POCKET_SECRET)",
		func(v string) error { return checkSecretFileFlag(v, false) })
	pass("tls-dir", "`DIR` with the cluster CA and an operator certificate, passed to pocket node drain (default $"+envTLSDir+")",
		func(string) error { return nil })
	fs.BoolFunc("insecure", "talk to the controller over plain TCP, passed to pocket node drain (tests only)", func(string) error {
		o.drain = append(o.drain, "--insecure")
		return nil
	})
}

// runSpot is `pocket spot`: it polls the metadata service until the
// host's termination notice, then drains the nodes named as arguments and
// those --k8s-host finds, all at once, and waits to be stopped (a
// DaemonSet restarts what exits, and a second drain of the same nodes
// would fail).
func runSpot(args []string) int {
	fs := newFlagSet("spot")
	var o spotOptions
	o.bind(fs)
	var lf logFlags
	lf.bind(fs)
	addrs, code, ok := parseFlags(fs, args, 0, -1)
	if !ok {
		return code
	}
	if len(addrs) == 0 && o.k8sHost == "" {
		return usageError("spot", errors.New("name the nodes to drain: ADDR arguments or --k8s-host"))
	}
	if p := spot.Provider(o.provider); p != spot.AWS && p != spot.GCE {
		return usageError("spot", fmt.Errorf("--provider %q: want aws or gce", o.provider))
	}
	h, err := lf.handler(os.Stderr)
	if err != nil {
		return usageError("spot", err) // a bad --log-level or --log-format
	}
	id := newIdentity(h, "spot")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	w := &spot.Watcher{Provider: spot.Provider(o.provider), BaseURL: o.metadata, Interval: o.interval, Logger: id.log}
	plan := spot.Plan{Targets: o.targets(addrs), Drain: o.drainNode, Limit: o.limit, Margin: o.margin, Logger: id.log}
	id.log.Info("spot: watching for a termination notice", "provider", o.provider, "nodes", addrs, "k8s_host", o.k8sHost)
	if _, err := spot.Run(ctx, w, plan); err != nil {
		if ctx.Err() != nil {
			return 0
		}
		id.log.Error("spot: drain", "err", err)
	}
	<-ctx.Done()
	return 0
}

// targets lists the nodes named on the command line and, with --k8s-host,
// the node pods on that host at the time of the notice.
func (o *spotOptions) targets(addrs []string) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		if o.k8sHost == "" {
			return addrs, nil
		}
		cs, err := k8s.InClusterClient()
		if err != nil {
			return addrs, err
		}
		ns := o.k8sNS
		if ns == "" {
			ns = os.Getenv(k8s.EnvPodNamespace)
		}
		nodes, err := k8s.ListNodePods(ctx, cs, ns, o.k8sHost)
		if err != nil {
			return addrs, err
		}
		out := append([]string(nil), addrs...)
		for _, n := range nodes {
			out = append(out, n.Addr)
		}
		return out, nil
	}
}

// drainNode runs `pocket node drain ADDR --deadline D --discard-persisted
// --lose-overflow --retry-busy` with the drain flags given to spot. The
// host is taken away at the deadline whatever the drain does, so
// persisted values of ended jobs on it are lost either way, and so are
// values the other nodes have no room for: refusing the drain for either
// would also keep the values that can move from moving. The controller
// logs what was destroyed. A drain refused as busy (another node of one of
// its jobs drains, often one on the same host) is ordered again until it
// passes.
func (o *spotOptions) drainNode(_ context.Context, addr string, deadline time.Duration) error {
	args := append(append([]string(nil), o.drain...), "--deadline", deadline.String(), "--discard-persisted", "--lose-overflow", "--retry-busy", addr)
	if code := runDrain(args); code != 0 {
		return fmt.Errorf("pocket node drain %s exited %d", addr, code)
	}
	return nil
}
