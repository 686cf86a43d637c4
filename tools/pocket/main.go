// Command pocket is the single binary of the project: storage node, controller,
// local cluster, SDK front end, benchmarks and hardware evaluation, as
// subcommands. Each subcommand lives in its own file and registers itself in
// init, so the logic stays in the library packages and this package stays thin.
//
// Help (-h, --help, pocket help CMD [SUB]) goes to stdout and exits 0; usage
// errors go to stderr with the command's usage line and exit 2; a failed
// command prints one line "pocket: CMD: message" (see errorLine) and exits 1.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
)

// command is one subcommand, or (run nil) a subcommand its parent runs,
// registered by its path ("job register") for help and usage lines.
type command struct {
	args    string // positional arguments of the usage line, e.g. "JOBID KEY FILE|-"
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

// register adds a subcommand; called from init functions in this package.
// args names its positional arguments for the usage line.
func register(name, args, summary string, run func(args []string) int) {
	if _, dup := commands[name]; dup {
		panic("pocket: duplicate subcommand " + name)
	}
	commands[name] = command{args: args, summary: summary, run: run}
}

// registerSub describes a subcommand (path "job register") that its parent
// runs: its usage line and its line in the parent's help.
func registerSub(path, args, summary string) {
	register(path, args, summary, nil)
}

// hidden commands are not listed in the help.
func hidden(name string) bool { return name == "worker" }

// subcommands returns the paths of the subcommands of path ("" for the
// top-level commands), sorted.
func subcommands(path string) []string {
	var out []string
	for n := range commands {
		parent, _, ok := strings.Cut(n, " ")
		if path == "" && !ok && !hidden(n) {
			out = append(out, n)
		} else if path != "" && ok && parent == path {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func init() {
	register("help", "[COMMAND [SUBCOMMAND]]", "show a command's usage and flags (also: pocket COMMAND --help)", runHelp)
	register("version", "", "print the module version, VCS revision and Go version", runVersion)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: pocket COMMAND [flags] [arguments]\n       pocket help COMMAND [SUBCOMMAND]   (or pocket COMMAND --help)\n\nCommands:")
	for _, n := range subcommands("") {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nsecrets never go on the command line: the cluster secret comes from $POCKET_SECRET or\n"+
		"--secret-file FILE, a job's token from $POCKET_TOKEN (some commands also take --token-file FILE);\n"+
		"a file must be mode 0600\n\n"+
		"the control plane runs over mutual TLS: pocket up creates the cluster CA and certificates in DATA/tls\n"+
		"(--data-dir, default $"+envDataDir+" or ~/.pocket) and prints export "+envTLSDir+"=DIR; commands that talk to\n"+
		"the controller take --tls-dir DIR (default $"+envTLSDir+"); pocket cert issue makes certificates for other hosts;\n"+
		"--insecure (plain TCP) is for tests and benchmarks\n\n"+
		"shell completion: source <(pocket completion bash)   (or zsh; fish: pocket completion fish | source)")
}

func main() {
	os.Exit(runMain(os.Args[1:]))
}

// runMain dispatches the command line (without the program name) and
// returns the exit status.
func runMain(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		return runHelp(args[1:])
	case "-version", "--version":
		return runVersion(args[1:])
	}
	cmd, ok := commands[args[0]]
	if !ok || cmd.run == nil {
		fmt.Fprintf(os.Stderr, "pocket: unknown command %q%s; pocket help lists the commands\n", args[0], didYouMean(args[0], topNames()))
		return 2
	}
	if err := refuseRemovedFlags(args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, errorLine(args[0], err.Error()))
		return 2
	}
	stop := startProfile()
	code := cmd.run(args[1:])
	stop()
	return code
}

// runHelp is `pocket help [COMMAND [SUBCOMMAND]]`: the command's own
// --help.
func runHelp(args []string) int {
	if len(args) == 0 {
		usage(helpOut)
		return 0
	}
	if isHelp(args[0]) && len(args) == 1 { // pocket help --help, pocket help help
		printHelp(helpOut, "help", nil)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok || cmd.run == nil {
		fmt.Fprintf(os.Stderr, "pocket: help: unknown command %q%s; pocket help lists the commands\n", args[0], didYouMean(args[0], topNames()))
		return 2
	}
	return cmd.run(append(args[1:len(args):len(args)], "--help"))
}

// startProfile writes a CPU profile of the whole command to the file named
// by $POCKET_CPUPROFILE, for finding where a benchmark's time goes.
func startProfile() func() {
	path := os.Getenv("POCKET_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pocket: cpu profile: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "pocket: cpu profile: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// fail prints a message for a failed command and returns exit status 1.
// The format starts with the command's path and ": " ("put: %v").
func fail(format string, a ...any) int {
	cmd, msg, _ := strings.Cut(fmt.Sprintf(format, a...), ": ")
	fmt.Fprintln(os.Stderr, errorLine(cmd, msg))
	return 1
}

// warn prints a line on stderr for a command that goes on,
// "pocket: CMD: message" as errorLine writes it.
func warn(cmd, format string, a ...any) {
	fmt.Fprintln(os.Stderr, errorLine(cmd, fmt.Sprintf(format, a...)))
}

// errorLine is the one line a failed command prints, "pocket: CMD: message".
// The SDK, the wire and this command each put their prefix on an error
// ("pocket: put \"k\": pocket: bad name"): errorLine says the program and
// the command once, drops "pocket", "wire" (the error registry's package)
// and the command's name wherever they appear as a prefix of their own,
// says twice-repeated prefixes ("token: token: not hex") once, and drops a
// code's name that the next part says again ("not found: key not found").
func errorLine(cmd, msg string) string {
	op := cmd[strings.LastIndexByte(cmd, ' ')+1:] // "register" of "job register"
	var keep []string
	last := cmd
	segs := strings.Split(msg, ": ")
	for i, seg := range segs {
		if seg == "pocket" || seg == "wire" || seg == cmd || seg == op || seg == "pocket "+cmd || seg == last {
			continue
		}
		if i+1 < len(segs) && seg != "" && strings.HasSuffix(segs[i+1], " "+seg) {
			continue
		}
		if len(keep) == 0 && strings.HasPrefix(seg, op+" \"") {
			seg = seg[len(op)+1:] // the SDK's `put "KEY"`: `"KEY"`
		}
		keep = append(keep, seg)
		last = seg
	}
	if len(keep) == 0 {
		return "pocket: " + cmd + ": failed"
	}
	return "pocket: " + cmd + ": " + strings.Join(keep, ": ")
}
