package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/agent"
	"github.com/pocketstore/pocket/internal/idlecpu"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/perf/hw"
	"github.com/pocketstore/pocket/telemetry"
	"github.com/pocketstore/pocket/telemetry/metrics"
)

// nodeDefaultPort is the port of a node's default --listen address,
// nodeDefaultListen.
const (
	nodeDefaultPort   = "7100"
	nodeDefaultListen = "127.0.0.1:" + nodeDefaultPort
)

func init() {
	register("node", "", "run a storage node (or drain one: node drain ADDR)", runNode)
	registerSub("node drain", "ADDR", "drain a node: it moves its data to the jobs' other nodes and leaves")
}

type nodeFlags struct {
	listen   string
	dram     string
	loops    int
	busyPoll time.Duration
	spinAll  bool
	maxConns int
	nvme     string
	staging  string
	index    string // --nvme-index
	ctl      string
	keyFile  string // file holding the cluster secret
	advert   string
	profile  string
	dramMbps float64
	nvmeMbps float64
	metrics  string
	tls      tlsFlags
	limits   nodeLimits
	log      logFlags
}

func (f *nodeFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", nodeDefaultListen, "address to serve the data plane on (each node on one host needs its own port)")
	fs.StringVar(&f.dram, "dram", "1GiB", "DRAM tier capacity (0 for none)")
	fs.IntVar(&f.loops, "loops", 0, "event loops (default: one per core)")
	f.busyPoll = -1
	fs.Var((*optDuration)(&f.busyPoll), "busy-poll", "spin this long polling sockets before sleeping, while half a core or more is idle (0: off; auto: 50us, or off with --nvme)")
	fs.BoolVar(&f.spinAll, "busy-poll-always", false, "with --busy-poll, spin even when no core is idle")
	fs.IntVar(&f.maxConns, "max-conns", 10000, "connection limit")
	fs.StringVar(&f.nvme, "nvme", "", "NVMe tier as PATH:SIZE (a block device or a file, opened with O_DIRECT)")
	fs.StringVar(&f.staging, "nvme-staging", "256MiB", "aligned memory for NVMe transfers in flight; a value or chunk larger than half of it is refused")
	fs.StringVar(&f.index, "nvme-index", "1GiB", "most memory the NVMe tier's key index may take, counted as each key's length plus 256 bytes; a put of a new key past it answers no space")
	fs.StringVar(&f.ctl, "controller", "", "controller address or comma-separated list (the active one is found); the node registers and heartbeats (default $"+metaclient.EnvController+"; none: standalone)")
	fs.StringVar(&f.keyFile, "secret-file", "", "file holding the cluster secret shared with the controller, mode 0600 (default $"+token.EnvSecret+")")
	fs.StringVar(&f.advert, "advertise", "", "data-plane address to give clients (default: the bound address)")
	fs.StringVar(&f.profile, "profile", "", "device profile `FILE` written by pocket hw --profile (tier bandwidths)")
	fs.Float64Var(&f.dramMbps, "dram-mbps", 0, "DRAM tier bandwidth in Mb/s to report (default: from --profile, else the controller's default)")
	fs.Float64Var(&f.nvmeMbps, "nvme-mbps", 0, "NVMe tier bandwidth in Mb/s to report (default: from --profile)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus /metrics on this address (e.g. 127.0.0.1:9101)")
	f.tls.bind(fs)
	f.limits.bind(fs, "", "")
	f.log.bind(fs)
}

