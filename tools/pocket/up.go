package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/orchestrator"
	"github.com/pocketstore/pocket/telemetry/metrics"
	"github.com/pocketstore/pocket/wire"
)

func init() {
	register("up", "", "run a local cluster: the controller and N storage nodes", runUp)
}

// upOptions describe a local cluster.
type upOptions struct {
	listen   string
	nodes    int
	dram     string
	nvme     string   // NVMe tier of each node, a size ("": none); its file is in nvmeSubdir
	staging  string   // each node's --nvme-staging ("": the node's default)
	nodeMbps float64  // bandwidth each node reports for each tier (0: the controller's default)
	quiet    bool     // log nothing: neither the controller nor the nodes
	log      logFlags // the controller's and the nodes' log format and level
	metrics  string   // serve the controller's /metrics here
	// metricsBase, when not 0, gives the controller /metrics on
	// 127.0.0.1:metricsBase and node i (from 0) on metricsBase+1+i.
	metricsBase int
	// nodePorts is --node-ports, FIRST-LAST or PORT ("": ports the kernel
	// picks); ports its parsed range.
	nodePorts string
	ports     orchestrator.PortRange
	// secretFile holds the cluster secret (created if missing); "" takes
	// $POCKET_SECRET, else DATA/controller/secret when the state is kept
	// (ctlServe.secretFile), else a fresh secret in a temporary file.
	secretFile string
	// serve holds the control plane's data directory (TLS, the
	// controller's state), TLS and limits; nodeLimits the nodes' limits.
	serve      *ctlServe
	nodeLimits nodeLimits
	// prices is the controller's price table (--prices, --price-*), as
	// for pocket controller.
	prices priceFlags

	autoscale bool
	scale     controller.AutoscaleConfig // band, bounds, cool-down
}

// upCluster is a running local cluster.
type upCluster struct {
	ctl    *controller.Controller
	addr   string
	secret *ownSecret
	serve  *ctlServe // its state store, closed after the controller
	// started is when the controller was ready, after restoring its state;
	// restored is the number of jobs it restored.
	started  time.Time
	restored uint64
	orch     *orchestrator.Local
	auto     *controller.Autoscaler
	mserv    *http.Server
	maddr    string // where mserv listens: the controller's /metrics
	tlsDir   string // the CA and certificates; "" over plain TCP
	// endpoints are the /metrics addresses of the nodes started with the
	// cluster, by node address, with --metrics-base.
	endpoints []nodeEndpoint
	// releaseNVMe removes this run's directory of NVMe tier files
	// (orchestrator.RunDir); nil without --nvme.
	releaseNVMe func()
}

// nodeEndpoint is a node of the cluster and where it serves /metrics.
type nodeEndpoint struct{ node, metrics string }

func (u *upCluster) close() {
	if u.mserv != nil {
		_ = u.mserv.Close()
	}
	_ = u.ctl.Close() // stops the autoscaler first, so it starts no node now
	u.serve.close()
	_ = u.orch.Close() // its nodes' NVMe files go as they stop
	if u.releaseNVMe != nil {
		u.releaseNVMe()
	}
	u.secret.close()
}

// nodeSpec is the template of every node of the cluster: its node
// certificate by the path of the TLS directory (tlsDir; --insecure when
// ""), and the node limits given to up.
func (o *upOptions) nodeSpec(ctl, tlsDir string) orchestrator.NodeSpec {
	spec := orchestrator.NodeSpec{DRAM: o.dram, NVMe: o.nvme, Controller: ctl}
	if tlsDir != "" {
		spec.Args = append(spec.Args, "--tls-dir", tlsDir)
	} else {
		spec.Args = append(spec.Args, "--insecure")
	}
	if o.nodeMbps > 0 {
		// The node's network bounds every tier it serves. Before, only the
		// DRAM tier reported it, and placement counted an NVMe tier at
		// the controller's default (8000 Mb/s): jobs on NVMe were
		// allotted 6x what their nodes serve, and their maps never grew.
		mbps := strconv.FormatFloat(o.nodeMbps, 'f', -1, 64)
		spec.Args = append(spec.Args, "--dram-mbps", mbps)
		if o.nvme != "" {
			spec.Args = append(spec.Args, "--nvme-mbps", mbps)
		}
	}
	if o.staging != "" {
		spec.Args = append(spec.Args, "--nvme-staging", o.staging)
	}
	spec.Args = append(spec.Args, o.nodeLimits.args()...)
	spec.Args = append(spec.Args, o.log.args()...)
	return spec
}

