package bench

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/limited"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/perf/echo"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// Mode is what one invocation of the command does.
type Mode uint8

// Modes.
const (
	ModeRun      Mode = iota // drive a store (the default)
	ModeLoopback             // measure a single-stream loopback TCP transfer
	ModeMatrix               // list the comparison cells for a script
	ModeReport               // print the comparison table from a results file
	ModeEcho                 // serve the echo server (the small-request limit) until interrupted
)

// Options are the parsed command line.
type Options struct {
	Mode   Mode
	Store  string // a store scheme: StorePocket, StoreRedis, StoreMemcache or StoreEcho
	Addr   string // host:port of the store
	Config Config
	JSON   bool
	Label  string
	// Job is the job id stamped on requests to a node ("": DefaultJob);
	// with Controller, the registered job to drive instead of a fresh one.
	Job   string
	Token string // the job's capability token, hex as `pocket job register` prints it
	// Epoch is the placement-map epoch first stamped on requests to a
	// node; a stale-epoch refusal makes the run adopt the node's.
	Epoch  uint64
	Chunk  int       // loopback write size
	Report string    // results file for ModeReport
	Tier   wire.Tier // the node tier raw requests go to
	// EchoListen is where ModeEcho serves (host:port).
	EchoListen string
	// Controller, when set, runs the load through the SDK against the
	// registered job Job with Token, or without Job against a fresh job
	// registered with Hints (and deregistered at the end).
	Controller string
	Hints      pocket.Hints
	// Keep leaves the keys the run wrote in the store (--keep); without
	// it the run deletes them at its end (Config.Keep).
	Keep bool
	// defaultKeys is set when --keys was not given: Main sizes the key
	// count of a run against a node to the node's free capacity.
	defaultKeys bool
	// ctlFromEnv is set when Controller is $POCKET_CONTROLLER (EnvController),
	// the default of a --job run given no node.
	ctlFromEnv bool
	// job is the job of a --controller run, once opened (for the hints
	// of a run refused for space: its nodes' room).
	job *pocket.Job
}

// EnvController is the variable of the controller's address every pocket
// command defaults --controller to (metaclient.EnvController): bench's
// default for a --job run given neither --addr nor --target.
const EnvController = "POCKET_CONTROLLER"

// DefaultJob is the job id stamped on requests to a node without --job
// (a standalone node serves any job).
const DefaultJob = "bench"

// Store schemes of --target, as results name them (Result.Store).
const (
	StorePocket   = "pocket"
	StoreRedis    = "redis"
	StoreMemcache = "memcache"
	StoreEcho     = "echo"
)

// defaultPorts are the ports a --target without one gets.
var defaultPorts = map[string]string{StoreRedis: "6379", StoreMemcache: "11211"}

// Target is the store's address as a URL, as printed in results.
func (o *Options) Target() string {
	if o.Controller != "" && o.Job != "" {
		return "sdk://" + o.Controller + "?job=" + url.QueryEscape(o.Job)
	}
	if o.Controller != "" {
		return "sdk://" + o.Controller + "?" + hintsString(o.Hints)
	}
	return o.Store + "://" + o.Addr
}

// sizeFlag is a byte size flag written like 1KiB or 512MiB.
type sizeFlag struct{ n *int }

func (s sizeFlag) String() string {
	if s.n == nil {
		return ""
	}
	return units.FormatSize(int64(*s.n))
}

func (s sizeFlag) Set(v string) error {
	n, err := units.ParseSize(v)
	if err != nil {
		return err
	}
	if n > math.MaxInt32 {
		return fmt.Errorf("size %q: larger than 2 GiB", v)
	}
	*s.n = int(n)
	return nil
}

