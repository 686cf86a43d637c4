package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestErrorLine(t *testing.T) {
	for _, c := range []struct{ cmd, msg, want string }{
		{"put", `pocket: put "k": pocket: bad name`, `pocket: put: "k": bad name`},
		{"put", `put: pocket: put "greetings/hello": dial tcp: refused`, `pocket: put: "greetings/hello": dial tcp: refused`},
		{"bench", "--token: token: token: not hex", "pocket: bench: --token: token: not hex"},
		{"up", "up: 2 of 3 nodes registered: context canceled", "pocket: up: 2 of 3 nodes registered: context canceled"},
		{"job register", "job register: --capacity: bad size", "pocket: job register: --capacity: bad size"},
		{"job register", `pocket: register job "x": refused`, `pocket: job register: register job "x": refused`},
		{"status", "pocket: status: pocket", "pocket: status: failed"},
		{"get", `pocket: get "nokey": wire: not found: key not found`, `pocket: get: "nokey": key not found`},
		{"put", `pocket: put "big": wire: no space: tier full; nothing stored was changed`, `pocket: put: "big": no space: tier full; nothing stored was changed`},
		{"get", `open job "j": metaclient: get-map 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused`,
			`pocket: get: open job "j": metaclient: get-map 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused`},
	} {
		if got := errorLine(c.cmd, c.msg); got != c.want {
			t.Errorf("errorLine(%q, %q)\n got %q\nwant %q", c.cmd, c.msg, got, c.want)
		}
	}
}

func TestCheckKey(t *testing.T) {
	if err := checkKey(strings.Repeat("k", maxKeyLen)); err != nil {
		t.Fatalf("a key at the limit: %v", err)
	}
	err := checkKey(strings.Repeat("k", 5000))
	if err == nil {
		t.Fatal("a 5000-byte key was taken")
	}
	if msg := err.Error(); len(msg) > 200 || !strings.Contains(msg, "5000 bytes") || !strings.Contains(msg, "984-byte limit") {
		t.Fatalf("error %q: want the length and the limit, not the whole key", msg)
	}
}

func TestCountError(t *testing.T) {
	for _, c := range []struct {
		min, max int
		want     string
	}{
		{3, 3, "want 3 argument(s) (A), got 0"},
		{0, 0, "want no arguments (A), got 0"},
		{1, 2, "want 1 to 2 arguments (A), got 0"},
		{1, -1, "want at least 1 argument(s) (A), got 0"},
	} {
		if got := countError("A", 0, c.min, c.max).Error(); got != c.want {
			t.Errorf("countError(%d, %d) = %q, want %q", c.min, c.max, got, c.want)
		}
	}
}

// TestHelpEverywhere walks the command table and runs the built binary's
// help for every command and subcommand, in each form (pocket CMD [SUB]
// --help, -h, pocket help CMD [SUB]): exit 0, the command's own usage line
// on stdout, nothing on stderr.
func TestHelpEverywhere(t *testing.T) {
	bin := buildPocketBinary(t)
	paths := make([]string, 0, len(commands))
	for p := range commands {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	type run struct {
		args []string
		want string
	}
	runs := []run{{[]string{"--help"}, "Usage: pocket COMMAND"}, {[]string{"-h"}, "Usage: pocket COMMAND"},
		{[]string{"help"}, "Usage: pocket COMMAND"}, {[]string{"version"}, "go1."}, {[]string{"--version"}, "go1."}}
	for _, p := range paths {
		words := strings.Fields(p)
		want := "Usage: " + usageLine(p)
		runs = append(runs, run{append(words, "--help"), want}, run{append(words, "-h"), want},
			run{append([]string{"help"}, words...), want})
	}
	for _, r := range runs {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, r.args...)
		cmd.Env = cleanEnv()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		name := "pocket " + strings.Join(r.args, " ")
		if err != nil {
			t.Errorf("%s: %v\nstderr: %s", name, err, stderr.String())
			continue
		}
		if stderr.Len() > 0 {
			t.Errorf("%s: wrote to stderr: %s", name, stderr.String())
		}
		if !strings.Contains(stdout.String(), r.want) {
			t.Errorf("%s: stdout has no %q:\n%s", name, r.want, stdout.String())
		}
	}
}

// TestHelpShowsOnlyOwnFlags: put's help lists put's flags, not get's or
// rm's, and its usage line names its arguments.
func TestHelpShowsOnlyOwnFlags(t *testing.T) {
	fs := newDataCmd("put").fs
	var b bytes.Buffer
	printHelp(&b, "put", fs)
	out := b.String()
	if !strings.Contains(out, "pocket put [flags] JOBID KEY FILE|-") || !strings.Contains(out, "-persist") {
		t.Fatalf("put help:\n%s", out)
	}
	for _, other := range []string{"-delete-after-read", "-all"} {
		if strings.Contains(out, other+"\n") || strings.Contains(out, other+" ") {
			t.Errorf("put help lists %s:\n%s", other, out)
		}
	}
}

