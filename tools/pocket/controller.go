package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
)

// ctlDefaultAddr is where the controller listens, and where the job and
// status commands look for it, unless told otherwise.
const ctlDefaultAddr = "127.0.0.1:7000"

func init() {
	register("controller", "", "run the controller (node and job registries, placement)", runController)
}

func runController(args []string) int {
	fs := newFlagSet("controller")
	listen := fs.String("listen", ctlDefaultAddr, "address to serve the control plane on")
	secretFile := fs.String("secret-file", "", "file holding the cluster secret shared with the nodes, mode 0600; created with a fresh secret if missing\n(default $"+token.EnvSecret+"; else a fresh secret in a temporary file)")
	heartbeat := fs.Duration("heartbeat", time.Second, "heartbeat interval asked of the nodes")
	deadAfter := fs.Duration("dead-after", 0, "mark a silent node dead after this long (default 3 heartbeats)")
	metrics := fs.String("metrics", "", "serve Prometheus /metrics on this address")
	serve := bindCtlServe(fs)
	var lf logFlags
	lf.bind(fs)
	if _, code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	h, err := lf.handler(os.Stderr)
	if err != nil {
		return fail("controller: %v", err)
	}
	id := newIdentity(h, "controller")
	slog.SetDefault(id.log)
	secret, err := loadOwnSecret(serve.secretFile(*secretFile))
	if err != nil {
		return fail("controller: %v", err)
	}
	defer secret.close()
	cfg := controller.Config{Secret: secret.key, HeartbeatInterval: *heartbeat, DeadAfter: *deadAfter, Logger: id.log}
	tlsDir, err := serve.apply(&cfg, *listen)
	if err != nil {
		return fail("controller: %v", err)
	}
	defer serve.close()
	c, err := controller.New(cfg)
	if err != nil {
		return fail("controller: %v", err)
	}
	addr, err := c.Listen(*listen)
	if err != nil {
		c.Close()
		return fail("controller: %v", err)
	}
	id.set(addr.String())
	secretArg, note := secret.usage()
	fmt.Printf("pocket controller serving on %s%s\n%s\nexport %s=%s\n", addr, serve.mode(), serve.stateLine(), metaclient.EnvController, addr)
	if tlsDir != "" {
		fmt.Printf("export %s=%s\n", envTLSDir, tlsDir)
	}
	fmt.Printf("start nodes with (%s):\n  pocket node --controller %s%s%s\n", note, addr, secretArg, nodeTLSArg(tlsDir))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *metrics != "" {
		srv := &http.Server{Addr: *metrics, Handler: metricsMux(c), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				id.log.Error("controller: metrics endpoint", "addr", *metrics, "err", err)
			}
		}()
		defer srv.Close()
	}
	<-ctx.Done()
	c.Close()
	return 0
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
	// secretKept is set by secretFile: the caller takes the cluster
	// secret from where a restart finds it again. Without it the state is
	// kept in memory only (a store whose tokens no later secret verifies
	// would refuse the next start).
	secretKept bool
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
	s.limits = bindCtlLimits(fs)
	return s
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
	if s.ephemeral || !s.secretKept || s.insecure && s.data == "" && os.Getenv(envDataDir) == "" {
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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return given
	}
	return filepath.Join(dir, "secret")
}

// stateLine says where the controller's state is kept.
func (s *ctlServe) stateLine() string {
	if s.stateDir == "" {
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

// nodeTLSArg is the flag that gives a node on this host its certificate.
func nodeTLSArg(tlsDir string) string {
	if tlsDir == "" {
		return " --insecure"
	}
	return " --tls-dir " + tlsDir
}

// ctlAddr returns the controller address from the flag, else
// $POCKET_CONTROLLER, else the default.
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

// ctlClient returns a metaclient of the controller, over TLS with tc
// unless it is nil, and a context for one command, cancelled by an
// interrupt or after a minute.
func ctlClient(addr string, tc *tls.Config) (*metaclient.Client, context.Context, func()) {
	mc := metaclient.New(ctlAddr(addr), metaclient.Options{TLS: tc})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	return mc, ctx, func() { cancel(); stop(); mc.Close() }
}