const usageText = `usage: pocket bench --addr HOST:PORT | --target SCHEME://HOST:PORT  [--job JOBID] [flags]
       pocket bench --controller HOST:PORT --job JOBID [flags]
       pocket bench --controller HOST:PORT [--lambdas N] [--capacity SIZE] [--peak-mbps M] [--latency-sensitive] [flags]
       pocket bench workload NAME ...   (pocket bench workload --help)
       pocket bench micro ...
       pocket bench --loopback [--duration D] [--chunk SIZE]
       pocket bench --echo-listen HOST:PORT
       pocket bench --matrix | --report RESULTS.jsonl

Drives a storage node (--addr or --target pocket://HOST:PORT), a Redis
server (redis://HOST:PORT, default port 6379), a memcached server
(memcache://HOST:PORT, default port 11211; meta protocol, memcached 1.6+)
or the echo server (echo://HOST:PORT) with one load generator and prints
ops/s, MB/s and latency percentiles.

A run writes keys named b<SIZE>-<N> ("b1024-00000000"): a get run first puts
every one of its --keys (default min(100000, BUDGET/SIZE): 100,000 keys,
about 100 MiB of 1 KiB values), a put run the ones it draws. BUDGET is half
the free capacity of the node's tier (--addr, pocket://; the node's usage
reply says it), up to 256MiB: a 256MiB node gets 32 keys of 4MiB; 64MiB when
the node does not say and for --controller runs (a job's nodes may be
small); 256MiB for Redis and memcached. A run whose puts find the store
full ("tier full") says so: give fewer --keys or a larger node. At its end the
run deletes the keys it wrote, so a run against a registered job leaves
nothing in it (a fresh --controller job's keys go with its deregistration);
--keep leaves them. The report's "keys" line (JSON: preloaded, written_keys,
deleted_keys, cleanup) says what was written and what became of it. A key
of the job with one of these names is overwritten, then deleted.
--echo-listen serves the echo server, the small-request limit: the node's
event loop answering each request with a reply of the node's reply size and
doing nothing else (package perf/echo), until interrupted.

A node started by pocket up or with --controller serves only a registered
job, with the job's token (pocket bench --token-file FILE or $POCKET_TOKEN;
pocket job register prints the id and the token). A standalone pocket node
serves anyone.

  --controller ADDR --job JOBID  drives that job through the SDK: keys are
      spread over the job's map and follow it as it grows or shrinks. The
      job stays registered after the run, without the run's keys (unless
      --keep). --job JOBID without --controller, --addr or --target takes
      $POCKET_CONTROLLER for the controller, as the other pocket commands.
  --controller ADDR              registers a fresh job named bench with the
      hints, drives it through the SDK and deregisters it at the end.
  --addr NODE --job JOBID        sends every request to that one node, which
      need not own the keys: it measures the node, not the job. A refusal for
      a stale map epoch makes the run adopt the node's current epoch and go
      on (the refusals are counted in the report); the run does not follow
      the job's map to other nodes (use --controller for that). A node
      not in the job's map refuses it at its own epoch: the run stops at
      once and says so.

A run in which no request of a connection succeeds for --stall-limit (every
reply an error or a refusal), or whose job or token a node refuses, stops
early with an error. An interrupted run (Ctrl-C, SIGTERM) stops, deletes
the keys it wrote as any run, reports what it measured ("interrupted after
3.0s of 30s": ops/s and MB/s are over the time measured) and exits 1.

`

// unlisted are flags the usage does not list: the pocket command sets
// -token itself, from --token-file or $POCKET_TOKEN, and refuses it on its
// command line (a secret there is visible to every user of the machine).
var unlisted = map[string]bool{"token": true}