// TestUsageErrors: argument-count errors exit 2 with one prefix and the
// usage line.
func TestUsageErrors(t *testing.T) {
	bin := buildPocketBinary(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "j"}, "Usage: pocket put [flags] JOBID KEY FILE|-"},
		{[]string{"job"}, "Usage: pocket job SUBCOMMAND"},
		{[]string{"node", "drain"}, "Usage: pocket node drain [flags] ADDR"},
		{[]string{"put", "j", strings.Repeat("k", 5000), "f"}, "984-byte limit"},
	} {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, c.args...)
		cmd.Env = cleanEnv()
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err == nil {
			t.Errorf("pocket %s: succeeded", c.args[0])
		}
		msg := stderr.String()
		if !strings.Contains(msg, c.want) || strings.Count(msg, "pocket: ") != 1 || len(msg) > 400 {
			t.Errorf("pocket %s: stderr %q, want one %q prefix and %q", c.args[0], msg, "pocket: ", c.want)
		}
	}
}

// TestBadFlagValuesAreUsageErrors: a flag value a command cannot run with
// (a size that does not parse or is negative, a limit, price, band or
// count out of its range) exits 2 with the usage line, before anything
// starts, whichever command and whichever kind of flag. Before, sizes and
// ranges checked after parsing exited 1 (`node --dram abc`), some after
// starting a controller (`up --autoscale --scale-low 0.9`), and some were
// taken (`up --node-mbps -5`, `up --scale-high 2`, `--cooldown -1s`).
func TestBadFlagValuesAreUsageErrors(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"node", "--max-conns", "abc"},
		{"node", "--dram", "abc"},
		{"node", "--dram", "-1GiB"},
		{"node", "--nvme", dir + "/tier"},
		{"node", "--nvme", dir + "/tier:lots"},
		{"node", "--nvme-staging", "-5"},
		{"node", "--nvme-index", "lots"},
		{"node", "--max-unread", "-1"},
		{"node", "--loops", "-1"},
		{"up", "--dram", "abc"},
		{"up", "--node-mbps", "-5"},
		{"up", "--scale-high", "2"},
		{"up", "--autoscale", "--scale-low", "0.9"},
		{"up", "--autoscale", "--cooldown", "-1s"},
		{"up", "--node-max-unread", "-1"},
		{"up", "--price-dram-gib-hour", "-1"},
		{"up", "--nodes", "0"},
		{"up", "--max-conns", "-1"},
		{"node", "--dram-mbps", "-5"},
		{"controller", "--heartbeat", "0"},
		{"trace", "--min-nodes", "0"},
		{"trace", "--dram", "junk"},
		{"job", "register", "j", "--insecure", "--tls-dir", "certs"},
		{"status", "--insecure", "--tls-dir", "certs"},
		{"controller", "--node-dram", "abc"},
		{"controller", "--scale-low", "0"},
		{"controller", "--max-jobs", "-1"},
		{"trace", "--timescale", "0"},
		{"job", "register", "--capacity", "abc", "j"},
		{"job", "register", "--capacity", "-1GiB", "j"},
		{"job", "register", "--peak-mbps", "-1", "j"},
		{"job", "register", "bad name!"}, // before: the controller's refusal, exit 1
		{"job", "profile", "--controller", "127.0.0.1:1", "--data-dir", dir, "j"},
		{"job", "profile", ""}, // before: exit 1, after trying the controller
		{"put", "j-1", "k", "-", "--chunk-size", "0"},
		{"put", "j-1", "k", "-", "--chunk-size", "65MiB"},
		{"put", "j-1", "k", "-", "--chunk-size", "lots"},
		{"up", "--nvme-staging", "8MiB"}, // no --nvme
		{"up", "--nvme", "64MiB", "--nvme-staging", "-1"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, append(args, "--listen", "127.0.0.1:0")...)
		if args[0] == "job" || args[0] == "trace" || args[0] == "status" || args[0] == "put" {
			cmd = exec.CommandContext(ctx, bin, args...) // no --listen
		}
		cmd.Env = append(cleanEnv(), "HOME="+dir)
		cmd.Dir = dir
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		msg := stderr.String()
		flagName := args[len(args)-2]
		switch {
		case args[0] == "job" && args[1] == "profile" && args[2] == "":
			flagName = "job name"
		case args[0] == "job" && args[1] == "profile":
			flagName = "--controller"
		}
		if code != 2 || !strings.Contains(msg, strings.TrimLeft(flagName, "-")) || !strings.Contains(msg, "Usage: pocket ") || strings.Count(msg, "pocket: ") != 1 {
			t.Errorf("pocket %s: exit %d (%v), stderr %q; want exit 2 naming %s, with the usage line", strings.Join(args, " "), code, err, msg, flagName)
		}
	}
}
