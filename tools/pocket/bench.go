package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/perf/bench"
)

// The bench subcommand is a thin front end of perf/bench: flags, the load
// generator, the drivers and the report all live there.
func init() {
	register("bench", "", "load generator for a node or Redis (--addr HOST:PORT, --target redis://HOST:PORT or --controller ADDR)", runBench)
	registerSub("bench workload", "NAME", "run a workload with lambda-like worker processes and report its phases")
	registerSub("bench micro", "", "microbenchmark suite of a node's requests, by op and size")
}

func runBench(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path, err := benchCtlCheck(args); err != nil && !helpRequested(args) {
		return usageError(path, err)
	}
	args, err := benchTLSArgs(args)
	if errors.Is(err, errNoTLS) {
		return fail("bench: %v", err)
	}
	if err != nil {
		return usageError("bench", err)
	}
	if len(args) > 0 {
		switch args[0] {
		case "workload":
			return runWorkload(ctx, args[1:])
		case "micro":
			return runMicro(ctx, args[1:])
		}
	}
	if helpRequested(args) {
		code := externalHelp("bench", func(a []string, stdout, stderr io.Writer) int {
			return bench.Main(ctx, a, stdout, stderr)
		})
		benchOwnHelp(helpOut)
		return code
	}
	_, file, _, err := takeFlag(args, "token-file", true)
	if err == nil {
		err = checkTokenFileFlag(file) // as every command's (checkFileFlags)
	}
	if err != nil {
		return usageError("bench", err)
	}
	args, err = benchTokenArgs(args)
	if err != nil {
		return fail("bench: %v", err)
	}
	return bench.Main(ctx, args, os.Stdout, os.Stderr)
}

// benchTLSArgs takes --tls-dir DIR and --insecure out of args, which go to
// perf/bench and perf/workload (their SDK reads $POCKET_TLS_DIR, and
// without it dials plain TCP; workers inherit it), and sets the
// environment from them: --tls-dir sets $POCKET_TLS_DIR (a directory with
// a client certificate), --insecure unsets it; with neither, defaultTLSDir,
// and a run naming a --controller without any TLS directory is refused
// (errNoTLS) rather than sent over plain TCP, as the other commands do.
// Both flags given is a usage error.
func benchTLSArgs(args []string) ([]string, error) {
	args, dir, withDir, err := takeFlag(args, "tls-dir", true)
	if err != nil {
		return nil, err
	}
	// A boolean flag's "given" is its value; its text says it appeared.
	args, v, insecure, err := takeFlag(args, "insecure", false)
	givenInsecure := v != ""
	if err == nil && !withDir && !givenInsecure {
		// $POCKET_INSECURE stands for --insecure, as on the other commands.
		insecure, err = insecureFromEnv()
	}
	switch {
	case err != nil:
		return nil, err
	case withDir && insecure:
		return nil, errors.New("--tls-dir and --insecure: give one")
	}
	if withDir || givenInsecure {
		// The flags win over the environment, in this process's SDK and
		// its workers' too (before, --insecure=false still ran plain TCP
		// and --tls-dir beside $POCKET_INSECURE=1 was refused as both
		// set: a hostile re-check).
		os.Unsetenv(envInsecure)
	}
	switch {
	case withDir:
		if _, err := memberConfig(dir, pki.RoleClient); err != nil {
			return nil, fmt.Errorf("--tls-dir: %w", err)
		}
		os.Setenv(envTLSDir, dir)
	case insecure:
		os.Unsetenv(envTLSDir)
	default:
		defaultTLSDir()
		if _, _, ctl, _ := takeFlag(args, "controller", true); (ctl || benchEnvController(args) != "") && os.Getenv(envTLSDir) == "" {
			return nil, errNoTLS
		}
	}
	return args, nil
}

// benchEnvController is $POCKET_CONTROLLER when pocket bench (not its
// subcommands) takes it for its --controller, as perf/bench decides: a
// run with --job and none of --controller, --addr and --target; else "".
func benchEnvController(args []string) string {
	env := os.Getenv(metaclient.EnvController)
	if env == "" || len(args) > 0 && (args[0] == "workload" || args[0] == "micro") {
		return ""
	}
	for _, name := range []string{"controller", "addr", "target"} {
		if _, _, given, _ := takeFlag(args, name, true); given {
			return ""
		}
	}
	if _, job, _, _ := takeFlag(args, "job", true); job == "" {
		return ""
	}
	return env
}