// printShown is fs.PrintDefaults without the unlisted flags.
func printShown(fs *flag.FlagSet) {
	shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	shown.SetOutput(fs.Output())
	fs.VisitAll(func(f *flag.Flag) {
		if !unlisted[f.Name] {
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	shown.PrintDefaults()
}

// ParseArgs parses the bench command line. Errors are returned, already
// written to errOut as the pocket commands write a usage error ("pocket:
// bench: " and the message, naming the flag, then the usage line); after
// -h or --help (flag.ErrHelp) the whole usage is written there instead.
func ParseArgs(args []string, errOut io.Writer) (*Options, error) {
	o := &Options{Config: Config{Size: 1 << 10}, Chunk: 1 << 20}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // while parsing: the errors are written below
	fs.Usage = func() { fmt.Fprint(fs.Output(), usageText); printShown(fs) }
	addr := fs.String("addr", "", "`HOST:PORT` of a storage node")
	target := fs.String("target", "", "store `URL`: pocket://, redis://, memcache:// (or memcached://) or echo://HOST:PORT")
	op := fs.String("op", "get", "operation: get or put")
	fs.Var(sizeFlag{&o.Config.Size}, "size", "value `SIZE` (1KiB, 1MiB, ...)")
	fs.IntVar(&o.Config.Conns, "conns", 50, "connections, one goroutine each")
	fs.IntVar(&o.Config.Pipeline, "pipeline", 1, "requests in flight per connection (1: no pipelining)")
	fs.DurationVar(&o.Config.Duration, "duration", 5e9, "measured `time`")
	fs.DurationVar(&o.Config.Warmup, "warmup", 5e8, "unmeasured `time` before the measurement")
	fs.IntVar(&o.Config.Keys, "keys", 0, "distinct keys (0: min(100000, BUDGET/size), BUDGET being half the free capacity of --addr's\n"+
		"node tier up to 256MiB (64MiB when the node does not say), 64MiB for --controller runs, 256MiB for Redis and memcached)")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON object instead of text")
	fs.StringVar(&o.Label, "label", "", "label stored in the result (for --report)")
	fs.StringVar(&o.Job, "job", "", "`JOBID` of a registered job: stamped on requests to a node (default "+DefaultJob+"), or driven through the SDK with --controller")
	fs.StringVar(&o.Token, "token", "", "the job's capability token (hex)")
	fs.Uint64Var(&o.Epoch, "epoch", 0, "--addr: placement-map epoch first stamped on requests (a stale-epoch refusal makes the run adopt the node's)")
	fs.DurationVar(&o.Config.StallLimit, "stall-limit", DefaultStallLimit, "stop the run when a connection has had no success for this `time`")
	loopback := fs.Bool("loopback", false, "measure one TCP stream over 127.0.0.1 instead of a store")
	fs.Var(sizeFlag{&o.Chunk}, "chunk", "write `SIZE` of --loopback")
	matrix := fs.Bool("matrix", false, "list the comparison cells, one a line: name op size conns pipeline echo apart (echo, apart: 1 or 0; see bench.WriteMatrix)")
	fs.StringVar(&o.Report, "report", "", "print the comparison table of a results `file` (JSON lines); its met column says yes or no, n/a without the peer's figure, not run for a cell the file lacks")
	tier := fs.String("tier", wire.TierDRAM.String(), "node tier for --addr runs: dram or nvme")
	fs.StringVar(&o.EchoListen, "echo-listen", "", "serve the echo server on `HOST:PORT` until interrupted")
	fs.StringVar(&o.Controller, "controller", "", "run through the SDK against the --job JOBID on this controller `HOST:PORT`, or a fresh job without --job\n"+
		"(default $"+EnvController+" for a --job run given neither --addr nor --target)")
	fs.IntVar(&o.Hints.Lambdas, "lambdas", 0, "--controller: number of lambdas hint")
	var capacity int
	fs.Var(sizeFlag{&capacity}, "capacity", "--controller: capacity hint `SIZE`")
	fs.Int64Var(&o.Hints.PeakMbps, "peak-mbps", 0, "--controller: peak bandwidth hint in Mb/s")
	fs.BoolVar(&o.Hints.LatencySensitive, "latency-sensitive", false, "--controller: latency-sensitive hint (DRAM tier)")
	fs.IntVar(&o.Config.ServerPID, "server-pid", 0, "report the CPU time per operation of this local process (the store's server) over the measured window, beside the generator's own (/proc/`PID`/stat)")
	fs.BoolVar(&o.Keep, "keep", false, "leave the keys the run wrote (a get run's preloaded keys, a put run's) in the store; without it the run deletes them at its end")
	err := fs.Parse(args)
	fs.SetOutput(errOut)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return nil, err
	}
	if err != nil {
		return nil, usageError(fs, "%v", err)
	}
	o.Hints.CapacityBytes = int64(capacity)
	o.Config.Keep = o.Keep
	o.defaultKeys = o.Config.Keys == 0
	if o.Controller != "" {
		o.Config.Budget = SmallBudget // the job's nodes may be small
	}
	if o.Token != "" {
		if _, err := token.Parse(o.Token); err != nil {
			return nil, usageError(fs, "--token: %v", err)
		}
	}
	if o.Tier, err = wire.ParseTier(*tier); err != nil {
		return nil, usageError(fs, "--tier %q: want dram or nvme", *tier)
	}
	if fs.NArg() > 0 {
		return nil, usageError(fs, "unexpected argument %q", fs.Arg(0))
	}
	switch {
	case o.EchoListen != "":
		o.Mode = ModeEcho
		return o, nil
	case *matrix:
		o.Mode = ModeMatrix
		return o, nil
	case o.Report != "":
		o.Mode = ModeReport
		return o, nil
	case *loopback:
		o.Mode = ModeLoopback
		if err := checkTimes(&o.Config); err != nil {
			return nil, usageError(fs, "%v", err)
		}
		if o.Chunk < 1 {
			return nil, usageError(fs, "--chunk %s: want a size above 0", units.FormatSize(int64(o.Chunk)))
		}
		return o, nil
	}
	if o.Config.Op, err = ParseOp(*op); err != nil {
		return nil, usageError(fs, "--op %q: want get or put", *op)
	}
	if env := os.Getenv(EnvController); env != "" && o.Controller == "" && o.Job != "" && *addr == "" && *target == "" {
		// A registered job and no node: through its controller, by
		// default $POCKET_CONTROLLER, as every other pocket command.
		o.Controller, o.ctlFromEnv = env, true
		o.Config.Budget = SmallBudget // as any --controller run's
	}
	if o.Controller == "" {
		if o.Store, o.Addr, err = parseTarget(*addr, *target); err != nil {
			return nil, usageError(fs, "%v", err)
		}
		if o.Job == "" {
			o.Job = DefaultJob
		}
	} else if err := checkControllerFlags(fs, o); err != nil {
		return nil, usageError(fs, "%v", err)
	}
	if err := checkRunFlags(o); err != nil {
		return nil, usageError(fs, "%v", err)
	}
	if o.Controller == "" && o.Store == StorePocket && o.Config.Size > wire.DefaultMaxPayload {
		// The connection would refuse every put: one request carries
		// at most that much (client.ConnOptions' default limits).
		return nil, usageError(fs, "--size %s: a request to a node carries a value of at most %s; for larger values drive a job "+
			"through the SDK, which puts them in chunks (--controller ADDR --job JOBID)",
			units.FormatSize(int64(o.Config.Size)), units.FormatSize(wire.DefaultMaxPayload))
	}
	if err := o.Config.normalize(); err != nil {
		return nil, usageError(fs, "%v", err)
	}
	if o.Config.ServerPID != 0 {
		if _, err := ProcessCPU(o.Config.ServerPID); err != nil {
			return nil, usageError(fs, "--server-pid: %v", err)
		}
	}
	return o, nil
}

// checkControllerFlags refuses flags that do not apply to a --controller
// run: a node's address, tier or epoch (the SDK follows the job's map), the
// hints of a fresh job next to --job, a --job without its token.
func checkControllerFlags(fs *flag.FlagSet, o *Options) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	env := "$" + EnvController + " (" + o.Controller + ")" // the controller when ctlFromEnv
	for _, name := range []string{"addr", "target", "tier", "epoch"} {
		if set[name] {
			if o.ctlFromEnv {
				return fmt.Errorf("--%s is for a run against one node (--addr NODE); without --addr or --target, --job %s runs through %s and follows the job's map",
					name, o.Job, env)
			}
			return fmt.Errorf("--%s is for a run against one node; --controller runs follow the job's map", name)
		}
	}
	if o.Job == "" {
		return nil
	}
	for _, name := range []string{"lambdas", "capacity", "peak-mbps", "latency-sensitive"} {
		if set[name] {
			return fmt.Errorf("--%s is a hint for a fresh job; --job %s is registered already", name, o.Job)
		}
	}
	switch {
	case o.Token == "" && o.ctlFromEnv:
		return fmt.Errorf("--job %s through %s needs the job's token (--token-file FILE or $POCKET_TOKEN)", o.Job, env)
	case o.Token == "":
		return fmt.Errorf("--controller with --job %s needs the job's token (--token-file FILE or $POCKET_TOKEN)", o.Job)
	}
	return nil
}

// checkRunFlags refuses, one flag at a time and naming it, the values of
// a run that Config.normalize would refuse two at a time, and negative
// hints.
func checkRunFlags(o *Options) error {
	c := &o.Config
	switch {
	case c.Conns < 1:
		return fmt.Errorf("--conns %d: want at least 1", c.Conns)
	case c.Pipeline < 1:
		return fmt.Errorf("--pipeline %d: want at least 1 (1: no pipelining)", c.Pipeline)
	case o.Hints.Lambdas < 0:
		return fmt.Errorf("--lambdas %d: a hint must not be negative (0: not given)", o.Hints.Lambdas)
	case o.Hints.PeakMbps < 0:
		return fmt.Errorf("--peak-mbps %d: a hint must not be negative (0: not given)", o.Hints.PeakMbps)
	}
	return checkTimes(c)
}

// checkTimes refuses a --duration not above 0 and a negative --warmup.
func checkTimes(c *Config) error {
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("--duration %v: want a time above 0", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("--warmup %v: must not be negative", c.Warmup)
	}
	return nil
}

// usageLine follows a usage error, as the pocket commands' do.
const usageLine = "Usage: pocket bench [flags]   (more: pocket bench --help)"

// usageError writes the error as the pocket commands write a usage error,
// "pocket: bench: " and the message, then usageLine, and returns it.
func usageError(fs *flag.FlagSet, format string, a ...any) error {
	err := fmt.Errorf(format, a...)
	fmt.Fprintf(fs.Output(), "%s\n%s\n", errorLine(err), usageLine)
	return err
}

// parseTarget resolves --addr or --target to a store kind and host:port.
// Its errors name the flag and its value.
func parseTarget(addr, target string) (store, hostport string, err error) {
	name, value := "--addr", addr
	switch {
	case addr != "" && target != "":
		return "", "", errors.New("give --addr or --target, not both")
	case addr != "":
		store, hostport = StorePocket, addr
	case target != "":
		name, value = "--target", target
		u, err := url.Parse(target)
		if err != nil {
			return "", "", fmt.Errorf("--target %q: %w", target, err)
		}
		if u.Scheme == "memcached" { // the server's own name, refused before (a new user's trial)
			u.Scheme = StoreMemcache
		}
		switch u.Scheme {
		case StorePocket, StoreRedis, StoreMemcache, StoreEcho:
		default:
			return "", "", fmt.Errorf("--target %q: scheme must be pocket://, redis://, memcache:// or echo://", target)
		}
		store, hostport = u.Scheme, u.Host
		if p, ok := defaultPorts[u.Scheme]; ok && u.Port() == "" {
			hostport = net.JoinHostPort(u.Hostname(), p)
		}
	default:
		return "", "", errors.New("give --addr HOST:PORT or --target SCHEME://HOST:PORT for one node or server, " +
			"or --controller HOST:PORT to drive a job (with --job JOBID, $" + EnvController + " is its default)")
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", "", fmt.Errorf("%s %q: want HOST:PORT: %w", name, value, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", "", fmt.Errorf("%s %q: port %q: want a number from 1 to 65535", name, value, port)
	}
	if host == "" {
		hostport = net.JoinHostPort("127.0.0.1", port)
	}
	return store, hostport, nil
}

// Dialer returns the dialer for the chosen store.
func (o *Options) Dialer() Dialer {
	switch o.Store {
	case StoreRedis:
		return RESPDialer(o.Addr, o.Config.Size)
	case StoreMemcache:
		return MemcacheDialer(o.Addr, o.Config.Size)
	case StoreEcho:
		return EchoDialer(o.Addr, o.Config.Size)
	}
	return PocketDialer(o.Addr, o.connOptions(), o.Config.Size)
}

// connOptions are the options of a connection to the node --addr: the
// job, its token, the first epoch and the tier.
func (o *Options) connOptions() client.ConnOptions {
	opts := client.ConnOptions{Job: []byte(o.Job), Epoch: o.Epoch, NVMe: o.Tier == wire.TierNVMe}
	if o.Token != "" {
		// The token as `pocket job register` prints it (hex); checked in
		// ParseArgs.
		opts.Token, _ = token.Parse(o.Token)
	}
	return opts
}

// Main runs the bench command and returns the process exit status: 0 on
// success, 1 when the run failed, saw wrong responses or puts refused for
// space, or was interrupted (ctx ended: its report, over the time it
// measured, is written, as the other pocket commands exit 1 on a
// signal), 2 for bad usage.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usageOut := stderr
	if wantsHelp(args) {
		usageOut = stdout // asked-for help is output, not an error
	}
	o, err := ParseArgs(args, usageOut)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	switch o.Mode {
	case ModeMatrix:
		return status(stderr, WriteMatrix(stdout))
	case ModeReport:
		return report(o.Report, stdout, stderr)
	case ModeEcho:
		return status(stderr, serveEcho(ctx, o.EchoListen, stdout))
	case ModeLoopback:
		st, err := Loopback(ctx, o.Config.Duration, o.Config.Warmup, o.Chunk)
		if err != nil && !st.Interrupted {
			return status(stderr, err)
		}
		r := st.Result(o.Label) // an interrupted transfer's too, over the time it measured
		return status(stderr, cmp.Or(o.write(stdout, &r), err))
	}
	if o.defaultKeys && o.Store == StorePocket {
		o.sizeKeys(ctx)
	}
	dial := o.Dialer()
	fresh := o.Controller != "" && o.Job == ""
	if fresh || o.Store == StoreEcho {
		// Deregistering a fresh job deletes its keys; the echo server
		// keeps none.
		o.Config.Keep = true
	}
	switch {
	case fresh:
		o.Config.Gone = "with the job, deregistered"
	case o.Store == StoreEcho:
		o.Config.Gone = "nowhere: the echo server keeps none"
	}
	if o.Controller != "" {
		j, done, err := o.sdkJob(ctx)
		if err != nil {
			return status(stderr, err)
		}
		defer done()
		o.job = j
		dial = SDKDialer(j, o.Config.Size)
	}
	st, runErr := Run(ctx, o.Config, dial)
	if st == nil {
		return status(stderr, o.noSpaceHint(ctx, runErr, RefusedForSpace(runErr), errors.Is(runErr, wire.ErrTooLarge)))
	}
	r := NewResult(o.Target(), o.Label, st)
	switch {
	case fresh:
		r.Cleanup = CleanupDeregistered
	case o.Store == StoreEcho:
		r.Cleanup = CleanupNone
	}
	if err := o.write(stdout, &r); err != nil {
		return status(stderr, err)
	}
	if runErr == nil && r.Errors > 0 {
		runErr = fmt.Errorf("bench: %d wrong responses; first: %s", r.Errors, r.FirstError)
	}
	if runErr == nil && st.NoSpace > 0 {
		// Not wrong responses: the store's answer to puts it cannot
		// hold, which noSpaceHint explains.
		runErr = fmt.Errorf("bench: the store refused %d put(s) for lack of space; first: %s", st.NoSpace, st.FirstNoSpace)
	}
	if runErr == nil && r.Cleanup == CleanupIncomplete {
		runErr = fmt.Errorf("bench: %s", st.CleanupNote())
	}
	return status(stderr, o.noSpaceHint(ctx, runErr, st.NoSpace > 0 || RefusedForSpace(runErr),
		st.firstTooLarge || errors.Is(runErr, wire.ErrTooLarge)))
}