// startUp starts the controller in this process and the nodes as child
// processes that register with it; with autoscale, the autoscaler then
// starts and drains nodes through the same orchestrator. The control plane
// runs over mutual TLS with the CA and certificates in the data directory
// unless o.serve says --insecure. The nodes get the cluster secret in their
// environment, never in their arguments, and the TLS directory's path as
// --tls-dir.
//
// The controller keeps its state in DATA/controller like `pocket
// controller` (ctlServe: memory only with --ephemeral, or with --insecure
// and no data directory given), with the cluster secret in
// DATA/controller/secret unless one is given, so a restart on the same
// data directory knows the earlier run's jobs and verifies their tokens.
// The nodes are this process's children: they stop with it (a SIGKILL of
// up alone reaches them as SIGTERM, orchestrator.Local's Pdeathsig), so
// their data does not outlive it; see printRestored.
func startUp(ctx context.Context, o upOptions) (*upCluster, error) {
	h, err := o.log.handler(os.Stderr)
	if err != nil {
		return nil, err
	}
	if o.quiet {
		h = slog.NewTextHandler(io.Discard, nil)
	}
	id := newIdentity(h, "controller")
	if err := o.freeNodePorts(); err != nil {
		return nil, err
	}
	// The port is bound before the controller starts, so that its
	// restore's lines name it: a new user's trial read "controller: state
	// restored" with no controller= attribute (README "Logs"); and before
	// the secret is made, so that an up that cannot serve creates nothing.
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		o.serve.close()
		return nil, listenTaken(fmt.Errorf("controller: %w", err), o.listen, ctlListenAdvice)
	}
	secret, err := loadOwnSecret(o.serve.secretFile(o.secretFile))
	if err != nil {
		ln.Close()
		return nil, err
	}
	id.set(ln.Addr().String())
	ctl, tlsDir, err := startCtl(o, secret, id.log)
	if err != nil {
		ln.Close()
		o.serve.close()
		secret.close()
		return nil, err
	}
	addr := ctl.ServeBackground(ln)
	u := &upCluster{ctl: ctl, addr: addr.String(), secret: secret, serve: o.serve, tlsDir: tlsDir,
		started: time.Now(), restored: ctl.Status().JobCount,
		orch: &orchestrator.Local{Env: []string{token.EnvSecret + "=" + string(secret.key)}, Logger: id.log, Ports: o.ports,
			MetricsFor: o.metricsByPort()}}
	if !o.quiet {
		u.orch.Log = os.Stderr
	}
	if u.orch.NVMeDir, u.releaseNVMe, err = o.nvmeDir(); err != nil {
		return u, err
	}
	if maddr := o.ctlMetricsAddr(); maddr != "" {
		ln, err := net.Listen("tcp", maddr)
		if err != nil {
			return u, fmt.Errorf("controller metrics: %w", err)
		}
		u.maddr = ln.Addr().String() // the port chosen for a --metrics port 0
		u.mserv = metrics.Serve(ln, metricsMux(ctl), id.log, "up")
	}
	if err := o.nodeMetricsFree(); err != nil {
		return u, err
	}
	for i := 0; i < o.nodes; i++ {
		spec := o.nodeSpec(u.addr, tlsDir)
		maddr := o.nodeMetricsAddr(i)
		if maddr != "" && u.orch.MetricsFor == nil {
			spec.Args = append(spec.Args, "--metrics", maddr)
		}
		n, err := u.orch.Start(ctx, spec)
		if err != nil {
			return u, err
		}
		if u.orch.MetricsFor != nil { // by the port the node took
			maddr = u.orch.MetricsFor(portOf(n.Addr))
		}
		// A node an earlier run drained at this address died with that
		// run (its nodes were its children): this one may register.
		ctl.ForgetRetired(n.Addr)
		if maddr != "" {
			u.endpoints = append(u.endpoints, nodeEndpoint{node: n.Addr, metrics: maddr})
		}
	}
	if err := u.awaitNodes(ctx, o.nodes); err != nil {
		return u, err
	}
	if o.autoscale {
		cfg := o.scale
		cfg.Orchestrator, cfg.Addr, cfg.Spec = u.orch, u.addr, o.nodeSpec(u.addr, tlsDir)
		if u.auto, err = ctl.StartAutoscaler(cfg); err != nil {
			return u, err
		}
	}
	return u, nil
}

// startCtl opens the controller's state and TLS (o.serve.apply) and
// starts the controller on them, restoring what the state holds.
func startCtl(o upOptions, secret *ownSecret, log *slog.Logger) (*controller.Controller, string, error) {
	cfg := controller.Config{Secret: secret.key, Logger: log}
	var err error
	if cfg.Prices, err = o.prices.prices(); err != nil {
		return nil, "", err
	}
	tlsDir, err := o.serve.apply(&cfg, o.listen)
	if err != nil {
		return nil, "", err
	}
	ctl, err := controller.New(cfg)
	return ctl, tlsDir, err
}

// ctlMetricsAddr is where the controller serves /metrics: --metrics, or
// port --metrics-base on loopback; "" for nowhere.
func (o *upOptions) ctlMetricsAddr() string {
	if o.metricsBase > 0 {
		return "127.0.0.1:" + strconv.Itoa(o.metricsBase)
	}
	return o.metrics
}

// freeNodePorts refuses --node-ports when fewer of its ports than
// --nodes are free on this host, before up creates anything: a new
// user's trial's range held one port, taken, and up failed on its node
// with "no free port left in the nodes' port range" (no flag named)
// after it had made the data directory's secret, state and CA.
func (o *upOptions) freeNodePorts() error {
	if o.ports.Last == 0 {
		return nil
	}
	free := 0
	for p := o.ports.First; p <= o.ports.Last && free < o.nodes; p++ {
		if !portInUse("127.0.0.1", p) {
			free++
		}
	}
	if free < o.nodes {
		return fmt.Errorf("--node-ports %s: %d of its ports are free here, and --nodes %d needs as many: give a range with more free ports",
			o.nodePorts, free, o.nodes)
	}
	return nil
}

