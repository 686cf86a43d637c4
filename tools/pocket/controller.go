package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/leader"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/orchestrator"
	"github.com/pocketstore/pocket/orchestrator/k8s"
	"github.com/pocketstore/pocket/telemetry/metrics"
	corev1 "k8s.io/api/core/v1"
)

// ctlDefaultAddr is where the controller listens, and where the job and
// status commands look for it, unless told otherwise.
const ctlDefaultAddr = "127.0.0.1:7000"

func init() {
	register("controller", "", "run the controller (node and job registries, placement)", runController)
}

// ctlFlags are pocket controller's own flags beside ctlServe's.
type ctlFlags struct {
	listen, secretFile, metrics string
	heartbeat, deadAfter        time.Duration
	ha                          haFlags
	orch                        orchFlags
	prices                      priceFlags
}

func runController(args []string) int {
	fs := newFlagSet("controller")
	f, serve, lf := bindController(fs)
	if _, code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	h, err := lf.handler(os.Stderr)
	if err != nil {
		return usageError("controller", err) // a bad --log-level or --log-format
	}
	id := newIdentity(h, "controller")
	slog.SetDefault(id.log)
	f.orch.limits.visited(fs, "node-")
	if err := f.check(serve); err != nil {
		return usageError("controller", err)
	}
	return f.run(serve, id)
}

// bindController adds pocket controller's flags to fs.
func bindController(fs *flag.FlagSet) (*ctlFlags, *ctlServe, *logFlags) {
	f := &ctlFlags{}
	fs.StringVar(&f.listen, "listen", ctlDefaultAddr, "address to serve the control plane on")
	fs.StringVar(&f.secretFile, "secret-file", "", "file holding the cluster secret shared with the nodes (and, with --etcd, with every other controller), mode 0600; created with a fresh secret if missing (not with --etcd)\n(default $"+token.EnvSecret+"; else a fresh secret in a temporary file)")
	fs.DurationVar(&f.heartbeat, "heartbeat", time.Second, "heartbeat interval asked of the nodes")
	fs.DurationVar(&f.deadAfter, "dead-after", 0, "mark a silent node dead after this long (default 3 heartbeats)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus /metrics on this address")
	f.ha.bind(fs)
	f.orch.bind(fs)
	f.prices.bind(fs, "each job's tier is the cheapest that meets its need at these prices (controller.TierFor)")
	serve := bindCtlServe(fs)
	lf := &logFlags{}
	lf.bind(fs)
	return f, serve, lf
}

// check refuses flag combinations that cannot work.
func (f *ctlFlags) check(serve *ctlServe) error {
	if err := f.orch.check(serve.insecure); err != nil {
		return err
	}
	if err := serve.check(); err != nil {
		return err
	}
	if f.heartbeat <= 0 {
		return fmt.Errorf("--heartbeat %v: want an interval above 0", f.heartbeat)
	}
	if f.deadAfter < 0 {
		return fmt.Errorf("--dead-after %v: must not be negative (0: 3 heartbeats)", f.deadAfter)
	}
	if !f.ha.on() {
		return f.ha.checkOff()
	}
	if err := f.ha.checkTTL(); err != nil {
		return err
	}
	serve.etcd = true
	if f.secretFile == "" && os.Getenv(token.EnvSecret) == "" {
		return errors.New("--etcd: every controller must sign tokens with the same cluster secret: give each the same --secret-file or $" + token.EnvSecret)
	}
	if err := checkSecretFileFlag(f.secretFile, false); err != nil {
		return fmt.Errorf("%w (with --etcd the file must exist, the same on every controller)", err)
	}
	return nil
}