// sizeKeys sets the default key count of a run against a node to
// NodeBudget of the room the node's usage reply gives (NodeRoom), or to
// SmallBudget's when the node does not answer it within the stall limit
// (and NodeRoom's 5 s).
//
// A put run's values in flight (inFlight) need room beside its keys: a
// put over a key holds the new value while the old one is still there.
// A new user's trial: 50 connections of 4 MiB puts on a 128 MiB node
// failed "tier full" with 16 keys, and again with 8.
func (o *Options) sizeKeys(ctx context.Context) {
	o.Config.Budget = SmallBudget
	if o.Config.StallLimit > 0 { // a node silent for it gets no longer here than in the run
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Config.StallLimit)
		defer cancel()
	}
	if room, err := NodeRoom(ctx, o.Addr, o.connOptions()); err == nil {
		o.Config.Budget = NodeBudget(max(room-o.inFlight(), 0))
	}
	o.Config.Keys = DefaultKeys(int64(o.Config.Size), o.Config.Budget)
}

// inFlight is the bytes of values a put run may have in flight at once
// (connections x pipeline x size); 0 for other runs.
func (o *Options) inFlight() int64 {
	if o.Config.Op != Put {
		return 0
	}
	return int64(o.Config.Conns) * int64(o.Config.Pipeline) * int64(o.Config.Size)
}

