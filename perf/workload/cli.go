package workload

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/pocketstore/pocket/wire"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pocketstore/pocket/internal/units"
)

const usageText = `usage: pocket bench workload NAME (--controller ADDR | --nodes A,B,C | --target redis://HOST:PORT)
                             [--workers N] [--size SIZE] [--json] [flags]
       pocket bench workload --report RESULTS.jsonl

Runs a serverless workload against our store or Redis, every task in its
own worker process with its own client, and checks the output. NAME is
one of: %s.
SIZE: sort, total input (100-byte records); mapreduce, total text;
paramserver, the model (with --rounds); statechain, total chain input.
Exit status 0 only when the output checked out.

`

// CLI is what Main needs from the binary it runs in.
type CLI struct {
	// Exe and WorkerArgs start a worker process: Exe WorkerArgs...,
	// reading a Task on stdin (the pocket binary: itself, ["worker"]).
	Exe        string
	WorkerArgs []string
	Stdout     io.Writer
	Stderr     *os.File
}

type cliOptions struct {
	name, report                 string
	target                       Target
	spec                         Spec
	json, progress, inproc, keep bool
	timeout                      time.Duration
}

func parseCLI(args []string, errOut io.Writer) (*cliOptions, error) {
	o := &cliOptions{}
	fs := flag.NewFlagSet("workload", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a parse error is written by usageErr, one line
	fs.Usage = func() {}     // the flag package calls it at every error too
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		o.name, args = args[0], args[1:]
	}
	// The default is read after parsing: as the flag's default, a set
	// $POCKET_CONTROLLER showed twice in --help ("(default
	// $POCKET_CONTROLLER) (default "ADDR")").
	ctl := fs.String("controller", "", "pocket controller `ADDR` (default $POCKET_CONTROLLER)")
	nodes := fs.String("nodes", "", "pocket storage nodes `A,B,C` for a static job (no controller)")
	redis := fs.String("target", "", "Redis server `redis://HOST:PORT`, or shards redis://A:1,redis://B:2 (keys spread by hash)")
	tier := fs.String("tier", wire.TierDRAM.String(), "tier of a static pocket job: dram or nvme")
	size := fs.String("size", "", "workload `SIZE` (1GiB, 64MiB, ...; default per workload)")
	fs.IntVar(&o.spec.Workers, "workers", 4, "worker processes (lambdas) per phase")
	fs.Uint64Var(&o.spec.Seed, "seed", 1, "seed of the generated input")
	fs.IntVar(&o.spec.Rounds, "rounds", 0, "paramserver rounds (default 10)")
	fs.BoolVar(&o.json, "json", false, "print one JSON object")
	fs.BoolVar(&o.progress, "progress", false, "progress bars on stderr even when it is not a terminal")
	fs.BoolVar(&o.inproc, "inproc", false, "run workers as goroutines of this process instead of processes")
	fs.BoolVar(&o.keep, "keep", false, "leave the run's keys in the store")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.StringVar(&o.report, "report", "", "print a Markdown table of a results `file` (JSON lines) and exit")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(errOut, usageText, strings.Join(Names(), ", "))
		fs.SetOutput(errOut)
		fs.PrintDefaults()
		return nil, err
	} else if err != nil {
		return nil, usageErr(errOut, "%v", err)
	}
	if fs.NArg() > 0 {
		return nil, usageErr(errOut, "unexpected argument %q", fs.Arg(0))
	}
	if o.report != "" {
		return o, nil
	}
	if _, ok := workloads[o.name]; !ok {
		return nil, usageErr(errOut, "unknown workload %q", o.name)
	}
	var err error
	if *ctl == "" {
		*ctl = os.Getenv("POCKET_CONTROLLER")
	}
	if o.target, err = pickTarget(*ctl, *nodes, *redis); err != nil {
		return nil, usageErr(errOut, "%v", err)
	}
	if o.target.Kind == KindPocket {
		if o.target.Tier, err = wire.ParseTier(*tier); err != nil {
			return nil, usageErr(errOut, "--tier: %v", err)
		}
	}
	if *size != "" {
		if o.spec.Size, err = units.ParseSize(*size); err != nil {
			return nil, usageErr(errOut, "--size: %v", err)
		}
	}
	if o.spec.Workers < 1 || o.spec.Workers > 4096 {
		return nil, usageErr(errOut, "--workers %d: want 1 to 4096", o.spec.Workers)
	}
	return o, nil
}