// run runs the controller (or, with --etcd, this member of several)
// until an interrupt.
func (f *ctlFlags) run(serve *ctlServe, id identity) int {
	// Listen first: a controller that cannot serve creates nothing (a new
	// user's trial, on a port taken, found a new secret, state file and CA
	// in the --data-dir it had given).
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fail("controller: %v", listenTaken(err, f.listen, ctlListenAdvice))
	}
	defer ln.Close() // after Serve returns, or on a failure before it
	secret, err := loadOwnSecret(serve.secretFile(f.secretFile))
	if err != nil {
		return fail("controller: %v", err)
	}
	defer secret.close()
	cfg := controller.Config{Secret: secret.key, HeartbeatInterval: f.heartbeat, DeadAfter: f.deadAfter, Logger: id.log}
	if cfg.Prices, err = f.prices.prices(); err != nil {
		return fail("controller: %v", err)
	}
	if a := f.ha.advertise; a != "" {
		if host, _, err := net.SplitHostPort(a); err == nil {
			serve.hosts = append(serve.hosts, host) // the certificate names it
		}
	}
	tlsDir, err := serve.apply(&cfg, f.listen)
	if err != nil {
		return fail("controller: %v", err)
	}
	defer serve.close()
	addr := ln.Addr().String()
	if f.ha.on() {
		if addr, err = f.ha.advertised(ln.Addr()); err != nil {
			ln.Close()
			return fail("controller: %v", err)
		}
	}
	id.set(addr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	scale, err := f.orch.autoscaler(ctx, serve.insecure, addr)
	if err != nil {
		ln.Close()
		return fail("controller: %v", err)
	}
	banner := func() { f.printServing(serve, secret, ln.Addr().String(), addr, tlsDir) }
	if f.ha.on() {
		banner()
		return f.runHA(ctx, ln, addr, cfg, scale, id)
	}
	return f.runOne(ctx, ln, cfg, scale, id, banner)
}

// printServing prints where the controller serves (bound, the listener's
// address) and how to reach it (addr, the advertised one).
func (f *ctlFlags) printServing(serve *ctlServe, secret *ownSecret, bound, addr, tlsDir string) {
	secretArg, note := secret.usage()
	nodeCtl := addr
	if f.ha.on() {
		// Not yet elected: one of several, it may stay a standby.
		at := addr
		if bound != addr {
			at = fmt.Sprintf("%s (advertised to clients and nodes as %s)", bound, addr)
		}
		fmt.Printf("pocket controller serving on %s%s as a standby in the election (it logs \"now active\" when it wins; meanwhile it answers with the active controller's address)\n%s\n", at, serve.mode(), f.stateLine(serve))
		fmt.Printf("export %s=%s  # better: list every controller, %s=a:PORT,b:PORT,c:PORT\n", metaclient.EnvController, addr, metaclient.EnvController)
		// A node given one controller cannot find the others once it stops.
		nodeCtl, note = addr+",OTHER:PORT,...", note+"; list every controller"
	} else {
		fmt.Printf("pocket controller serving on %s%s\n%s\nexport %s=%s\n", addr, serve.mode(), f.stateLine(serve), metaclient.EnvController, addr)
	}
	if tlsDir != "" {
		fmt.Printf("export %s=%s\n", envTLSDir, tlsDir)
	} else {
		// As pocket up prints it: before, the next command refused to
		// reach this controller without --insecure (a new user's trial).
		fmt.Printf("export %s=1   # plain TCP, as --insecure on every command\n", envInsecure)
	}
	listen := nodeListenArg(hostOf(addr))
	fmt.Printf("start nodes with (%s):\n  pocket node --controller %s%s%s%s\n%s", note, nodeCtl, listen, secretArg, nodeTLSArg(tlsDir), nodePortNoteAt(listen))
}

func (f *ctlFlags) stateLine(serve *ctlServe) string {
	if f.ha.on() {
		return fmt.Sprintf("controller state in etcd %s under %s; elected among the controllers there (--election-ttl %v)",
			f.ha.etcd, state.DefaultEtcdPrefix, f.ha.ttl)
	}
	return serve.stateLine()
}

// runOne serves as the only controller until ctx ends.
func (f *ctlFlags) runOne(ctx context.Context, ln net.Listener, cfg controller.Config, scale *controller.AutoscaleConfig, id identity, banner func()) int {
	c, err := controller.New(cfg)
	if err != nil {
		ln.Close()
		return fail("controller: %v", err)
	}
	// The banner once the state has loaded: before, a store that did not
	// load was refused after "serving on" (a hostile trial).
	banner()
	defer c.Close() // does not stop the orchestrator's nodes: a restart keeps them
	go func() {
		if err := c.Serve(ln); err != nil && !errors.Is(err, controller.ErrClosed) {
			id.log.Error("controller: serve", "err", err)
		}
	}()
	if scale != nil {
		if _, err := c.StartAutoscaler(*scale); err != nil {
			return fail("controller: %v", err)
		}
	}
	stopMetrics := serveCtlMetrics(f.metrics, c.MetricsHandler(), id)
	defer stopMetrics()
	<-ctx.Done()
	return 0
}

