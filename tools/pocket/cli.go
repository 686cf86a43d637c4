package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/pocketstore/pocket/internal/limited"
)

// helpOut is where asked-for help goes: stdout, or a buffer when
// pocket completion reads the commands' flags from their help.
var helpOut io.Writer = os.Stdout

// newFlagSet returns the flag set of the command at path ("put", "job
// register"). Parse it with parseFlags, which prints its help and errors
// and checks the address and file flags the command binds
// (checkAddrFlags, checkFileFlags).
func newFlagSet(path string) *flag.FlagSet {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parseFlags prints the errors and the help
	fs.Usage = func() {}
	addFlagCheck(fs, func() error { return checkAddrFlags(fs) })
	addFlagCheck(fs, func() error { return checkFileFlags(fs) })
	return fs
}

// usageLine is the command's synopsis: "pocket put [flags] JOBID KEY FILE|-".
func usageLine(path string) string {
	a := commands[path].args
	if a == "SUBCOMMAND" { // job, cert: only subcommands
		return "pocket " + path + " SUBCOMMAND [flags] [arguments]"
	}
	if a != "" {
		a = " " + a
	}
	return "pocket " + path + " [flags]" + a
}

// printHelp writes the command's usage line, summary, subcommands and
// flags (only its own) to w.
func printHelp(w io.Writer, path string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n", usageLine(path))
	if s := commands[path].summary; s != "" {
		fmt.Fprintf(w, "\n%s\n", s)
	}
	if subs := subcommands(path); len(subs) > 0 {
		fmt.Fprintln(w, "\nSubcommands:")
		for _, sub := range subs {
			fmt.Fprintf(w, "  %-12s %s\n", strings.TrimPrefix(sub, path+" "), commands[sub].summary)
		}
		fmt.Fprintf(w, "(pocket %s SUBCOMMAND --help shows a subcommand's flags)\n", path)
	}
	if fs == nil {
		return
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	if more := helpMore[path]; more != "" {
		fmt.Fprintf(w, "\n%s", more)
	}
}

// helpMore is what a command's help says after its flags: how to read its
// output, its exit statuses. Commands add theirs in their init functions.
var helpMore = map[string]string{}

// parseFlags parses args, whose flags may come before, between or after
// the positional arguments, and checks that there are minPos to maxPos
// positional ones (maxPos < 0: any number). When ok is false the command
// returns code: 0 after -h or --help (the help on stdout), 2 after a usage
// error (on stderr, with the usage line).
func parseFlags(fs *flag.FlagSet, args []string, minPos, maxPos int) (pos []string, code int, ok bool) {
	path := fs.Name()
	checks := flagChecksOf(fs)
	pos, err := ctlParse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(helpOut, path, fs)
		return nil, 0, false
	}
	if err == nil && (len(pos) < minPos || (maxPos >= 0 && len(pos) > maxPos)) {
		err = countError(commands[path].args, len(pos), minPos, maxPos)
	}
	for _, check := range checks {
		if err == nil {
			err = check()
		}
	}
	if err != nil {
		return nil, usageError(path, err), false
	}
	return pos, 0, true
}

// flagChecks are checks of flag values, added by newFlagSet (the address
// flags) and by the flag groups a command binds (addFlagCheck), and run by
// parseFlags in the order added: a failure is a usage error.
var flagChecks struct {
	sync.Mutex
	m map[*flag.FlagSet][]func() error
}

// addFlagCheck has parseFlags run check on fs's values after parsing.
func addFlagCheck(fs *flag.FlagSet, check func() error) {
	flagChecks.Lock()
	defer flagChecks.Unlock()
	if flagChecks.m == nil {
		flagChecks.m = map[*flag.FlagSet][]func() error{}
	}
	flagChecks.m[fs] = append(flagChecks.m[fs], check)
}

// flagChecksOf returns fs's checks and forgets them (a flag set is parsed
// once).
func flagChecksOf(fs *flag.FlagSet) []func() error {
	flagChecks.Lock()
	defer flagChecks.Unlock()
	cs := flagChecks.m[fs]
	delete(flagChecks.m, fs)
	return cs
}

// usageError prints err as a usage error of the command at path, with its
// usage line, and returns exit status 2.
func usageError(path string, err error) int {
	fmt.Fprintf(os.Stderr, "%s\nUsage: %s   (more: pocket %s --help)\n", errorLine(path, err.Error()), usageLine(path), path)
	return 2
}