// metricsSlots is how many node /metrics ports --metrics-base takes
// after the controller's: one a port of --node-ports when given (every
// node, the autoscaler's included, serves on the one of its port:
// metricsByPort), else one for each of the --nodes.
func (o *upOptions) metricsSlots() int {
	if o.ports.Last > 0 {
		return o.ports.Last - o.ports.First + 1
	}
	return o.nodes
}

// metricsByPort is orchestrator.Local.MetricsFor with --metrics-base and
// --node-ports: the node on port P of the range serves /metrics on
// 127.0.0.1:PORT+1+(P-FIRST), so a node the autoscaler starts, or starts
// again at a drained node's address, has an endpoint, the one that
// address had. nil without both flags: the nodes' ports are not known in
// advance, and only the first --nodes get an endpoint (nodeMetricsAddr).
func (o *upOptions) metricsByPort() func(port int) string {
	if o.metricsBase <= 0 || o.ports.Last == 0 {
		return nil
	}
	return func(port int) string {
		if port < o.ports.First || port > o.ports.Last {
			return ""
		}
		return "127.0.0.1:" + strconv.Itoa(o.metricsBase+1+port-o.ports.First)
	}
}

// portOf is the port of a host:port address, 0 when it has none.
func portOf(addr string) int {
	_, ps, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(ps)
	return p
}

// nodeMetricsAddr is where the i-th node started with the cluster serves
// /metrics with --metrics-base, else "". Nodes the autoscaler starts later
// get none: their ports could not be told apart in advance.
func (o *upOptions) nodeMetricsAddr(i int) string {
	if o.metricsBase <= 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(o.metricsBase+1+i)
}

// check refuses, before any node starts, a command line the cluster
// cannot start with: bad node sizes or limits, node counts, ports, log
// flags (parseFlags has checked the prices, addresses and files). Each is
// a usage error (exit 2).
func (o *upOptions) check(fs *flag.FlagSet) error {
	if err := o.checkTiers(); err != nil {
		return err
	}
	if err := o.nodeLimits.apply(&netio.Config{}); err != nil {
		return err
	}
	if err := o.serve.check(); err != nil {
		return err
	}
	if err := o.checkScale(); err != nil {
		return err
	}
	if o.autoscale {
		if err := nodesAsMin(fs, o); err != nil {
			return err
		}
		o.nodes = o.scale.MinNodes
	}
	if o.nodes < 1 {
		return fmt.Errorf("--nodes %d: want at least 1", o.nodes)
	}
	if err := o.checkMetricsBase(); err != nil {
		return err
	}
	if err := o.checkNodePorts(); err != nil {
		return err
	}
	_, err := o.log.handler(io.Discard) // a bad --log-level or --log-format
	return err
}

// checkTiers refuses node tier sizes a node cannot start with: a bad size,
// or neither tier.
func (o *upOptions) checkTiers() error {
	dram, err := sizeFlag("dram", o.dram, o.dram, "means no DRAM tier")
	if err != nil {
		return err
	}
	if o.nvme == "" {
		if dram == 0 {
			return fmt.Errorf("--dram %q and no --nvme: a node needs a tier: give a DRAM size, or --nvme SIZE", o.dram)
		}
		if o.staging != "" {
			return fmt.Errorf("--nvme-staging %q without --nvme: the nodes have no NVMe tier", o.staging)
		}
		return nil
	}
	if o.staging != "" {
		if n, err := sizeFlag("nvme-staging", o.staging, o.staging, "is refused"); err != nil {
			return err
		} else if n <= 0 {
			return fmt.Errorf("--nvme-staging %q: want a size above 0", o.staging)
		}
	}
	if strings.Contains(o.nvme, ":") {
		return fmt.Errorf("--nvme %q: want a size (each node gets a file of its own in DIR/%s/up-*); for a file or device of your choice start the node yourself (pocket node --nvme PATH:SIZE)", o.nvme, nvmeSubdir)
	}
	nvme, err := sizeFlag("nvme", o.nvme, o.nvme, "is no NVMe tier: leave --nvme out")
	switch {
	case err != nil:
	case nvme == 0:
		err = fmt.Errorf("--nvme %q: want a size above 0 (leave --nvme out for no NVMe tier)", o.nvme)
	case nvme < minNVMeSize:
		err = fmt.Errorf("--nvme %q: %s", o.nvme, nvmeTooSmall)
	}
	return err
}

// plural is n noun, or n nouns unless n is 1: "1 node", "3 nodes".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// nvmeSubdir is the directory, inside the data directory, of the nodes'
// NVMe tier files: one directory per run of up, up-*, holding a file per
// node (each removed when its node stops, the directory when up stops).
const nvmeSubdir = "nvme"