// serveCtlMetrics serves /metrics on addr ("": none) and returns its stop.
func serveCtlMetrics(addr string, h http.Handler, id identity) func() {
	if addr == "" {
		return func() {}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		id.log.Error("controller: metrics endpoint", "addr", addr, "err", err)
		return func() {}
	}
	srv := metrics.Serve(ln, mux, id.log, "controller")
	return func() { srv.Close() }
}

// ctlServe are the flags of a command that runs a controller (controller,
// up): the data directory (the controller's state, the cluster CA), the
// names the controller is reached by, plain TCP, the orphan grace and the
// limits.
type ctlServe struct {
	data        string
	hosts       hostList
	insecure    bool
	ephemeral   bool
	orphanGrace time.Duration
	limits      *ctlLimits

	store    *state.Bolt // opened by apply; closed by close
	stateDir string      // where the state is kept ("" in memory)
	etcd     bool        // the state is kept in etcd (--etcd): no bolt store
	// secretKept is set by secretFile: the caller takes the cluster
	// secret from where a restart finds it again. Without it the state is
	// kept in memory only (a store whose tokens no later secret verifies
	// would refuse the next start).
	secretKept bool
	// deadGrace is --dead-node-grace: how long a node may stay dead before
	// it leaves its jobs' maps (0: never).
	deadGrace time.Duration
}

// stateSubdir is the controller's state directory inside the data
// directory (a bbolt file, state.BoltFile, and the cluster secret when no
// other is given).
const stateSubdir = "controller"

const ctlDataDirHelp = dataDirHelp + ";\nalso the controller's state, DIR/" + stateSubdir + " (jobs, maps, nodes, and the cluster secret unless one is given; " +
	"with --insecure and neither --data-dir nor $" + envDataDir + ", the state is kept in memory only)"

func bindCtlServe(fs *flag.FlagSet) *ctlServe {
	s := &ctlServe{}
	fs.StringVar(&s.data, "data-dir", "", ctlDataDirHelp)
	fs.BoolVar(&s.ephemeral, "ephemeral", false, "keep the controller's state in memory only: a restart forgets every job, and the nodes drop their data after --orphan-grace")
	fs.DurationVar(&s.orphanGrace, "orphan-grace", controller.DefaultOrphanGrace,
		"drop a node's data of a job the controller does not know after this long (negative: never)")
	fs.Var(&s.hosts, "host", "another name or address clients and nodes dial the controller by, for its certificate; repeatable or comma-separated\n(the listen address's host is always in it; all of this machine's addresses when it listens on all)")
	fs.BoolVar(&s.insecure, "insecure", false, insecureServeHelp)
	fs.DurationVar(&s.deadGrace, "dead-node-grace", controller.DefaultDeadNodeGrace,
		"a node dead this long leaves its jobs' maps: its values read as lost (recompute them) and new writes go to the other nodes (0: never)")
	s.limits = bindCtlLimits(fs)
	return s
}

// check refuses the serving flags' values a controller cannot start with:
// its limits, and an orphan grace of 0.
func (s *ctlServe) check() error {
	if s.limits != nil {
		if err := s.limits.apply(&controller.Config{}); err != nil {
			return err
		}
	}
	if s.orphanGrace == 0 {
		return errors.New("--orphan-grace 0 would drop data of jobs the controller has not listed yet: give a duration, or a negative one for never")
	}
	return nil
}