// countError says how many positional arguments a command wants.
func countError(names string, got, minPos, maxPos int) error {
	want := fmt.Sprintf("%d to %d arguments", minPos, maxPos)
	switch {
	case maxPos < 0:
		want = fmt.Sprintf("at least %d argument(s)", minPos)
	case minPos == maxPos && maxPos == 0:
		want = "no arguments"
	case minPos == maxPos:
		want = fmt.Sprintf("%d argument(s)", minPos)
	}
	if names != "" {
		want += " (" + names + ")"
	}
	return fmt.Errorf("want %s, got %d", want, got)
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// helpRequested reports whether a flag before any "--" asks for help.
func helpRequested(args []string) bool {
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

// parentCommand handles a command made only of subcommands (job, cert)
// when args name none of them: help (exit 0) or a usage error (exit 2).
// It returns ok false when args[0] is one of its subcommands.
func parentCommand(path string, args []string) (code int, ok bool) {
	if len(args) > 0 {
		if _, known := commands[path+" "+args[0]]; known {
			return 0, false
		}
		if isHelp(args[0]) {
			printHelp(helpOut, path, nil)
			return 0, true
		}
		return usageError(path, fmt.Errorf("unknown subcommand %q%s", args[0], didYouMean(args[0], subNames(path)))), true
	}
	return usageError(path, errors.New("want a subcommand: "+strings.Join(subNames(path), " or "))), true
}

func subNames(path string) []string {
	var out []string
	for _, s := range subcommands(path) {
		out = append(out, strings.TrimPrefix(s, path+" "))
	}
	return out
}

// externalHelp prints the help of a command whose flags live in a library
// package (perf/hw, perf/workload, perf/micro): the usage line, then the
// package's own help, which main asks for with --help only, so that
// nothing runs. It returns the exit status 0.
func externalHelp(path string, libMain func(args []string, stdout, stderr io.Writer) int) int {
	fmt.Fprintf(helpOut, "Usage: %s\n\n%s\n\n", usageLine(path), commands[path].summary)
	libMain([]string{"--help"}, helpOut, helpOut)
	return 0
}

// runVersion is `pocket version`: the module version and VCS revision
// this binary was built from, and the Go version.
func runVersion(args []string) int {
	fs := newFlagSet("version")
	if _, code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	fmt.Print(versionText())
	return 0
}

func versionText() string {
	mod, ver, rev, when, dirty := "github.com/pocketstore/pocket", "(devel)", "unknown", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path != "" {
			mod = bi.Main.Path
		}
		if bi.Main.Version != "" {
			ver = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = " " + s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = " (modified)"
				}
			}
		}
	}
	return fmt.Sprintf("pocket %s\nmodule %s\nrevision %s%s%s\n%s %s/%s\n", ver, mod, rev, when, dirty, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// checkReadable refuses a file a flag names that the command opens only
// later, when it is not a regular file this process can open for reading
// (limited.Open: a named pipe is refused, not waited on).
func checkReadable(path string) error {
	f, err := limited.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// fileFlags are the flags that name a file or directory the command reads
// or creates only later, by flag name: a name means the same kind of file
// on every command that has it, as in addrFlags, and each check is given
// the command's path and the value. newFlagSet has parseFlags run them
// (checkFileFlags), so a file the command could not use is a usage error
// naming the flag before anything starts, not a failure once it has.
var fileFlags = map[string]func(path, v string) error{
	"secret-file": func(path, v string) error { return checkSecretFileFlag(v, secretCreators[path]) },
	"token-file":  func(_, v string) error { return checkTokenFileFlag(v) },
	"data-dir":    func(_, v string) error { return checkDataDirFlag(v) },
}

// checkFileFlags checks the file flags of fs that were given a value. A
// flag that keeps no value to read (flag.Func) is left to its command.
func checkFileFlags(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if check, ok := fileFlags[f.Name]; ok && err == nil && f.Value.String() != "" {
			err = check(fs.Name(), f.Value.String())
		}
	})
	return err
}

// checkDataDirFlag refuses a --data-dir the command could not keep its
// files in: one that exists and is no directory, or a missing one whose
// nearest existing parent is no directory (the commands create a missing
// one, and the directories above it, as mkdir -p does).
func checkDataDirFlag(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		switch {
		case err == nil && fi.IsDir():
			return nil
		case err == nil && d == dir:
			return fmt.Errorf("--data-dir %q: not a directory: give a directory, or a path to create one at", dir)
		case err == nil:
			return fmt.Errorf("--data-dir %q: %s is not a directory, so none can be created below it", dir, d)
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("--data-dir %q: %w", dir, err)
		case filepath.Dir(d) == d:
			return nil
		}
	}
}

// checkDirOf refuses a file a flag names that the command creates later,
// when the directory to create it in does not exist.
func checkDirOf(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return fmt.Errorf("no directory %s to create it in: %w", dir, err)
	}
	return nil
}
