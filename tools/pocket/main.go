// Command pocket is the single binary of the project: storage node, controller,
// local cluster, SDK front end, benchmarks and hardware evaluation, as
// subcommands. Each subcommand lives in its own file and registers itself in
// init, so the logic stays in the library packages and this package stays thin.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"sort"
)

// command is one subcommand: run gets the arguments after the subcommand name
// and returns the process exit status.
type command struct {
	summary string
	run     func(args []string) int
}

var commands = map[string]command{}

// register adds a subcommand; called from init functions in this package.
func register(name, summary string, run func(args []string) int) {
	if _, dup := commands[name]; dup {
		panic("pocket: duplicate subcommand " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pocket <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nsecrets never go on the command line: the cluster secret comes from $POCKET_SECRET or\n"+
		"--secret-file FILE, a job's token from $POCKET_TOKEN (some commands also take --token-file FILE);\n"+
		"a file must be mode 0600\n\n"+
		"the control plane runs over mutual TLS: pocket up creates the cluster CA and certificates in DATA/tls\n"+
		"(--data-dir, default $"+envDataDir+" or ~/.pocket) and prints export "+envTLSDir+"=DIR; commands that talk to\n"+
		"the controller take --tls-dir DIR (default $"+envTLSDir+"); pocket cert issue makes certificates for other hosts;\n"+
		"--insecure (plain TCP) is for tests and benchmarks")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		if os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help" {
			usage()
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "pocket: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := refuseRemovedFlags(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "pocket %s: %v\n", os.Args[1], err)
		os.Exit(2)
	}
	stop := startProfile()
	code := cmd.run(os.Args[2:])
	stop()
	os.Exit(code)
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
func fail(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "pocket: "+format+"\n", a...)
	return 1
}
