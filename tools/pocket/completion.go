package main

// `pocket completion bash|zsh|fish` prints a shell completion script. The
// script is generated from the command table (register, registerSub) and
// from each command's own --help, read in this process: the flags it
// completes are the ones the help lists, so the two cannot drift apart.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

func init() {
	register("completion", "bash|zsh|fish", "print a shell completion script for the commands, subcommands and flags", runCompletion)
}

// completionShells are the shells pocket completion writes scripts for.
var completionShells = map[string]func(io.Writer, []compSpec){
	"bash": writeBash,
	"zsh":  writeZsh,
	"fish": writeFish,
}

func runCompletion(args []string) int {
	fs := newFlagSet("completion")
	pos, code, ok := parseFlags(fs, args, 1, 1)
	if !ok {
		return code
	}
	write, known := completionShells[pos[0]]
	if !known {
		return usageError("completion", fmt.Errorf("no completion for shell %q: want bash, zsh or fish", pos[0]))
	}
	specs, err := completionSpecs()
	if err != nil {
		return fail("completion: %v", err)
	}
	write(os.Stdout, specs)
	return 0
}

// compSpec is what completes after one command path ("" for pocket itself,
// "job", "job register"): its subcommands, its flags, and the fixed words
// its positional argument may be.
type compSpec struct {
	path    string
	subs    []compWord
	flags   []compFlag
	choices []string
}

// compWord is a subcommand and its summary.
type compWord struct{ name, summary string }

// compFlag is a flag (its name without dashes), whether it takes a value,
// and the first line of its help.
type compFlag struct {
	name    string
	value   bool
	summary string
}

// completionSpecs builds the spec of pocket itself and of every listed
// command and subcommand, in path order.
func completionSpecs() ([]compSpec, error) {
	root := compSpec{flags: []compFlag{
		{name: "help", summary: "show the commands"},
		{name: "version", summary: "print the version"},
	}}
	root.subs = subWords("")
	specs := []compSpec{root}
	for _, top := range subcommands("") {
		paths := append([]string{top}, subcommands(top)...)
		for _, p := range paths {
			s, err := commandSpec(p)
			if err != nil {
				return nil, err
			}
			specs = append(specs, s)
		}
	}
	return specs, nil
}

func subWords(path string) []compWord {
	var out []compWord
	for _, sub := range subcommands(path) {
		out = append(out, compWord{name: strings.TrimPrefix(sub, path+" "), summary: commands[sub].summary})
	}
	return out
}

// commandSpec reads the flags of the command at path from its help.
func commandSpec(path string) (compSpec, error) {
	help, err := commandHelp(path)
	if err != nil {
		return compSpec{}, err
	}
	s := compSpec{path: path, subs: subWords(path), choices: argChoices(commands[path].args)}
	for _, f := range parseHelpFlags(help) {
		if _, removed := removedFlags[f.name]; !removed { // a library's --token: main refuses it
			s.flags = append(s.flags, f)
		}
	}
	if path == "help" {
		s.subs = subWords("") // pocket help COMMAND
	}
	if !hasFlag(s.flags, "help") {
		s.flags = append(s.flags, compFlag{name: "help", summary: "show this command's usage and flags"})
	}
	return s, nil
}

func hasFlag(fs []compFlag, name string) bool {
	for _, f := range fs {
		if f.name == name {
			return true
		}
	}
	return false
}

// commandHelp runs `pocket PATH --help` in this process and returns what
// it printed.
func commandHelp(path string) (string, error) {
	words := strings.Fields(path)
	cmd := commands[words[0]]
	if cmd.run == nil {
		return "", fmt.Errorf("command %q has nothing that runs it", words[0])
	}
	var b bytes.Buffer
	old := helpOut
	helpOut = &b
	code := cmd.run(append(words[1:len(words):len(words)], "--help"))
	helpOut = old
	if code != 0 {
		return "", fmt.Errorf("pocket %s --help: exit status %d", path, code)
	}
	return b.String(), nil
}

// helpFlagLine is a flag's first line in flag.PrintDefaults: "  -name",
// "  -name TYPE", or for a one-letter flag "  -n\tusage".
var helpFlagLine = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9._-]*)(?: ([^\t]+))?(?:\t(.*))?$`)

// parseHelpFlags returns the flags flag.PrintDefaults listed in help. A
// flag takes a value when PrintDefaults names one (only bool flags have
// none).
func parseHelpFlags(help string) []compFlag {
	var out []compFlag
	lines := strings.Split(help, "\n")
	for i, l := range lines {
		m := helpFlagLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		f := compFlag{name: m[1], value: m[2] != "", summary: m[3]}
		if f.summary == "" && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "    \t") {
			f.summary = strings.TrimPrefix(lines[i+1], "    \t")
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// argChoices returns the fixed words of a positional argument named like
// "bash|zsh|fish" (lower-case alternatives), else nil.
func argChoices(args string) []string {
	if !regexp.MustCompile(`^[a-z]+(\|[a-z]+)+$`).MatchString(args) {
		return nil
	}
	return strings.Split(args, "|")
}

// names returns the subcommand names of s.
func (s compSpec) names() []string {
	out := make([]string, len(s.subs))
	for i, w := range s.subs {
		out[i] = w.name
	}
	return out
}

// flagNames returns s's flags as --name, all of them or (valued) only
// those that take a value.
func (s compSpec) flagNames(valued bool) []string {
	var out []string
	for _, f := range s.flags {
		if !valued || f.value {
			out = append(out, "--"+f.name)
		}
	}
	return out
}