// apply sets cfg's limits and TLS for a controller listening on listen,
// creating the CA and certificates when needed, and returns the TLS
// directory ("" with --insecure).
func (s *ctlServe) apply(cfg *controller.Config, listen string) (string, error) {
	if s.limits != nil {
		if err := s.limits.apply(cfg); err != nil {
			return "", err
		}
	}
	cfg.OrphanGrace = s.orphanGrace
	cfg.DeadNodeGrace = s.deadGrace
	if s.deadGrace <= 0 {
		cfg.DeadNodeGrace = -1 // never
	}
	if cfg.OrphanGrace == 0 {
		return "", errors.New("--orphan-grace 0 would drop data of jobs the controller has not listed yet: give a duration, or a negative one for never")
	}
	if err := s.openState(cfg); err != nil {
		return "", err
	}
	if s.insecure {
		if len(s.hosts) > 0 {
			return "", errors.New("--insecure serves plain TCP: --host is for TLS")
		}
		return "", nil
	}
	data, err := s.dataDir()
	if err != nil {
		return "", err
	}
	tc, dir, err := serverTLS(data, listen, s.hosts)
	if err != nil {
		return "", fmt.Errorf("control-plane TLS in %s: %w", data, err)
	}
	cfg.TLS = tc
	if cfg.CAID, err = pki.CAID(dir); err != nil {
		return "", fmt.Errorf("control-plane TLS in %s: %w", data, err)
	}
	return dir, nil
}

// dataDir is --data-dir, else $POCKET_DATA_DIR, else ~/.pocket.
func (s *ctlServe) dataDir() (string, error) {
	if s.data != "" {
		return s.data, nil
	}
	return defaultDataDir()
}

// stateDirFor is where the controller keeps its state: DATA/controller,
// or "" (memory only) with --ephemeral, or with --insecure and no data
// directory given (neither --data-dir nor $POCKET_DATA_DIR).
func (s *ctlServe) stateDirFor() (string, error) {
	if s.etcd || s.ephemeral || !s.secretKept || s.insecure && s.data == "" && os.Getenv(envDataDir) == "" {
		return "", nil
	}
	data, err := s.dataDir()
	if err != nil {
		return "", err
	}
	data, err = filepath.Abs(data)
	if err != nil {
		return "", err
	}
	return filepath.Join(data, stateSubdir), nil
}

// openState opens the state store (state.OpenBolt) and gives it to cfg.
// A store of a newer format, or one another controller holds, fails.
func (s *ctlServe) openState(cfg *controller.Config) error {
	dir, err := s.stateDirFor()
	if err != nil || dir == "" {
		return err
	}
	st, err := state.OpenBolt(dir)
	if err != nil {
		return err
	}
	s.store, s.stateDir, cfg.Store = st, dir, st
	return nil
}

// secretFile is the cluster secret's file: the one given, else (when
// $POCKET_SECRET is not set and the state is kept) DATA/controller/secret,
// created on first use, so that the jobs' tokens verify after a restart.
// "" leaves loadOwnSecret to take $POCKET_SECRET or make a temporary one.
//
// A caller that runs a controller must take its secret through secretFile
// before apply, or its state is kept in memory only.
func (s *ctlServe) secretFile(given string) string {
	s.secretKept = true
	if given != "" || os.Getenv(token.EnvSecret) != "" {
		return given
	}
	dir, err := s.stateDirFor()
	if err != nil || dir == "" {
		return given // openState reports the error
	}
	if state.CheckParents(dir) != nil {
		return given // openState refuses it, having created nothing
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return given
	}
	return filepath.Join(dir, "secret")
}

// stateLine says where the controller's state is kept.
func (s *ctlServe) stateLine() string {
	switch {
	case s.stateDir == "" && s.ephemeral:
		return "controller state in memory only (a restart forgets every job; drop --ephemeral to keep it in the data directory)"
	case s.stateDir == "":
		return "controller state in memory only (a restart forgets every job; give --data-dir to keep it)"
	}
	return "controller state in " + s.stateDir
}

// close closes the state store.
func (s *ctlServe) close() {
	if s.store != nil {
		_ = s.store.Close()
		s.store = nil
	}
}

// mode names the transport for the serving line.
func (s *ctlServe) mode() string {
	if s.insecure {
		return " over plain TCP (--insecure)"
	}
	return " over mutual TLS"
}