func runNode(args []string) int {
	if code, ok := nodeSubcommand(args); ok {
		return code
	}
	fs := newFlagSet("node")
	var f nodeFlags
	f.bind(fs)
	if _, code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	f.limits.visited(fs, "")
	h, err := f.log.handler(os.Stderr)
	if err == nil {
		err = f.check() // a bad size or limit: usage, before anything starts
	}
	if err != nil {
		return usageError("node", err)
	}
	ctlFrom := "--controller"
	if f.ctl == "" {
		// Named as given: a new user's trial set $POCKET_CONTROLLER alone
		// and was told --controller needs the secret.
		f.ctl, ctlFrom = os.Getenv(metaclient.EnvController), "$"+metaclient.EnvController
	}
	var secret []byte
	var tc *tls.Config
	if f.ctl != "" {
		var err error
		if secret, err = clusterSecret(f.keyFile); err != nil {
			return fail("node: %s (%s) needs the cluster secret: %v", ctlFrom, f.ctl, err)
		}
		if tc, err = f.tls.config(pki.RoleNode); err != nil {
			return fail("node: %s (%s) needs a node certificate: %v", ctlFrom, f.ctl, err)
		}
	} else if f.keyFile != "" {
		// A standalone node given a secret checks job tokens with it.
		// Before, it ignored --secret-file without a word and served
		// every request, token or none, for any job.
		var err error
		if secret, err = clusterSecret(f.keyFile); err != nil {
			return fail("node: --secret-file: %v", err)
		}
	}
	id := newIdentity(h, "node")
	slog.SetDefault(id.log)
	if f.advert != "" {
		id.set(f.advert)
	} else if a := boundAs(f.listen); a != "" {
		id.set(a) // before startNode, whose tiers may log
	}
	node, closeTiers, err := startNode(&f, secret, id.log)
	if err != nil {
		return fail("node: %v", listenTaken(err, f.listen, "give this node another address with --listen HOST:PORT (each node on one host needs its own port)"))
	}
	defer closeTiers()
	defer node.Close()
	id.set(node.Addr().String())
	// Said before the serving line, which callers wait for.
	if secret == nil {
		fmt.Fprintf(os.Stderr, "pocket node %s: no cluster secret (--controller, or --secret-file): job tokens are not checked, "+
			"so any client that reaches the node can read, write and delete every job's values\n", node.Addr())
	}
	fmt.Printf("pocket node serving on %s (%s)\n", node.Addr(), f.tiers())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The eBPF block probe sees every block request of the host, and costs
	// on each, so it is attached only where its figures are read: on
	// /metrics, or in the heartbeats to a controller.
	sampler, err := telemetry.NewSampler(telemetry.Config{BlockLatency: f.metrics != "" || f.ctl != ""})
	if err != nil {
		return fail("node: telemetry: %v", err)
	}
	defer sampler.Close()
	if f.metrics != "" {
		maddr, err := serveMetrics(ctx, f.metrics, sampler, node, id.log)
		if err != nil {
			return fail("node: --metrics: %v", err)
		}
		// The node named: under pocket up this line goes to up's stderr
		// among every node's (a new user's trial read three bare
		// "metrics on http://..." lines there).
		fmt.Printf("node %s metrics on http://%s/metrics\n", node.Addr(), maddr)
		if f.ctl == "" { // no agent samples the host: sample it here
			go func() { _ = sampler.Run(ctx, time.Second, func(telemetry.Snapshot, error) {}) }()
		}
	}
	if f.ctl == "" {
		<-ctx.Done()
		logStopping(node, id.log)
		return 0
	}
	sig := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the deferred closes: the metrics endpoint stops first
	agentDone, err := runAgent(ctx, &f, node, secret, tc, sampler, id.log)
	if err != nil {
		return fail("node: %v", err)
	}
	code := nodeExit(ctx, cancel, agentDone, id.log)
	if sig.Err() != nil {
		logStopping(node, id.log)
	}
	return code
}

// logStopping says, when a signal stops the node, what goes with it: the
// values its tiers hold (a new user's trial stopped a node holding two
// jobs' values with Ctrl-C, and it exited without a word). Nothing is
// said of an empty node.
func logStopping(node *dataplane.Node, log *slog.Logger) {
	var used, values int64
	for _, t := range node.Tiers() {
		u := t.Usage()
		used, values = used+u.Used, values+u.Values
	}
	if values == 0 {
		log.Info("node: stopping on a signal; it holds no values")
		return
	}
	log.Warn("node: stopping on a signal: the values it holds go with it (drain it first to move them: pocket node drain ADDR)",
		"values", values, "bytes", units.FormatSize(used), "jobs", len(node.PlacedJobs()))
}

// tiers names the node's tiers for its serving line: "dram 1GiB",
// "nvme PATH:SIZE", or both; f.check has parsed --dram.
func (f *nodeFlags) tiers() string {
	var out []string
	if dram, err := units.ParseSize(f.dram); err == nil && dram > 0 {
		out = append(out, "dram "+f.dram)
	}
	if f.nvme != "" {
		out = append(out, "nvme "+f.nvme)
	}
	return strings.Join(out, ", ")
}