// nvmeDir makes this run's directory of the nodes' NVMe tier files,
// DATA/nvme/up-* (orchestrator.RunDir: mode 0700, locked while up runs,
// and removing first the directories of runs that were killed, with the
// values their nodes' files held), and returns it with the function that
// removes it; "" and nil when the nodes have no NVMe tier. A directory of
// its own, so that two clusters on one data directory (the default one,
// say) never share a file.
func (o *upOptions) nvmeDir() (string, func(), error) {
	if o.nvme == "" {
		return "", nil, nil
	}
	data, err := o.serve.dataDir()
	if err != nil {
		return "", nil, err
	}
	parent, err := filepath.Abs(filepath.Join(data, nvmeSubdir))
	if err != nil {
		return "", nil, err
	}
	// RunDir refuses a parent, or a directory above it, that another
	// user could change.
	dir, release, err := orchestrator.RunDir(parent, "up")
	if err != nil {
		return "", nil, fmt.Errorf("the nodes' NVMe directory: %w", err)
	}
	return dir, release, nil
}

// checkNodePorts parses --node-ports (FIRST-LAST, or one PORT) into
// o.ports, refusing ports outside 1-65535, a range backwards, or one
// with fewer ports than --nodes, or with --autoscale than --max-nodes (a
// new user's trial: the range ran out only when a job needed a node the
// autoscaler then could not start).
func (o *upOptions) checkNodePorts() error {
	if o.nodePorts == "" {
		return nil
	}
	first, last, ok := strings.Cut(o.nodePorts, "-")
	if !ok {
		last = first
	}
	f, ferr := strconv.Atoi(first)
	l, lerr := strconv.Atoi(last)
	switch {
	case ferr != nil || lerr != nil || f < 1 || l > 65535 || f > l:
		return fmt.Errorf("--node-ports %q: want FIRST-LAST (or one PORT), ports from 1 to 65535, FIRST not above LAST", o.nodePorts)
	case o.autoscale && l-f+1 < o.scale.MaxNodes:
		return fmt.Errorf("--node-ports %q: %d port(s) for up to --max-nodes %d nodes: widen the range or lower --max-nodes", o.nodePorts, l-f+1, o.scale.MaxNodes)
	case l-f+1 < o.nodes:
		return fmt.Errorf("--node-ports %q: %d port(s) for %d nodes: widen the range or lower --nodes", o.nodePorts, l-f+1, o.nodes)
	}
	o.ports = orchestrator.PortRange{First: f, Last: l}
	return o.checkPortsApart()
}

// checkPortsApart refuses a --node-ports range that holds a port up gives
// something else: the controller's --listen or --metrics port, or a
// --metrics-base port (a hostile trial's nodes each listened on their own
// metrics port, failed to serve it, and up waited out its start timeout).
func (o *upOptions) checkPortsApart() error {
	in := func(p int) bool { return p >= o.ports.First && p <= o.ports.Last }
	for _, a := range []struct{ flag, addr string }{{"--listen", o.listen}, {"--metrics", o.metrics}} {
		if _, ps, err := net.SplitHostPort(a.addr); err == nil {
			if p, err := strconv.Atoi(ps); err == nil && p > 0 && in(p) {
				return fmt.Errorf("--node-ports %q holds %s's port %d: give the nodes other ports", o.nodePorts, a.flag, p)
			}
		}
	}
	if o.metricsBase > 0 && o.metricsBase <= o.ports.Last && o.metricsBase+o.metricsSlots() >= o.ports.First {
		return fmt.Errorf("--node-ports %q overlaps --metrics-base %d's ports (%d to %d): give the nodes other ports",
			o.nodePorts, o.metricsBase, o.metricsBase, o.metricsBase+o.metricsSlots())
	}
	return nil
}

// checkMetricsBase refuses a base whose ports do not fit below 65536, or
// one given with --metrics (they both place the controller's endpoint).
func (o *upOptions) checkMetricsBase() error {
	switch {
	case o.metricsBase == 0:
		return nil
	case o.metrics != "":
		return errors.New("--metrics-base places the controller's /metrics too: give --metrics or --metrics-base, not both")
	case o.metricsBase < 0 || o.metricsBase > 65535:
		return fmt.Errorf("--metrics-base %d: want a port from 1 to 65535 (the controller's; node i gets PORT+1+i), or 0 for none", o.metricsBase)
	case o.metricsBase+o.metricsSlots() > 65535:
		return fmt.Errorf("--metrics-base %d: the controller and %d nodes need ports %d to %d, past 65535",
			o.metricsBase, o.metricsSlots(), o.metricsBase, o.metricsBase+o.metricsSlots())
	}
	return nil
}

func metricsMux(ctl *controller.Controller) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", ctl.MetricsHandler())
	return mux
}