// benchCtlCheck checks the --controller of pocket bench and of its
// subcommands, whose flags perf/bench, perf/workload and perf/micro parse,
// as parseFlags checks every other command's (checkAddrFlags); bench
// workload, which takes $POCKET_CONTROLLER when --controller is not given,
// has that checked too, and so has bench itself when a --job run given no
// node takes it (benchEnvController). It returns the command's path for
// the usage error.
func benchCtlCheck(args []string) (string, error) {
	path := "bench"
	if len(args) > 0 && (args[0] == "workload" || args[0] == "micro") {
		path += " " + args[0]
	}
	_, ctl, given, err := takeFlag(args, "controller", true)
	env := os.Getenv(metaclient.EnvController)
	switch {
	case err != nil:
		return path, err
	case given && ctl != "":
		return path, dialList.check("--controller", ctl)
	case !given && env != "" && path == "bench workload":
		return path, ctlEnvCheck(env)
	case path == "bench" && benchEnvController(args) != "":
		return path, ctlEnvCheck(env)
	}
	return path, nil
}

// takeFlag takes the flag --name (with a value when hasValue: "--name V"
// or "--name=V"; else a boolean: "--name" or "--name=BOOL") out of args,
// up to a "--", and returns the rest, its last value and whether it was
// given (for a boolean, whether it was given true).
func takeFlag(args []string, name string, hasValue bool) (rest []string, value string, given bool, err error) {
	rest = make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if flagName(a) != name {
			rest = append(rest, a)
			continue
		}
		given = true
		if _, v, ok := strings.Cut(a, "="); ok {
			value = v
			continue
		}
		if !hasValue {
			value = "true"
			continue
		}
		if i+1 == len(args) {
			return nil, "", false, fmt.Errorf("--%s needs a value", name)
		}
		i++
		value = args[i]
	}
	if !hasValue && given {
		b, err := strconv.ParseBool(value)
		if err != nil {
			return nil, "", false, fmt.Errorf("--%s=%s: want true or false", name, value)
		}
		given = b
	}
	return rest, value, given, nil
}

// defaultTLSDir sets $POCKET_TLS_DIR, when it is not set, to the TLS
// directory the other commands use by default (tls/ in $POCKET_DATA_DIR or
// ~/.pocket, when it holds a CA), so that the SDK under bench --controller
// and bench workload (which reads $POCKET_TLS_DIR) reaches the controller
// of pocket up as pocket status does.
func defaultTLSDir() {
	if os.Getenv(envTLSDir) != "" {
		return
	}
	var tf tlsFlags
	if dir, err := tf.resolve(); err == nil && dir != "" {
		os.Setenv(envTLSDir, dir)
	}
}

// benchOwnHelp describes the flag this front end adds to perf/bench's:
// where a node's job token comes from.
func benchOwnHelp(w io.Writer) {
	fs := newFlagSet("bench")
	fs.String("token-file", "", "`FILE` (mode 0600) holding the token of the registered job --job JOBID, for --addr,\n"+
		"--target pocket:// and --controller runs (default $"+envToken+"; pocket job register prints it): a node\n"+
		"started by pocket up or with --controller refuses requests without the token of a registered job")
	fs.String("tls-dir", "", "`DIR` with the cluster CA and a client certificate for --controller runs and bench workload\n"+
		"(default $"+envTLSDir+", else tls/ in $"+envDataDir+" or ~/.pocket when it holds a CA)")
	fs.Bool("insecure", false, insecureHelp)
	fmt.Fprintf(w, "\nFlags of pocket bench itself (a job's token comes from --token-file or $%s, never the command line):\n", envToken)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// benchTokenArgs takes --token-file FILE out of args and, when it or
// $POCKET_TOKEN gives a job token, hands the token to perf/bench as its
// --token flag. These arguments stay in this process's memory: no argv
// that other users can read ever holds the token.
func benchTokenArgs(args []string) ([]string, error) {
	rest, file, _, err := takeFlag(args, "token-file", true)
	if err != nil {
		return nil, err
	}
	if file == "" && os.Getenv(envToken) == "" {
		return rest, nil
	}
	t, err := jobToken(file)
	if err != nil {
		return nil, err
	}
	return append([]string{"--token", token.Format(t)}, rest...), nil
}
