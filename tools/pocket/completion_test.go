package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// listedPaths are the command paths help lists: every command and
// subcommand but the hidden ones.
func listedPaths() []string {
	var out []string
	for _, top := range subcommands("") {
		out = append(out, top)
		out = append(out, subcommands(top)...)
	}
	return out
}

func specOf(t *testing.T, specs []compSpec, path string) compSpec {
	t.Helper()
	for _, s := range specs {
		if s.path == path {
			return s
		}
	}
	t.Fatalf("no completion spec for %q", path)
	return compSpec{}
}

func flagOf(s compSpec, name string) (compFlag, bool) {
	for _, f := range s.flags {
		if f.name == name {
			return f, true
		}
	}
	return compFlag{}, false
}

// TestCompletionSpecsFollowTheCommandTable: one spec per listed command
// path, with the subcommands of the table and the flags of the command's
// own help (which takes a value and which does not), without removed
// credential flags or hidden commands.
func TestCompletionSpecsFollowTheCommandTable(t *testing.T) {
	specs, err := completionSpecs()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range specs[1:] {
		got = append(got, s.path)
	}
	if want := listedPaths(); !slices.Equal(got, want) {
		t.Fatalf("spec paths %q, want the listed commands %q", got, want)
	}
	root := specOf(t, specs, "")
	for _, must := range []string{"job", "put", "help", "version", "completion", "status"} {
		if !slices.Contains(root.names(), must) {
			t.Errorf("root completes %q, missing %s", root.names(), must)
		}
	}
	if slices.Contains(root.names(), "worker") {
		t.Error("the hidden worker command is completed")
	}
	if subs := specOf(t, specs, "job").names(); !slices.Equal(subs, []string{"credential", "deregister", "end", "profile", "register", "show"}) {
		t.Errorf("job subcommands %q", subs)
	}
	reg := specOf(t, specs, "job register")
	for name, value := range map[string]bool{"capacity": true, "peak-mbps": true, "controller": true, "latency-sensitive": false, "strict": false, "json": false} {
		f, ok := flagOf(reg, name)
		if !ok || f.value != value || f.summary == "" {
			t.Errorf("job register flag %s: %+v (found %v), want value %v and a summary", name, f, ok, value)
		}
	}
	bench := specOf(t, specs, "bench")
	if _, ok := flagOf(bench, "token"); ok {
		t.Error("bench completes --token, which main refuses")
	}
	for _, name := range []string{"addr", "token-file", "duration"} {
		if f, ok := flagOf(bench, name); !ok || !f.value {
			t.Errorf("bench flag %s: %+v (found %v)", name, f, ok)
		}
	}
	if _, ok := flagOf(specOf(t, specs, "bench workload"), "workers"); !ok {
		t.Error("bench workload's flags (perf/workload's help) are not completed")
	}
	if c := specOf(t, specs, "completion").choices; !slices.Equal(c, []string{"bash", "zsh", "fish"}) {
		t.Errorf("completion argument words %q", c)
	}
	for _, s := range specs {
		if _, ok := flagOf(s, "help"); !ok {
			t.Errorf("%q does not complete --help", s.path)
		}
	}
}

func TestParseHelpFlags(t *testing.T) {
	help := "Usage: x\n\nFlags:\n  -addr HOST:PORT\n    \tnode address\n  -json\n    \tprint JSON\n  -v\tverbose\n" +
		"  -n int\n    \tcount (default 3)\nnot a flag: -x\n"
	want := []compFlag{{"addr", true, "node address"}, {"json", false, "print JSON"}, {"n", true, "count (default 3)"}, {"v", false, "verbose"}}
	if got := parseHelpFlags(help); !slices.Equal(got, want) {
		t.Fatalf("parseHelpFlags = %+v, want %+v", got, want)
	}
}

// TestCompletionScripts prints each shell's script with the built binary
// and checks that it names every command path, subcommand and flag, that
// the shell finds it syntactically valid (zsh and fish when installed),
// and, in bash, what it completes after a few command lines.
func TestCompletionScripts(t *testing.T) {
	bin := buildPocketBinary(t)
	specs, err := completionSpecs()
	if err != nil {
		t.Fatal(err)
	}
	check := map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}}
	dir := t.TempDir()
	for shell, syntax := range check {
		out, errOut, code := pocketRun(t, bin, cleanEnv(), "", "completion", shell)
		if code != 0 || errOut != "" {
			t.Fatalf("completion %s: exit %d: %s", shell, code, errOut)
		}
		for _, s := range specs {
			words := s.names()
			for _, f := range s.flags {
				if shell == "fish" {
					words = append(words, " -l "+f.name+" ")
				} else {
					words = append(words, "--"+f.name)
				}
			}
			for _, w := range words {
				if !strings.Contains(out, w) {
					t.Errorf("%s script lacks %q of %q", shell, w, s.path)
				}
			}
			if s.path != "" && !strings.Contains(out, "'"+s.path+"'") && !strings.Contains(out, `"`+s.path+`"`) &&
				!strings.Contains(out, `\'`+s.path+`\'`) {
				t.Errorf("%s script has no case for %q", shell, s.path)
			}
		}
		file := filepath.Join(dir, "pocket."+shell)
		if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := exec.LookPath(syntax[0]); err != nil {
			t.Logf("%s not installed: syntax not checked", syntax[0])
			continue
		}
		if b, err := exec.Command(syntax[0], append(syntax[1:], file)...).CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", strings.Join(syntax, " "), shell, err, b)
		}
	}
	bashCompletes(t, filepath.Join(dir, "pocket.bash"))
}

// bashCompletes runs the bash script's completion function on command
// lines and checks the words it offers.
func bashCompletes(t *testing.T, script string) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	cases := []struct{ line, want string }{
		{"pocket j", "job"},
		{"pocket job ", "credential deregister end profile register show"},
		{"pocket job show --j", "--json"},
		{"pocket job register --c", "--capacity --controller"},
		{"pocket job register --controller ", ""}, // its value: file names
		{"pocket job register --controller h:1 --la", "--lambdas --latency-sensitive"},
		{"pocket help job ", "credential deregister end profile register show"},
		{"pocket help ve", "version"},
		{"pocket completion ", "bash zsh fish"},
		{"pocket node d", "drain"},
		{"pocket bench --duration 5s w", "workload"},
		{"pocket put JOB KEY ", ""},
	}
	var prog bytes.Buffer
	prog.WriteString("source " + script + "\n")
	for _, c := range cases {
		// COMP_WORDS as bash splits the line; a trailing space starts an empty word.
		words := strings.Fields(c.line)
		if strings.HasSuffix(c.line, " ") {
			words = append(words, "")
		}
		prog.WriteString("COMP_WORDS=(")
		for _, w := range words {
			prog.WriteString(zshQuote(w) + " ")
		}
		prog.WriteString(")\nCOMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); _pocket; echo \"${COMPREPLY[*]}\"\n")
	}
	out, err := exec.Command("bash", "-c", prog.String()).Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(cases) {
		t.Fatalf("bash printed %d lines for %d cases:\n%s", len(got), len(cases), out)
	}
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("bash completes %q with %q, want %q", c.line, got[i], c.want)
		}
	}
}