// nodeListenArg is the --listen of a printed node command: the node's
// data plane on host at the node's default port, or on HOST (to fill in)
// when host is empty or an unspecified address (a node must listen on an
// address its clients reach, and it gives clients the address it binds).
// The port is the default's or, when that one is bound on this host (a
// node of an earlier run, restored: a new user's trial was shown a port
// its own node held), the first free one after it.
func nodeListenArg(host string) string {
	return nodeListenAt(host, strconv.Itoa(firstFreePort(host, defaultNodePort, 1)))
}

// defaultNodePort is nodeDefaultPort as a number.
const defaultNodePort = 7100

// firstFreePort is port, or the first port from it on, stepping by step
// (at most 100 of them), that nothing binds on host: a port a local
// listen finds in use is passed over. Any other outcome (a host not of
// this machine, or "HOST" to fill in) keeps port.
func firstFreePort(host string, port, step int) int {
	for range 100 {
		if !portInUse(host, port) || port+step < 1 || port+step > 65535 {
			return port
		}
		port += step
	}
	return port
}

// portInUse reports whether a listen on host:port finds it in use here
// (EADDRINUSE; any other failure, or success, is not).
func portInUse(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err == nil {
		l.Close()
	}
	return errors.Is(err, syscall.EADDRINUSE)
}

// nodePortNoteAt is nodePortNote for a printed command at listen (its
// --listen argument).
func nodePortNoteAt(listen string) string {
	host, p, err := net.SplitHostPort(strings.TrimPrefix(listen, " --listen "))
	n, perr := strconv.Atoi(p)
	if err != nil || perr != nil || p == nodeDefaultPort {
		return nodePortNote
	}
	return fmt.Sprintf("  (each node on one host needs its own --listen port: %d (%s is in use here), then %d, ...)\n",
		n, nodeDefaultPort, firstFreePort(host, n+1, 1))
}

// nodeListenAt is nodeListenArg at port.
func nodeListenAt(host, port string) string {
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "HOST"
	}
	return " --listen " + net.JoinHostPort(host, port)
}

// nodePortNote follows a printed node command: a second node on one host
// needs another port.
const nodePortNote = "  (each node on one host needs its own --listen port: " + nodeDefaultPort + ", then 7101, ...)\n"

// hostOf is addr's host ("" when addr is no HOST:PORT).
func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return h
}

// nodeTLSArg is the flag that gives a node on this host its certificate.
func nodeTLSArg(tlsDir string) string {
	if tlsDir == "" {
		return " --insecure"
	}
	return " --tls-dir " + tlsDir
}

// ctlAddr returns the controller address from the flag, else
// $POCKET_CONTROLLER, else the default: one HOST:PORT, or a
// comma-separated list of the controllers of a cluster on etcd.
func ctlAddr(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := os.Getenv(metaclient.EnvController); env != "" {
		return env
	}
	return ctlDefaultAddr
}

// ctlParse parses flags that may come before, between or after the
// positional arguments (Go's flag package stops at the first positional),
// and returns the positional ones.
func ctlParse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// ctlRetryFor is how long a command waits for a controller that refuses
// connections (restarting), or for the leader of a list of controllers
// (a failover takes the election TTL and more), before it reports the
// error.
func ctlRetryFor(addr string) time.Duration {
	if strings.Contains(addr, ",") {
		return 10 * time.Second
	}
	return 3 * time.Second
}

// ctlClient returns a metaclient of the controller (or of the controllers
// of a comma-separated list, which finds the active one), over TLS with tc
// unless it is nil, and a context for one command, cancelled by an
// interrupt or after a minute.
func ctlClient(addr string, tc *tls.Config) (*metaclient.Client, context.Context, func()) {
	return ctlClientWith(addr, metaclient.Options{TLS: tc})
}

// ctlClientWith is ctlClient with the options opt (its RetryFor set
// here), such as the cluster secret of an operator's proved orders.
func ctlClientWith(addr string, opt metaclient.Options) (*metaclient.Client, context.Context, func()) {
	addr = ctlAddr(addr)
	opt.RetryFor = ctlRetryFor(addr)
	mc := metaclient.New(addr, opt)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	return mc, ctx, func() { cancel(); stop(); mc.Close() }
}