// noSpaceHint adds to err, when full says the store refused puts for lack
// of space, what did not fit and what to do, with the figures the store
// gives (storeRoom: a node's usage reply, or those of a --controller
// job's nodes). A value that does not fit the room by itself (larger
// than the tier, or, for a put run, not twice in its free bytes: a put
// over a key holds the old value and the new one) asks for a smaller
// --size. Otherwise: fewer keys (a count whose values fit in half the
// free bytes, as the default key count; SmallBudget's when the store
// does not say) when there are more than one, fewer connections when a
// put run's values in flight do not fit beside the keys (inFlight), or
// a larger store. nil stays nil.
func (o *Options) noSpaceHint(ctx context.Context, err error, full, tooLarge bool) error {
	if err == nil || !full {
		return err
	}
	size := int64(o.Config.Size)
	keys := int64(o.Config.Keys)
	held := keys // the values the run holds at once: its keys, and a put run's in flight
	if o.Config.Op == Put {
		held += int64(o.Config.Conns) * int64(o.Config.Pipeline)
	}
	capacity, room, where, rerr := o.storeRoom(ctx)
	if tooLarge && (rerr != nil || size <= capacity) {
		// The store refuses the value's size itself, for a reason its
		// room does not show (more than half a node's NVMe staging
		// memory): fewer keys or a second try never help. Before, such a
		// refusal read "tier full ... run again" (a new user's trial).
		return fmt.Errorf("%w; the store refuses a value of %s whatever room it has (the refusal says why): run with a smaller --size, "+
			"or against %s", err, units.FormatSize(size), o.largerStore())
	}
	var advice []string
	switch {
	case rerr != nil && keys > 1:
		keys = min(int64(DefaultKeys(size, SmallBudget)), max(keys/2, 1))
		advice = append(advice, fmt.Sprintf("fewer keys (--keys %d, %s of values)", keys, units.FormatSize(keys*size)))
	case rerr != nil:
		// One key: fewer would not help, and the store does not say
		// how much it holds.
		return fmt.Errorf("%w; the store had no room for the run's one key of %s (tier full): run with a smaller --size, or against %s",
			err, units.FormatSize(size), o.largerStore())
	case size > capacity || o.Config.Op == Put && 2*size > room || size > room:
		// The value itself does not fit: neither fewer keys nor
		// fewer connections help.
		var what string
		switch {
		case size > capacity:
			what = fmt.Sprintf("a value of %s is larger than %s can hold (%s in all, %s of it free)",
				units.FormatSize(size), where, units.FormatSize(capacity), units.FormatSize(room))
		case size > room:
			what = fmt.Sprintf("a value of %s is larger than the room left for the job on %s (%s free of %s)",
				units.FormatSize(size), where, units.FormatSize(room), units.FormatSize(capacity))
		default:
			what = fmt.Sprintf("a put of a %s value over a key holds the key's old value beside the new one, %s, more than the %s free on %s (of %s)",
				units.FormatSize(size), units.FormatSize(2*size), units.FormatSize(room), where, units.FormatSize(capacity))
		}
		smaller := "a smaller --size"
		if fit := floorPow2(room / 2 / max(held, 1)); fit > 0 {
			more := ""
			if held > keys+1 {
				more = "; fewer --conns allow more"
			}
			smaller = fmt.Sprintf("a smaller --size (at most %s, for the run's %d key(s)%s to fit in half the %s free%s)",
				units.FormatSize(fit), o.Config.Keys, o.inFlightWords(), units.FormatSize(room), more)
		}
		return fmt.Errorf("%w; %s: run with %s, or against %s", err, what, smaller, o.largerStore())
	default:
		if keys > 1 && keys*size > room/2 {
			keys = int64(DefaultKeys(size, NodeBudget(room)))
			advice = append(advice, fmt.Sprintf("fewer keys (--keys %d, %s of values)", keys, units.FormatSize(keys*size)))
		}
		if o.inFlight() > 0 && keys*size+o.inFlight() > room {
			per := int64(o.Config.Pipeline) * size // one connection's values in flight
			conns := max(min((room-keys*size)/2/per, int64(o.Config.Conns)-1), 1)
			advice = append(advice, fmt.Sprintf("fewer connections (--conns %d: the run's %d put(s) in flight, --conns %d x --pipeline %d, "+
				"hold %s beside the keys)", conns, o.Config.Conns*o.Config.Pipeline, o.Config.Conns, o.Config.Pipeline, units.FormatSize(o.inFlight())))
		}
	}
	if len(advice) == 0 && keys > 1 { // keys and values in flight fit what the node said: others' values took it
		advice = append(advice, fmt.Sprintf("fewer keys (--keys %d)", max(keys/2, 1)))
	}
	if len(advice) == 0 {
		return fmt.Errorf("%w; the store had no room for the run's one key of %s (tier full), though %s said %s of its %s were free: "+
			"other values took it since; run again, or against %s", err, units.FormatSize(size), where, units.FormatSize(room),
			units.FormatSize(capacity), o.largerStore())
	}
	return fmt.Errorf("%w; the store had no room for the run's %d key(s) of %s (tier full): run with %s, or against %s",
		err, o.Config.Keys, units.FormatSize(size), strings.Join(advice, " and "), o.largerStore())
}