// agentStopWait bounds the wait for the agent to stop (its drain or move
// in progress ends with its context) after a signal.
const agentStopWait = 5 * time.Second

// nodeExit waits until the node is told to stop, by a signal (ctx) or by
// the controller (the agent ends), and returns the exit status. The agent
// has stopped (or had agentStopWait to) when it returns; the caller's
// defers then close the listeners and the tiers.
func nodeExit(ctx context.Context, cancel context.CancelFunc, agentDone <-chan error, log *slog.Logger) int {
	select {
	case <-ctx.Done():
		select {
		case <-agentDone: // it ends with ctx
		case <-time.After(agentStopWait):
			log.Warn("node: the agent did not stop in time; exiting all the same", "waited", agentStopWait)
		}
		return 0
	case err := <-agentDone:
		cancel()
		return agentEnded(err, log)
	}
}

// agentEnded is the exit status of a node whose agent ended with err: 0
// for a node the controller drained and retired (agent.ErrRetired) or a
// signal, 1 with the error on stderr for any other end (another node
// serves at the advertised address: agent.ErrAddressInUse).
func agentEnded(err error, log *slog.Logger) int {
	switch {
	case errors.Is(err, agent.ErrRetired):
		log.Info("node: drained and retired by the controller: exiting", "why", err)
		return 0
	case errors.Is(err, context.Canceled):
		return 0 // a signal came as the agent ended
	}
	return fail("node: %v", err)
}

// runAgent starts the agent, which registers with the controller and
// heartbeats over TLS with tc unless it is nil, until ctx ends or the
// controller refuses the node for good; the channel gets Run's error once
// it has stopped.
func runAgent(ctx context.Context, f *nodeFlags, node *dataplane.Node, secret []byte, tc *tls.Config, s *telemetry.Sampler, log *slog.Logger) (<-chan error, error) {
	mbps, err := tierMbps(f)
	if err != nil {
		return nil, err
	}
	addr := f.advert
	if addr == "" {
		addr = node.Addr().String()
	}
	mc := metaclient.New(f.ctl, metaclient.Options{Secret: secret, TLS: tc, Logger: log})
	done := make(chan error, 1)
	go func() {
		err := agent.Run(ctx, agent.Config{Node: node, Addr: addr, Controller: mc, Mbps: mbps, Sampler: s, Logger: log})
		mc.Close()
		done <- err
	}()
	return done, nil
}

// tierMbps is each tier's bandwidth: flags first, then the device profile.
// A DRAM tier is as fast as the node's network; an NVMe tier is bounded by
// both the network and the device.
func tierMbps(f *nodeFlags) (map[dataplane.Kind]float64, error) {
	m := map[dataplane.Kind]float64{}
	if f.profile != "" {
		p, err := hw.ReadProfile(f.profile)
		if err != nil {
			return nil, err
		}
		netMbps := p.Report.LoopbackMBps * 8
		m[dataplane.KindDRAM] = netMbps
		dev := min(p.Report.SeqReadMBps, p.Report.SeqWriteMBps) * 8
		if netMbps > 0 {
			dev = min(dev, netMbps)
		}
		m[dataplane.KindNVMe] = dev
	}
	if f.dramMbps > 0 {
		m[dataplane.KindDRAM] = f.dramMbps
	}
	if f.nvmeMbps > 0 {
		m[dataplane.KindNVMe] = f.nvmeMbps
	}
	return m, nil
}

// serveMetrics serves the node's Prometheus /metrics on addr until ctx
// ends, from a registry of its own: the node's request, connection and
// tier figures, the host's (the sampler's, with the eBPF block histograms
// when the probe runs), and the Go runtime's and the process's. It returns
// the address it listens on, or why it cannot.
func serveMetrics(ctx context.Context, addr string, s *telemetry.Sampler, node *dataplane.Node, log *slog.Logger) (net.Addr, error) {
	reg, err := metrics.NewRegistry(s, node.MetricsCollector())
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg, log))
	srv := metrics.Serve(ln, mux, log, "node")
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return ln.Addr(), nil
}

// optDuration is a duration flag that may be "auto" (stored as -1), so
// the default can depend on other flags.
type optDuration time.Duration

func (d *optDuration) String() string {
	if d == nil || *d < 0 {
		return "auto"
	}
	return time.Duration(*d).String()
}