// haFlags are the flags of a controller that is one of several on etcd.
type haFlags struct {
	fs        *flag.FlagSet // the flag set bound to, for the flags given
	etcd      string
	ttl       time.Duration
	advertise string
}

func (h *haFlags) bind(fs *flag.FlagSet) {
	h.fs = fs
	fs.StringVar(&h.etcd, "etcd", "", "keep the state in etcd at these endpoints (comma-separated http://HOST:PORT or HOST:PORT) and run as one of several controllers,\none elected active; the others answer clients and nodes with its address. Every controller needs the same cluster secret\n($"+token.EnvSecret+" or --secret-file) and, over TLS, certificates of the same CA (copy DATA/tls)")
	fs.DurationVar(&h.ttl, "election-ttl", leader.DefaultTTL, "with --etcd: lease of the active controller; another takes over within about this long after it dies (whole seconds)")
	fs.StringVar(&h.advertise, "advertise", "", "with --etcd: the HOST:PORT clients and nodes reach this controller at, handed out while it is active\n(default the --listen address when it names a host)")
}

func (h *haFlags) on() bool { return h.etcd != "" }

// checkOff refuses an HA flag given without --etcd, naming the first one
// given.
func (h *haFlags) checkOff() error {
	var err error
	h.fs.Visit(func(f *flag.Flag) {
		if err == nil && (f.Name == "advertise" || f.Name == "election-ttl") {
			err = fmt.Errorf("--%s %s is for one of several controllers: give --etcd too", f.Name, f.Value)
		}
	})
	return err
}

// checkTTL refuses an --election-ttl the election cannot run with: not
// above 0, or past leader.MaxTTL. (leader.Config takes 0 as its default:
// given on the command line it is a mistake.)
func (h *haFlags) checkTTL() error {
	if h.ttl <= 0 || h.ttl > leader.MaxTTL {
		return fmt.Errorf("--election-ttl %v: want a lease above 0 and at most %v (rounded up to whole seconds)", h.ttl, leader.MaxTTL)
	}
	return nil
}

// advertised is the address this controller publishes while it leads.
func (h *haFlags) advertised(bound net.Addr) (string, error) {
	if h.advertise != "" {
		if err := dialAddr.check("--advertise", h.advertise); err != nil {
			return "", err
		}
		return h.advertise, nil
	}
	ta, ok := bound.(*net.TCPAddr)
	if !ok || ta.IP.IsUnspecified() {
		return "", fmt.Errorf("--etcd: listening on %s, which clients cannot dial: give --advertise HOST:PORT", bound)
	}
	return bound.String(), nil
}

// runHA runs this controller as a member of several on etcd until ctx
// ends (then it resigns: another takes over at once) and exits 0; it
// exits 1 when a won term's state cannot be loaded (another cluster
// secret, a newer format): a supervisor restarts it, and meanwhile
// another controller leads. A term that ends (lease lost) is followed by
// a new campaign in the same process.
func (f *ctlFlags) runHA(ctx context.Context, ln net.Listener, addr string, cfg controller.Config, scale *controller.AutoscaleConfig, id identity) int {
	eps, err := leader.ParseEndpoints(f.ha.etcd)
	if err != nil {
		ln.Close()
		return fail("controller: --etcd: %v", err)
	}
	cli, err := leader.Dial(eps, nil)
	if err != nil {
		ln.Close()
		return fail("controller: %v", err)
	}
	defer cli.Close()
	cand, err := leader.New(leader.Config{Client: cli, TTL: f.ha.ttl, Addr: addr, Logger: id.log})
	if err != nil {
		ln.Close()
		return fail("controller: %v", err)
	}
	defer cand.Close()
	onLead := func(c *controller.Controller) error {
		id.log.Info("controller: now active (won the election): serving clients and nodes", "addr", addr)
		if scale == nil {
			return nil
		}
		_, err := c.StartAutoscaler(*scale)
		return err
	}
	h, err := controller.NewHA(controller.HAConfig{Config: cfg, Candidate: cand, Etcd: cli, OnLead: onLead})
	if err != nil {
		ln.Close()
		return fail("controller: %v", err)
	}
	defer h.Close()
	go func() {
		if err := h.Serve(ln); err != nil && !errors.Is(err, controller.ErrClosed) {
			id.log.Error("controller: serve", "err", err)
		}
	}()
	go checkAdvertised(addr, id.log)
	stopMetrics := serveCtlMetrics(f.metrics, haMetrics{h}, id)
	defer stopMetrics()
	if err := h.Run(ctx); err != nil {
		return fail("controller: %v", err)
	}
	return 0
}