// inFlightWords is " and N put(s) in flight" for a put run (N: --conns x
// --pipeline), "" for a get run.
func (o *Options) inFlightWords() string {
	if o.Config.Op != Put {
		return ""
	}
	return fmt.Sprintf(" and %d put(s) in flight", o.Config.Conns*o.Config.Pipeline)
}

// floorPow2 is the largest power of two not above n (0 for n < 1).
func floorPow2(n int64) int64 {
	if n < 1 {
		return 0
	}
	return 1 << (bits.Len64(uint64(n)) - 1)
}

// storeRoom is what the store says of its room for the run: the capacity
// of the tier and the bytes of it free to the job, of the node (--addr,
// pocket://) or summed over the nodes of a --controller job's map, and
// where that is ("the node's dram tier", "the dram tier of the job's 2
// nodes"). Redis, memcached and a store that does not answer give an
// error.
func (o *Options) storeRoom(ctx context.Context) (capacity, room int64, where string, err error) {
	switch {
	case o.Controller != "" && o.job != nil:
		m := o.job.Map()
		opts := client.ConnOptions{Job: []byte(m.Job), Token: m.Token, Epoch: m.Epoch, NVMe: m.Tier == wire.TierNVMe}
		// A fresh job's bytes are all the run's own keys, which it puts
		// over (and its deregistration drops): room for the run, not
		// taken. Before, they counted as taken, and a new user's fresh
		// job that held 996 keys of 256 KiB was advised --keys 13.
		fresh := o.Job == ""
		n := 0
		for _, nd := range m.Nodes {
			if nd.Weight <= 0 {
				continue
			}
			c, used, err := nodeUsage(ctx, nd.Addr, opts)
			if err != nil {
				return 0, 0, "", err
			}
			if fresh {
				used = 0
			}
			capacity, room, n = capacity+c, room+max(c-used, 0), n+1
		}
		if n == 0 {
			return 0, 0, "", errors.New("bench: the job's map has no node")
		}
		return capacity, room, fmt.Sprintf("the %v tier of the job's %d node(s)", m.Tier, n), nil
	case o.Controller == "" && o.Store == StorePocket:
		c, used, err := nodeUsage(ctx, o.Addr, o.connOptions())
		return c, max(c-used, 0), fmt.Sprintf("the node's %v tier", o.Tier), err
	}
	return 0, 0, "", errors.New("bench: not a node")
}