// awaitNodes waits until n of the nodes this process started have
// registered (been seen active), and no node restored from an earlier
// run counts as active without having been heard from since
// (wire.NodeStatus.Restored; so no job is placed on a node that died
// with that run: the controller marks those dead after DeadAfter and its
// restore grace, about 6 s). A node that registered and left since (an
// operator drained it, or it died) counts as registered: before, a node
// drained in up's first second stopped the whole cluster, "exited before
// registering" (a hostile trial). One that exited before registering
// fails the start.
func (u *upCluster) awaitNodes(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	r := registration{want: n, registered: map[string]bool{}}
	for {
		running := map[string]bool{}
		for _, nd := range u.orch.Nodes() {
			running[nd.Addr] = true
		}
		done, err := r.observe(running, u.ctl.Status().Nodes, time.Since(u.started))
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			if len(r.registered) >= n {
				return fmt.Errorf("up: %d nodes of an earlier run neither heard from nor marked dead: %w", r.unheard, ctx.Err())
			}
			return fmt.Errorf("up: %d of %d nodes registered: %w", len(r.registered), n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// registration is what awaitNodes has seen of up's nodes: those that
// registered, and how many other nodes were active unheard at the last
// look.
type registration struct {
	want       int             // up's nodes
	registered map[string]bool // by address: seen active or draining
	unheard    int
}

// observe takes one look: running are the addresses of up's nodes whose
// processes run, nodes the controller's, since the time since the
// controller started. Done: want nodes registered and no node restored
// from an earlier run is active unheard since (no heartbeat since the
// controller started). An error: a node exited before registering.
func (r *registration) observe(running map[string]bool, nodes []wire.NodeStatus, since time.Duration) (bool, error) {
	r.unheard = 0
	for _, ns := range nodes {
		switch {
		case running[ns.Addr] && (ns.State == wire.NodeActive || ns.State == wire.NodeDraining):
			r.registered[ns.Addr] = true
		case ns.State == wire.NodeActive && !running[ns.Addr] && (ns.Restored || ns.LastSeen+heardMargin >= since):
			r.unheard++
		}
	}
	if len(r.registered) >= r.want {
		return r.unheard == 0, nil
	}
	left := 0 // registered, not running now
	for addr := range r.registered {
		if !running[addr] {
			left++
		}
	}
	if exited := r.want - len(running) - left; exited > 0 {
		return false, fmt.Errorf("up: %d of the %d nodes started exited before registering (each one's error is above)", exited, r.want)
	}
	return false, nil
}

// nodeMetricsFree checks that the nodes' /metrics ports (--metrics-base)
// are free before any node starts: a node whose port is taken exits at
// once, and before, up then waited 15 s and said "0 of 2 nodes
// registered", naming no flag (a new user's trial).
func (o upOptions) nodeMetricsFree() error {
	for i := 0; i < o.metricsSlots(); i++ {
		maddr := o.nodeMetricsAddr(i)
		if maddr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", maddr)
		if err != nil {
			return listenTaken(fmt.Errorf("node %d's metrics: %w", i, err), maddr,
				fmt.Sprintf("give --metrics-base another port (the controller's; node i gets PORT+1+i, here %d to %d), or stop the process that listens there",
					o.metricsBase+1, o.metricsBase+o.metricsSlots()))
		}
		ln.Close()
	}
	return nil
}

// heardMargin covers the millisecond resolution of a node's LastSeen.
const heardMargin = 10 * time.Millisecond

// nodesAsMin takes --nodes, given with --autoscale, as the autoscaler's
// --min-nodes (the nodes it starts); both given must agree. checkScale has
// checked --min-nodes; a --nodes taken for it is checked here, by its name.
func nodesAsMin(fs *flag.FlagSet, o *upOptions) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case !set["nodes"]:
	case set["min-nodes"] && o.nodes != o.scale.MinNodes:
		return fmt.Errorf("--nodes %d and --min-nodes %d: with --autoscale the cluster starts --min-nodes nodes; give one of them", o.nodes, o.scale.MinNodes)
	case o.nodes < 1 || o.nodes > o.scale.MaxNodes:
		return fmt.Errorf("--nodes %d: with --autoscale, the autoscaler's fewest nodes (as --min-nodes): want at least 1 and no more than --max-nodes %d", o.nodes, o.scale.MaxNodes)
	default:
		o.scale.MinNodes = o.nodes
	}
	return nil
}

// upPricesHelp is what the price flags of pocket up do.
const upPricesHelp = "the controller's prices, as pocket controller's: each job's tier is the cheapest that meets its need at them\n" +
	"(controller.TierFor), and pocket status prices the jobs at them"

// checkScale refuses autoscaler flags out of their range, which the
// controller would otherwise replace by its defaults without a word.
func (o *upOptions) checkScale() error {
	s := o.scale
	switch {
	case !(s.High > 0 && s.High <= 1):
		return fmt.Errorf("--scale-high %v: want a utilization above 0 and at most 1", s.High)
	case !(s.Low > 0 && s.Low < s.High):
		return fmt.Errorf("--scale-low %v: want a utilization above 0 and under --scale-high %v", s.Low, s.High)
	case s.Cooldown < 0:
		return fmt.Errorf("--cooldown %v: must not be negative", s.Cooldown)
	case s.JobCooldown < 0:
		return fmt.Errorf("--job-cooldown %v: must not be negative", s.JobCooldown)
	case s.DrainDeadline < 0:
		return fmt.Errorf("--drain-deadline %v: must not be negative", s.DrainDeadline)
	case !(o.nodeMbps >= 0) || math.IsInf(o.nodeMbps, 0):
		return fmt.Errorf("--node-mbps %v: want a bandwidth in Mb/s, 0 or more (0: the controller's default)", o.nodeMbps)
	case s.MinNodes < 1:
		return fmt.Errorf("--min-nodes %d: want at least 1", s.MinNodes)
	case s.MaxNodes < s.MinNodes:
		return fmt.Errorf("--max-nodes %d: want at least --min-nodes %d", s.MaxNodes, s.MinNodes)
	}
	return nil
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
	fs.Float64Var(&o.nodeMbps, "node-mbps", 0, "network bandwidth each node reports for each of its tiers (DRAM, NVMe), Mb/s (default: the controller's 8000)")
	fs.DurationVar(&o.scale.JobCooldown, "job-cooldown", 5*time.Second, "with --autoscale: least time between two changes of one job's map")
	fs.BoolVar(&o.scale.NoJobScaling, "no-job-scaling", false, "with --autoscale: keep every job's map as it was sized (no growing or shrinking under a running job)")
}

func runUp(args []string) int {
	fs := newFlagSet("up")
	var o upOptions
	fs.StringVar(&o.listen, "listen", ctlDefaultAddr, "controller address")
	fs.IntVar(&o.nodes, "nodes", 3, "storage nodes to start (with --autoscale: the autoscaler's fewest, as --min-nodes)")
	fs.StringVar(&o.dram, "dram", "1GiB", "DRAM tier of each node (0: none, with --nvme)")
	fs.StringVar(&o.nvme, "nvme", "", "NVMe tier of each node, SIZE: a file of its own in DIR/"+nvmeSubdir+"/up-* of --data-dir, opened with O_DIRECT\n(the file system must allow it: tmpfs does not) and removed when the node stops (default: none)")
	fs.StringVar(&o.staging, "nvme-staging", "", "with --nvme: each node's --nvme-staging, the memory holding NVMe transfers in flight (default: the node's, 256MiB);\na value or chunk larger than half of it is refused (one value may take at most half)")
	fs.StringVar(&o.metrics, "metrics", "", "serve the controller's Prometheus /metrics on this address")
	fs.StringVar(&o.nodePorts, "node-ports", "", "ports the nodes listen on, FIRST-LAST: each node takes the lowest one free (default: ports the kernel picks)")
	fs.IntVar(&o.metricsBase, "metrics-base", 0, "serve Prometheus /metrics on loopback: the controller on this port, node i (from 0) on PORT+1+i")
	fs.StringVar(&o.secretFile, "secret-file", "", "file holding the cluster secret, mode 0600; created with a fresh secret if missing\n(default $"+token.EnvSecret+"; else DIR/"+stateSubdir+"/secret of --data-dir when the controller's state is kept there;\nelse a fresh secret in a temporary file, removed when the cluster stops)")
	o.serve = bindCtlServe(fs)
	o.nodeLimits.bind(fs, "node-", "each node: ")
	o.prices.bind(fs, upPricesHelp)
	bindScale(fs, &o)
	o.log.bind(fs)
	if _, code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	o.nodeLimits.visited(fs, "node-")
	if err := o.check(fs); err != nil {
		return usageError("up", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	u, err := startUp(ctx, o)
	if u != nil {
		defer u.close()
	}
	if err != nil {
		return fail("up: %v", err)
	}
	printUp(u, o)
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		own := map[string]bool{}
		for _, n := range u.orch.Nodes() {
			own[n.Addr] = true
		}
		fmt.Println("stopping the cluster" + stopNote(u.ctl.Status(), u.serve.stateDir != "", own))
	}
	return 0
}

// stopNote says what stopping the cluster takes with its nodes (own, the
// addresses of the nodes up started): the data of its live jobs there and
// the values ended jobs put with --persist there (a restart on the same
// data directory keeps the jobs' records and tokens, not their data, when
// kept says the controller's state is kept there; with --ephemeral
// nothing is). Nodes started by hand keep theirs: before, the note counted
// every live job's data as going, also what hand-added nodes held and
// kept (a new user's trial). A dead node up did not start keeps nothing
// and is not counted among them (a new user's trial: a hand-started node
// stopped with Ctrl-C was said to keep what it held). Empty when nothing
// goes.
func stopNote(st *wire.ClusterStatus, kept bool, own map[string]bool) string {
	ended := map[string]bool{}
	var bytes int64
	hand, others := 0, 0 // nodes up did not start; those of them not dead
	for _, n := range st.Nodes {
		if !own[n.Addr] {
			hand++
			if n.State != wire.NodeDead {
				others++
			}
			continue
		}
		for _, h := range n.Persisted {
			ended[h.Job] = true
			bytes += h.Bytes
		}
	}
	live := st.JobCount
	if hand > 0 && uint64(len(st.Jobs)) == st.JobCount {
		live = 0
		for _, js := range st.Jobs {
			if slices.ContainsFunc(js.Nodes, func(mn wire.MapNode) bool { return own[mn.Addr] }) {
				live++
			}
		}
	}
	var parts []string
	if live > 0 {
		parts = append(parts, fmt.Sprintf("the data of %d live job(s) on its nodes", live))
	}
	if len(ended) > 0 {
		parts = append(parts, fmt.Sprintf("the %s of values that %d ended job(s) put with --persist", units.FormatSize(bytes), len(ended)))
	}
	if len(parts) == 0 {
		return ""
	}
	also := ""
	if others > 0 {
		also = fmt.Sprintf("; the %d node(s) it did not start keep what they hold", others)
	}
	if !kept {
		return ": " + strings.Join(parts, " and ") + " go with its nodes (its controller's state is in memory only: the jobs go too)" + also
	}
	return ": " + strings.Join(parts, " and ") + " go with its nodes (a restart on the same --data-dir keeps the jobs' tokens, not their data)" + also
}

// printRestored says what a restart on the same data directory kept: the
// earlier run's jobs, with their ids, tokens, generations, lifetimes and
// maps. The data of those on up's own nodes lived on that run's nodes
// (stopped with it): their maps name those nodes, now dead, and a get of
// their keys answers that the node is unavailable. Those on a node up did
// not start that still runs keep their values there. A new user's trial
// was told to deregister a job whose 20 values on such a node all read
// back (before 2026-12-07 the note spoke of every restored job alike).
func printRestored(u *upCluster) {
	if u.restored == 0 {
		return
	}
	kept, gone := restoredKinds(u)
	if gone > 0 {
		fmt.Printf("restored %s of an earlier run whose data was on that run's nodes, which stopped with it: their tokens still work;\n"+
			"  deregister them (pocket job deregister JOB), or start on an empty --data-dir, or with --ephemeral\n", plural(gone, "job"))
	}
	if kept > 0 {
		fmt.Printf("restored %s of an earlier run on nodes it did not start, which still run: their values there are kept "+
			"(those on the earlier run's own nodes are gone); pocket job show JOB lists each job's nodes\n", plural(kept, "job"))
	}
}

// restoredKinds sorts the jobs up restored (the first u.restored in
// registration order) by keptOnRunning.
func restoredKinds(u *upCluster) (kept, gone int) {
	var own []string
	for _, n := range u.orch.Nodes() {
		own = append(own, n.Addr)
	}
	nodes := u.ctl.Status().Nodes
	var after uint64
	for seen := uint64(0); seen < u.restored; {
		st := u.ctl.ListJobs(after, 0)
		for _, j := range st.Jobs[:min(uint64(len(st.Jobs)), u.restored-seen)] {
			seen++
			if keptOnRunning(j, nodes, own) {
				kept++
			} else {
				gone++
			}
		}
		if after = st.NextJob; after == 0 || len(st.Jobs) == 0 {
			break
		}
	}
	return kept, gone
}

// keptOnRunning reports whether job j's map names a node that is not dead
// among nodes and is not one of own (the nodes this run of up started):
// an earlier run's job keeps its values there.
func keptOnRunning(j wire.JobStatus, nodes []wire.NodeStatus, own []string) bool {
	return slices.ContainsFunc(j.Nodes, func(mn wire.MapNode) bool {
		return !slices.Contains(own, mn.Addr) && slices.ContainsFunc(nodes, func(n wire.NodeStatus) bool {
			return n.Addr == mn.Addr && n.State != wire.NodeDead
		})
	})
}

// printMetrics lists the /metrics endpoints of the cluster.
func printMetrics(u *upCluster, o upOptions) {
	if u.maddr != "" {
		fmt.Printf("controller metrics on http://%s/metrics\n", u.maddr)
	}
	for _, e := range u.endpoints {
		fmt.Printf("  node %s metrics on http://%s/metrics\n", e.node, e.metrics)
	}
	switch {
	case len(u.endpoints) == 0 || !o.autoscale:
	case u.orch.MetricsFor != nil:
		fmt.Printf("  (a node the autoscaler starts serves /metrics on %d+1+(its port-%d): at its address, where the node it replaces did)\n",
			o.metricsBase, o.ports.First)
	default:
		fmt.Println("  (nodes the autoscaler starts later serve no /metrics: give --node-ports for them to)")
	}
}

// handNodePort is the --listen of up's add-a-node recipe and the note
// after it. With --node-ports it is a port outside the range, which the
// cluster's own nodes take (before, the recipe said the default 7100,
// inside the README's own example range 7100-7109).
func handNodePort(host string, o upOptions) (listen, note string) {
	if o.ports.Last == 0 {
		listen = nodeListenArg(host)
		return listen, nodePortNoteAt(listen)
	}
	p, step := o.ports.Last+1, 1
	if p > 65535 {
		p, step = o.ports.First-1, -1
	}
	p = firstFreePort(host, p, step) // not one a node added by hand holds (a new user's trial)
	return nodeListenAt(host, strconv.Itoa(p)), fmt.Sprintf("  (the cluster's nodes take ports %s (--node-ports): each node added by hand needs its own --listen port outside them: %d, then %d, ...)\n",
		o.nodePorts, p, firstFreePort(host, p+step, step))
}

// printQuotas names the allotment quotas per client, when up has them
// (--max-bytes-per-client, --max-mbps-per-client).
func printQuotas(o upOptions) {
	var cfg controller.Config
	if o.serve.limits == nil || o.serve.limits.apply(&cfg) != nil { // checked when up started
		return
	}
	if q := quotaText(cfg.MaxBytesPerClient, cfg.MaxMbpsPerClient); q != "" {
		fmt.Printf("allotment quota per client (a tenant over TLS, else an address): %s; the operator's certificate has none\n", q)
	}
}

func printUp(u *upCluster, o upOptions) {
	mode := "mutual TLS"
	if u.tlsDir == "" {
		mode = "plain TCP (--insecure)"
	}
	var tiers []string
	if dram, err := units.ParseSize(o.dram); err == nil && dram > 0 { // checked: it parses
		tiers = append(tiers, o.dram+" DRAM")
	}
	if o.nvme != "" {
		tiers = append(tiers, o.nvme+" NVMe (files in "+u.orch.NVMeDir+")")
	}
	fmt.Printf("pocket cluster up: controller %s, %s of %s, control plane over %s\n", u.addr, plural(o.nodes, "node"), strings.Join(tiers, " and "), mode)
	for _, n := range u.orch.Nodes() {
		fmt.Printf("  node %s\n", n.Addr)
	}
	if o.autoscale {
		fmt.Printf("autoscaling between %d and %d nodes, band %.0f%%-%.0f%%, cool-down %v\n",
			o.scale.MinNodes, o.scale.MaxNodes, 100*o.scale.Low, 100*o.scale.High, o.scale.Cooldown)
		if o.scale.NoJobScaling {
			fmt.Println("  jobs' maps keep the nodes they were sized with (--no-job-scaling)")
		} else {
			fmt.Printf("  each job's map grows and shrinks with its own load, at most one change every %v (--job-cooldown)\n", o.scale.JobCooldown)
		}
	}
	printQuotas(o)
	printMetrics(u, o)
	fmt.Println(u.serve.stateLine())
	printRestored(u)
	fmt.Printf("point the other commands at it with:\n  export %s=%s\n", metaclient.EnvController, u.addr)
	tlsArg := " --insecure"
	if u.tlsDir == "" {
		// Every command that talks to the controller needs plain TCP.
		fmt.Printf("  export %s=1   # plain TCP, as --insecure on every command\n", envInsecure)
	}
	// A setting left in this shell by another cluster contradicts the
	// ones above; the commands would refuse both set (a new user's
	// re-check).
	for _, env := range []string{envTLSDir, envInsecure} {
		if os.Getenv(env) != "" && (env == envTLSDir) == (u.tlsDir == "") {
			fmt.Printf("  unset %s   # set in this shell, for another cluster\n", env)
		}
	}
	if u.tlsDir != "" {
		fmt.Printf("  export %s=%s\n", envTLSDir, u.tlsDir)
		fmt.Printf("(%s holds the cluster CA with its key, and certificates for the controller, nodes, operators and clients)\n", u.tlsDir)
		tlsArg = ""
	}
	secretArg, note := u.secret.usage()
	listen, portNote := handNodePort(hostOf(u.addr), o)
	fmt.Printf("to add a node on this host or drain one (%s):\n  pocket node --controller %s%s%s%s%s%s\n%s  pocket node drain --controller %s ADDR%s%s\n",
		note, u.addr, listen, upDRAMArg(o.dram), upNVMeArg(o.nvme), secretArg, nodeTLSArg(u.tlsDir), portNote, u.addr, secretArg, tlsArg)
	if o.autoscale {
		// Scale-in drains the nodes the orchestrator started first
		// (pickVictims), so a node added by hand outlives them. Before,
		// the banner said the hand-added node would be drained again; a
		// new user's trial saw up's own node drained 60 ms after theirs
		// came, then, theirs stopped by a signal, no live node for 3 s.
		fmt.Println("  (the autoscaler sets the node count: under the band it drains the nodes it started first, so a node " +
			"added by hand may be the one left; stop it with pocket node drain ADDR, not a signal, or the cluster may have no live node until the autoscaler adds one)")
	}
	if u.tlsDir != "" {
		fmt.Printf("a node on another host gets its certificate from: pocket cert issue --role node --host HOST --out DIR --data-dir %s\n",
			filepath.Dir(u.tlsDir))
		fmt.Printf("a tenant gets its own (its jobs sized from its own profiles) from: pocket cert issue --role client --tenant NAME --out DIR --data-dir %s\n",
			filepath.Dir(u.tlsDir))
	}
	fmt.Println("then: pocket job register NAME; pocket put JOBID KEY FILE; pocket get JOBID KEY; pocket status. Ctrl-C stops the cluster.")
}

// upDRAMArg is the --dram flag of the node command up's banner prints: the
// size of up's own nodes, so a node added by hand matches them (a new
// user's trial: the command had none, and pocket node's default, 1GiB,
// beside 256MiB nodes). "" when up's nodes have no DRAM tier.
// upNVMeArg is the banner's --nvme for a node added by hand beside
// nodes with an NVMe tier of size nvme ("": none). The file is the
// user's to name: each node needs one of its own. Before, the banner left
// it out, and a node added by its recipe had no NVMe tier (a new user's
// trial).
func upNVMeArg(nvme string) string {
	if nvme == "" {
		return ""
	}
	return " --nvme FILE:" + nvme
}

func upDRAMArg(dram string) string {
	if n, err := units.ParseSize(dram); err != nil || n <= 0 {
		return ""
	}
	return " --dram " + dram
}