func (d *optDuration) Set(s string) error {
	if s == "auto" {
		*d = -1
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %s", s)
	}
	*d = optDuration(v)
	return nil
}

// defaultBusyPoll is the loops' spin time when --busy-poll is not given:
// 50us, gated on idle CPU, for a DRAM-only node, where it cut a 1 KiB
// get's p50 to about 0.4x of Redis's on one connection; none on a node
// with an NVMe tier, whose gets measured no faster with spinning (4 KiB
// p50 122-169 us with, 128-152 us without, on this project's VM) and whose
// device waiters compete with a spinning loop for the cores.
func defaultBusyPoll(hasNVMe bool) time.Duration {
	if hasNVMe {
		return 0
	}
	return 50 * time.Microsecond
}

// check refuses flag values the node cannot start with (a size that does
// not parse or is negative, a limit out of its range), so a bad command
// line is a usage error (exit 2) before any tier is built.
func (f *nodeFlags) check() error {
	dram, err := sizeFlag("dram", f.dram, f.dram, "means no DRAM tier")
	if err != nil {
		return err
	}
	if _, err := sizeFlag("nvme-staging", f.staging, f.staging, "means 64MiB"); err != nil {
		return err
	}
	if _, err := sizeFlag("nvme-index", f.index, f.index, "means 1GiB"); err != nil {
		return err
	}
	if err := f.checkTiers(dram); err != nil {
		return err
	}
	if err := f.checkFiles(); err != nil {
		return err
	}
	for _, m := range []struct {
		name string
		v    float64
	}{{"dram-mbps", f.dramMbps}, {"nvme-mbps", f.nvmeMbps}} {
		if !(m.v >= 0) || math.IsInf(m.v, 0) {
			return fmt.Errorf("--%s %v: want a bandwidth in Mb/s, 0 or more (0: from --profile or the default)", m.name, m.v)
		}
	}
	if f.loops < 0 {
		return fmt.Errorf("--loops %d: must not be negative (0: one per core)", f.loops)
	}
	if f.maxConns < 0 {
		return fmt.Errorf("--max-conns %d: must not be negative (0: the default)", f.maxConns)
	}
	return f.limits.apply(&netio.Config{})
}

// checkTiers refuses a node without a tier (--dram 0, the DRAM tier's
// size given as dram, and no --nvme) and an --nvme the tier cannot open.
func (f *nodeFlags) checkTiers(dram int64) error {
	if f.nvme == "" {
		if dram == 0 {
			return fmt.Errorf("--dram %q and no --nvme: a node needs a tier: give --dram a size above 0, or --nvme PATH:SIZE", f.dram)
		}
		return nil
	}
	path, size, err := nvmeSpec(f.nvme)
	if err != nil {
		return err
	}
	if size > 0 && size < minNVMeSize {
		return fmt.Errorf("--nvme %q: %s", f.nvme, nvmeTooSmall)
	}
	if err := checkNVMePath(path, size); err != nil {
		return fmt.Errorf("--nvme %q: %w", f.nvme, err)
	}
	return nil
}

// minNVMeSize is the smallest NVMe tier: one block of its allocator, which
// dataplane.NewNVMe makes 4096 bytes, or the device's direct-I/O alignment
// when that is larger (known only once the device is open).
const minNVMeSize = 4096

// nvmeTooSmall says why a size under minNVMeSize is refused.
const nvmeTooSmall = "below 4KiB, the smallest NVMe tier (one 4096-byte block)"

// checkFiles refuses a file the node would open only later: a --profile
// that does not parse (read for the bandwidths it reports). Its
// --secret-file is checked with every command's (checkFileFlags).
func (f *nodeFlags) checkFiles() error {
	if f.profile != "" {
		if _, err := hw.ReadProfile(f.profile); err != nil {
			return fmt.Errorf("--profile %q: %w (write one with pocket hw --profile FILE)", f.profile, err)
		}
	}
	return nil
}