// pickTarget resolves the one store flag given; a --controller from the
// environment yields to an explicit --nodes or --target.
func pickTarget(ctl, nodes, redis string) (Target, error) {
	switch {
	case nodes != "" && redis != "":
		return Target{}, errors.New("give one of --controller, --nodes, --target")
	case nodes != "":
		return ParseNodes(nodes)
	case redis != "":
		return ParseRedisURL(redis)
	case ctl != "":
		return Target{Kind: KindPocket, Controller: ctl}, nil
	}
	return Target{}, errors.New("give --controller ADDR, --nodes A,B,C or --target redis://HOST:PORT")
}

// usageErr writes a usage error as the pocket commands do: "pocket: bench
// workload: " and the error, then the usage line (the whole usage is
// --help's). Before, each was followed by the whole usage, 40 lines.
func usageErr(errOut io.Writer, format string, a ...any) error {
	err := fmt.Errorf(format, a...)
	fmt.Fprintf(errOut, "pocket: bench workload: %v\nUsage: %s   (more: pocket bench workload --help)\n", err, usageLine)
	return err
}

// usageLine is the usage's first line, without "usage: ".
var usageLine = strings.TrimPrefix(strings.SplitN(usageText, "\n", 2)[0], "usage: ")

// Main runs `pocket bench workload` and returns the exit status: 0 when
// the output checked out, 1 when it did not or the run failed, 2 for bad
// usage.
func Main(ctx context.Context, args []string, c CLI) int {
	o, err := parseCLI(args, c.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	if o.report != "" {
		return printReport(o.report, c)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	opts := Options{Keep: o.keep, Launcher: Subprocess{Exe: c.Exe, Args: c.WorkerArgs}}
	if o.inproc {
		opts.Launcher = InProcess{}
	}
	if o.progress || isTerminal(c.Stderr) {
		opts.Progress = NewProgress(c.Stderr).Update
	}
	r, err := Run(ctx, o.name, o.target, o.spec, opts)
	if err != nil {
		fmt.Fprintf(c.Stderr, "pocket bench workload: %v\n", err)
		return 1
	}
	if o.json {
		json.NewEncoder(c.Stdout).Encode(r)
	} else {
		WriteText(c.Stdout, r)
	}
	if !r.Verified {
		fmt.Fprintf(c.Stderr, "pocket bench workload: output did not check out: %s\n", r.VerifyError)
		return 1
	}
	return 0
}

func printReport(path string, c CLI) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(c.Stderr, "pocket bench workload: %v\n", err)
		return 1
	}
	defer f.Close()
	rs, err := ReadResults(f)
	if err != nil {
		fmt.Fprintf(c.Stderr, "pocket bench workload: %s: %v\n", path, err)
		return 1
	}
	WriteMarkdown(c.Stdout, rs)
	return 0
}

// ReadResults reads Results as JSON lines (what --json prints, appended).
func ReadResults(r io.Reader) ([]Result, error) {
	var rs []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var x Result
		if err := json.Unmarshal([]byte(line), &x); err != nil {
			return nil, fmt.Errorf("line %d: %w", len(rs)+1, err)
		}
		rs = append(rs, x)
	}
	return rs, sc.Err()
}

// isTerminal reports whether f is a character device (a terminal), as
// far as the standard library can tell without ioctls.
func isTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