// largerStore is the advice of a run whose store is too small.
func (o *Options) largerStore() string {
	if o.Controller != "" {
		return "a job with more room (a larger --capacity hint, or larger nodes)"
	}
	return "a larger node (pocket node --dram SIZE, or --nvme PATH:SIZE for --tier nvme)"
}

// sdkJob opens the registered job --job, or registers a fresh one.
func (o *Options) sdkJob(ctx context.Context) (*pocket.Job, func(), error) {
	if o.Job == "" {
		return SDKJob(ctx, o.Controller, o.Hints)
	}
	tok, err := token.Parse(o.Token) // checked in ParseArgs
	if err != nil {
		return nil, nil, err
	}
	return SDKOpenJob(ctx, o.Controller, o.Job, tok)
}

// wantsHelp reports whether a flag before any "--" asks for help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

func (o *Options) write(w io.Writer, r *Result) error {
	if o.JSON {
		return r.WriteJSON(w)
	}
	return r.WriteText(w)
}

func report(path string, stdout, stderr io.Writer) int {
	f, err := limited.Open(path) // a pipe or a terminal would hang the report
	if err != nil {
		return status(stderr, err)
	}
	defer f.Close()
	results, err := ReadResults(f)
	if err != nil {
		return status(stderr, err)
	}
	return status(stderr, WriteComparison(stdout, results))
}

// status prints err, if any, and turns it into an exit status.
func status(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, errorLine(err))
	return 1
}

// errorLine is the line a failed run prints, in the form of the other
// pocket commands ("pocket: bench: message"): the "pocket" and "bench"
// prefixes of the layers an error passed through (this package's, the
// SDK's) said once, at its start.
func errorLine(err error) string {
	segs := strings.Split(err.Error(), ": ")
	keep := segs[:0]
	for _, s := range segs {
		if s != "pocket" && s != "bench" {
			keep = append(keep, s)
		}
	}
	return "pocket: bench: " + strings.Join(keep, ": ")
}

// serveEcho serves the echo server on addr until ctx ends, printing its
// address first ("echo server listening on HOST:PORT").
func serveEcho(ctx context.Context, addr string, stdout io.Writer) error {
	s, err := echo.Listen(addr, netio.Config{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "echo server listening on %s\n", s.Addr())
	<-ctx.Done()
	return s.Close()
}