// checkAdvertised warns when the address this controller hands out while
// it leads cannot be dialled from here: clients and nodes would be sent
// where nothing answers (a new user's trial: --advertise with another
// port started silently, was elected, and its nodes were declared dead).
// Only a warning: a supervisor may route the address once the process
// is up, and HA.Run resigns a term that hears from no node.
func checkAdvertised(addr string, log *slog.Logger) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		log.Warn("controller: the address this controller hands out while active does not reach it from here: clients and nodes "+
			"sent there would find nothing (is --advertise right?)", "advertise", addr, "err", err)
		return
	}
	conn.Close()
}

// haMetrics serves the metrics of the active term's controller, or of the
// follower while this one does not lead.
type haMetrics struct{ h *controller.HA }

func (m haMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := m.h.Leading()
	if c == nil {
		c = m.h.Follower()
	}
	c.MetricsHandler().ServeHTTP(w, r)
}

// orchFlags choose how the controller starts and stops nodes: none (nodes
// are started by hand) or Kubernetes pods (package orchestrator/k8s),
// with the autoscaler's band and bounds (up's flags) and the new nodes'
// DRAM and limits.
type orchFlags struct {
	fs     *flag.FlagSet // the flag set bound to, for the --k8s-* flags given
	kind   string
	kf     k8s.Flags
	up     upOptions // its scale and autoscale (bindScale)
	dram   string
	limits nodeLimits
}

func (o *orchFlags) bind(fs *flag.FlagSet) {
	o.fs = fs
	fs.StringVar(&o.kind, "orchestrator", "none", "how the autoscaler starts and stops nodes: kubernetes (pods; the --k8s-* flags) or none (nodes are started by hand)")
	o.kf.Bind(fs)
	bindScale(fs, &o.up)
	fs.StringVar(&o.dram, "node-dram", "1GiB", "with --orchestrator: DRAM tier of each node started")
	o.limits.bind(fs, "node-", "with --orchestrator, each node: ")
}

// check refuses the orchestrator's and the autoscaler's flag values the
// controller could not run with. Like pocket up's --autoscale flags, the
// flags for an orchestrator (--node-dram, the --k8s-* flags) are checked
// whether or not one is chosen; insecure is --insecure, which decides
// whether the nodes need --k8s-tls-secret.
func (o *orchFlags) check(insecure bool) error {
	if err := o.up.checkScale(); err != nil {
		return err
	}
	if err := o.checkK8s(insecure); err != nil {
		return err
	}
	if err := o.limits.apply(&netio.Config{}); err != nil {
		return err
	}
	if _, err := sizeFlag("node-dram", o.dram, o.dram, "means no DRAM tier"); err != nil {
		return err
	}
	switch o.kind {
	case "none":
		if o.up.autoscale {
			return errors.New("--autoscale needs an orchestrator to start nodes with: give --orchestrator kubernetes (or use pocket up --autoscale on one machine)")
		}
		if given := o.k8sGiven(); len(given) > 0 {
			verb := "takes"
			if len(given) > 1 {
				verb = "take"
			}
			warn("controller", "note: %s %s effect only with --orchestrator kubernetes: checked, and unused", strings.Join(given, ", "), verb)
		}
	case "kubernetes":
		return o.checkK8sRequired(insecure)
	default:
		return fmt.Errorf("--orchestrator %q: want kubernetes or none", o.kind)
	}
	return nil
}