// checkNVMePath refuses an NVMe tier's path that nvme.Open would refuse:
// one that exists but is neither a regular file nor a block device, or
// cannot be opened for reading and writing; a missing one when size is 0
// (the file's own size: there is none to create it with), or whose
// directory is missing (nvme.Open creates a missing file of a size given).
func checkNVMePath(path string, size int64) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && size > 0:
		return checkDirOf(path)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist: give its size, PATH:SIZE, to create it", path)
	case err != nil:
		return err
	case !fi.Mode().IsRegular() && fi.Mode().Type() != os.ModeDevice:
		return fmt.Errorf("%s is neither a file nor a block device", path)
	case size == 0 && fi.Mode().IsRegular() && fi.Size() < minNVMeSize:
		return fmt.Errorf("%s has %d bytes, %s: give a size, PATH:SIZE", path, fi.Size(), nvmeTooSmall)
	}
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return file.Close()
}

// startNode builds the tiers and starts the node; closeTiers releases the
// tiers' memory and devices after the node has stopped.
func startNode(f *nodeFlags, secret []byte, log *slog.Logger) (*dataplane.Node, func(), error) {
	dramSize, err := units.ParseSize(f.dram)
	if err != nil {
		return nil, nil, err
	}
	busyPoll := f.busyPoll
	if busyPoll < 0 {
		busyPoll = defaultBusyPoll(f.nvme != "")
	}
	// Loops spin only while cores are idle, unless --busy-poll-always.
	var gate *idlecpu.Gate
	if busyPoll > 0 && !f.spinAll {
		gate = idlecpu.Start()
	}
	cfg := dataplane.NodeConfig{
		Listen: f.listen,
		Net:    netio.Config{Loops: f.loops, BusyPoll: busyPoll, MaySpin: gate.Open, MaxConns: f.maxConns},
		Logger: log,
		// With a controller, no job is served before the controller's
		// table arrives (a client's map may predate a restart here).
		AwaitSync: f.ctl != "",
	}
	if err := f.limits.apply(&cfg.Net); err != nil {
		gate.Close()
		return nil, nil, err
	}
	if secret != nil {
		cfg.Guard = dataplane.NewTokenGuard(secret)
	}
	var tiers []dataplane.Tier
	if dramSize > 0 {
		d, err := dataplane.NewDRAM(dramSize, dataplane.DRAMOptions{})
		if err != nil {
			gate.Close()
			return nil, nil, err
		}
		cfg.DRAM = d
		tiers = append(tiers, d)
	}
	closeTiers := func() {
		for _, t := range tiers {
			_ = t.Close()
		}
		gate.Close()
	}
	if f.nvme != "" {
		t, dev, err := openNVMe(f.nvme, f.staging, f.index)
		if err != nil {
			closeTiers()
			return nil, nil, err
		}
		cfg.NVMe = t
		tiers = append(tiers, t)
		prev := closeTiers
		closeTiers = func() {
			prev()
			_ = dev.Close()
		}
	}
	n, err := dataplane.NewNode(cfg)
	if err != nil {
		closeTiers()
		return nil, nil, err
	}
	return n, closeTiers, nil
}

// nvmeSpec splits --nvme's PATH:SIZE.
func nvmeSpec(spec string) (path string, size int64, err error) {
	i := strings.LastIndexByte(spec, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("--nvme %q: want PATH:SIZE", spec)
	}
	size, err = sizeFlag("nvme", spec, spec[i+1:], "means the file's or device's size")
	return spec[:i], size, err
}

// openNVMe opens PATH:SIZE as the NVMe tier. Transfers use a private
// staging region, not the DRAM tier's arena, so NVMe traffic never eats
// into DRAM capacity.
func openNVMe(spec, staging, index string) (*dataplane.NVMe, *nvme.Device, error) {
	path, size, err := nvmeSpec(spec)
	if err != nil {
		return nil, nil, err
	}
	pool, err := sizeFlag("nvme-staging", staging, staging, "means 64MiB")
	if err != nil {
		return nil, nil, err
	}
	maxIndex, err := sizeFlag("nvme-index", index, index, "means 1GiB")
	if err != nil {
		return nil, nil, err
	}
	dev, err := nvme.Open(path, nvme.Options{Size: size, BufferPool: pool})
	if errors.Is(err, syscall.EFBIG) {
		return nil, nil, fmt.Errorf("--nvme %q: %w (the file system takes no file that large: give a smaller SIZE)", spec, err)
	}
	if err != nil {
		return nil, nil, err
	}
	t, err := dataplane.NewNVMe(dev, dataplane.NVMeOptions{MaxIndexBytes: maxIndex})
	if err != nil {
		dev.Close()
		return nil, nil, err
	}
	return t, dev, nil
}