// checkK8sRequired refuses, with --orchestrator kubernetes, the --k8s-*
// flags the orchestrator requires left out (--k8s-image, --k8s-controller,
// --k8s-secret, --k8s-tls-secret over TLS), before the controller starts:
// before, they were found when the orchestrator started, after the state
// and the listener. The namespace is left to the pod (--k8s-namespace ""
// is its own, which only a pod knows).
func (o *orchFlags) checkK8sRequired(insecure bool) error {
	o.kf.SetInsecure(insecure)
	cfg, err := o.kf.Config()
	if err == nil {
		if cfg.Namespace == "" {
			cfg.Namespace = "the-pods-own"
		}
		_, err = k8s.New(nil, cfg)
	}
	if err != nil {
		return fmt.Errorf("--orchestrator kubernetes: %w", err)
	}
	return nil
}

// k8sGiven lists the --k8s-* flags on the command line.
func (o *orchFlags) k8sGiven() []string {
	var given []string
	o.fs.Visit(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "k8s-") {
			given = append(given, "--"+f.Name)
		}
	})
	return given
}

// checkK8s refuses a --k8s-* value given that the Kubernetes orchestrator
// would refuse when it starts (k8s.Flags.Config, k8s.New), or the API
// server when it creates a pod (--k8s-image-pull-policy). Each flag given
// is tried alone, the others as their defaults and the ones the
// orchestrator requires filled in, so the error names that flag.
func (o *orchFlags) checkK8s(insecure bool) error {
	var err error
	o.fs.Visit(func(f *flag.Flag) {
		if err == nil && strings.HasPrefix(f.Name, "k8s-") {
			err = checkK8sFlag(f.Name, f.Value.String(), insecure)
		}
	})
	return err
}

// k8sRequired fill in, for checkK8sFlag, the --k8s-* flags the
// orchestrator requires, so that a flag tried alone fails only for its
// own value.
var k8sRequired = map[string]string{"k8s-namespace": "pocket", "k8s-image": "pocket", "k8s-controller": "pocket-controller:7000"}

// checkK8sFlag checks --name v as the Kubernetes orchestrator would. An
// empty required flag is left to the orchestrator's start: it is required
// only with --orchestrator kubernetes (and --k8s-namespace "" means the
// controller pod's own).
func checkK8sFlag(name, v string, insecure bool) error {
	if _, req := k8sRequired[name]; req && v == "" {
		return nil
	}
	if name == "k8s-image-pull-policy" {
		switch corev1.PullPolicy(v) {
		case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
			return nil
		}
		return fmt.Errorf("--%s %q: want %s, %s or %s", name, v, corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever)
	}
	fs := flag.NewFlagSet("k8s", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var kf k8s.Flags
	kf.Bind(fs)
	var err error
	for n, req := range k8sRequired {
		if err == nil && n != name {
			err = fs.Set(n, req)
		}
	}
	if err == nil {
		err = fs.Set(name, v)
	}
	kf.SetInsecure(insecure)
	var cfg k8s.Config
	if err == nil {
		cfg, err = kf.Config()
	}
	if err == nil {
		_, err = k8s.New(nil, cfg)
	}
	if err != nil {
		return fmt.Errorf("--%s %q: %w", name, v, err)
	}
	return nil
}

// autoscaler returns the autoscaler's configuration with its orchestrator
// (nil with --orchestrator none). The orchestrator is never closed by the
// controller: closing it would delete the node pods, and their data, on
// every restart of the controller's pod. New nodes register at
// --k8s-controller (the controller's Service).
func (o *orchFlags) autoscaler(ctx context.Context, insecure bool, addr string) (*controller.AutoscaleConfig, error) {
	if o.kind != "kubernetes" {
		return nil, nil
	}
	o.kf.SetInsecure(insecure)
	orch, err := o.kf.New(ctx)
	if err != nil {
		return nil, err
	}
	scale := o.up.scale
	scale.Orchestrator, scale.Addr = orch, addr
	spec := orchestrator.NodeSpec{DRAM: o.dram, Args: o.limits.args()}
	if o.up.nodeMbps > 0 {
		spec.Args = append(spec.Args, "--dram-mbps", strconv.FormatFloat(o.up.nodeMbps, 'f', -1, 64))
	}
	scale.Spec = spec
	return &scale, nil
}
