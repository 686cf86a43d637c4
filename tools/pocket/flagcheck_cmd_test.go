package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAddressAndFileFlagsAreUsageErrors: an address flag (--listen,
// --metrics, --advertise, --controller, or $POCKET_CONTROLLER in its
// stead) that is no HOST:PORT, a file a flag names that the command would
// open only later (--secret-file, --profile, --nvme's path), a node with
// no tier, and the range checks, each exit 2 before anything starts, with
// the usage line and a message that leads with the flag (or variable) and
// its bad value, and names no other flag for it. Before, `node --controller
// junk` retried for ever, `node --profile missing` served without it,
// `node --listen junk` and `node --dram 0` exited 1 naming no flag, and
// `node --loops -2` also named --max-conns.
func TestAddressAndFileFlagsAreUsageErrors(t *testing.T) {
	bin, dir, secret := usageFixture(t)
	badProfile := filepath.Join(dir, "profile.json")
	if err := os.WriteFile(badProfile, []byte(`{"version": 0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	withSecret := "POCKET_SECRET=" + strings.Repeat("cd", 32)
	ctlJunk := "POCKET_CONTROLLER=junk"
	node := []string{"node", "--listen", "127.0.0.1:0", "--dram", "16MiB"}
	up := []string{"up", "--insecure", "--listen", "127.0.0.1:0", "--nodes", "1", "--dram", "16MiB"}
	ctl := []string{"controller", "--insecure", "--listen", "127.0.0.1:0"}
	for _, c := range []usageCase{
		// Addresses.
		{args: []string{"node", "--listen", "junk"}, lead: `--listen "junk"`},
		{args: []string{"node", "--listen", "127.0.0.1:70000"}, lead: `--listen "127.0.0.1:70000"`},
		{args: append(node, "--metrics", "junk"), lead: `--metrics "junk"`},
		{args: append(node, "--advertise", "junk"), lead: `--advertise "junk"`},
		{args: append(node, "--advertise", "127.0.0.1:0"), lead: `--advertise "127.0.0.1:0"`},
		{args: append(node, "--insecure", "--controller", "junk"), env: withSecret, lead: `--controller "junk"`},
		{args: append(node, "--insecure", "--controller", "127.0.0.1:0"), env: withSecret, lead: `--controller "127.0.0.1:0"`},
		{args: append(node, "--insecure", "--controller", "127.0.0.1:1,,127.0.0.1:2"), env: withSecret, lead: `--controller "127.0.0.1:1,,127.0.0.1:2"`},
		{args: node, env: ctlJunk, lead: `$POCKET_CONTROLLER "junk"`, also: "--controller"},
		{args: []string{"up", "--insecure", "--listen", "junk"}, lead: `--listen "junk"`},
		{args: append(up, "--metrics", "junk"), lead: `--metrics "junk"`},
		{args: []string{"controller", "--insecure", "--listen", "junk"}, lead: `--listen "junk"`},
		{args: append(ctl, "--metrics", "junk"), lead: `--metrics "junk"`},
		{args: append(ctl, "--etcd", "127.0.0.1:1", "--secret-file", secret, "--advertise", "junk"), lead: `--advertise "junk"`},
		{args: []string{"status", "--insecure", "--controller", "junk"}, lead: `--controller "junk"`},
		{args: []string{"status", "--insecure"}, env: ctlJunk, lead: `$POCKET_CONTROLLER "junk"`},
		{args: []string{"job", "register", "j", "--insecure", "--controller", "127.0.0.1:0"}, lead: `--controller "127.0.0.1:0"`},
		{args: []string{"job", "profile", "j", "--insecure", "--controller", "junk"}, lead: `--controller "junk"`},
		{args: []string{"put", "j", "k", secret, "--insecure", "--controller", "junk"}, lead: `--controller "junk"`},
		{args: []string{"node", "drain", "127.0.0.1:7100", "--insecure", "--controller", "junk"}, lead: `--controller "junk"`},
		// A new user's trial: a negative deadline was the controller's
		// "malformed frame" (exit 1), a NODE without a port "not registered".
		{args: []string{"node", "drain", "127.0.0.1:7100", "--insecure", "--controller", "127.0.0.1:1", "--deadline", "-1s"}, lead: `--deadline -1s: must not be negative`},
		{args: []string{"node", "drain", "localhost", "--insecure", "--controller", "127.0.0.1:1"}, lead: `NODE "localhost": want HOST:PORT`},
		{args: []string{"bench", "--insecure", "--controller", "junk"}, lead: `--controller "junk"`},
		{args: []string{"bench", "workload", "sort", "--insecure", "--controller", "junk"}, lead: `--controller "junk"`},
		{args: []string{"bench", "workload", "sort", "--insecure"}, env: ctlJunk, lead: `$POCKET_CONTROLLER "junk"`},
		// Files opened later, and a node with no tier.
		{args: append(node, "--secret-file", missing), lead: `--secret-file "` + missing + `"`},
		{args: append(node, "--controller", "127.0.0.1:1", "--insecure", "--secret-file", dir), lead: `--secret-file "` + dir + `"`},
		{args: append(node, "--profile", missing), lead: `--profile "` + missing + `"`},
		{args: append(node, "--profile", badProfile), lead: `--profile "` + badProfile + `"`},
		{args: append(node, "--controller", "127.0.0.1:1", "--insecure", "--profile", badProfile), env: withSecret, lead: `--profile "` + badProfile + `"`},
		{args: append(node, "--nvme", missing+"/tier:64MiB"), lead: `--nvme "` + missing + `/tier:64MiB"`},
		{args: append(node, "--nvme", missing+":0"), lead: `--nvme "` + missing + `:0"`},
		{args: append(node, "--nvme", dir+":64MiB"), lead: `--nvme "` + dir + `:64MiB"`},
		{args: []string{"node", "--listen", "127.0.0.1:0", "--dram", "0"}, lead: `--dram "0"`, also: "--nvme"},
		{args: append(up, "--secret-file", missing+"/secret"), lead: `--secret-file "` + missing + `/secret"`},
		{args: append(up, "--secret-file", dir), lead: `--secret-file "` + dir + `"`},
		{args: append(ctl, "--secret-file", missing+"/secret"), lead: `--secret-file "` + missing + `/secret"`},
		{args: append(ctl, "--etcd", "127.0.0.1:1", "--secret-file", missing), lead: `--secret-file "` + missing + `"`},
		// Each range check names its own flag.
		{args: append(node, "--loops", "-2"), lead: "--loops -2:", not: "--max-conns"},
		// Was flag's "parse error" (a new user's trial).
		{args: []string{"job", "register", "j", "--insecure", "--lambdas", "-1"}, lead: "--lambdas -1:", also: "0 or more"},
		{args: append(node, "--max-conns", "-1"), lead: "--max-conns -1:", not: "--loops"},
		{args: append(up, "--autoscale", "--nodes", "9"), lead: "--nodes 9:", not: "--min-nodes 9"},
		{args: append(up, "--autoscale", "--nodes", "0"), lead: "--nodes 0:", not: "--min-nodes 0"},
		{args: append(up, "--nodes", "0"), lead: "--nodes 0:", not: "--min-nodes"},
		{args: append(up, "--min-nodes", "0"), lead: "--min-nodes 0:", not: "--max-nodes"},
		{args: append(up, "--max-nodes", "0"), lead: "--max-nodes 0:"},
		{args: append(up, "--cooldown", "-1s"), lead: "--cooldown -1s:", not: "--job-cooldown"},
		{args: append(up, "--job-cooldown", "-1s"), lead: "--job-cooldown -1s:", not: "--drain-deadline"},
		{args: append(ctl, "--heartbeat", "0"), lead: "--heartbeat 0s:", not: "--dead-after"},
		{args: append(ctl, "--dead-after", "-1s"), lead: "--dead-after -1s:", not: "--heartbeat"},
	} {
		wantUsageError(t, bin, dir, c)
	}
}

// usageCase is a command line that must be a usage error.
type usageCase struct {
	args []string
	env  string // one more variable, or ""
	lead string // the message after "pocket: CMD: "
	also string // another word it must hold, or ""
	not  string // a flag it must not name, or ""
}

// wantUsageError runs c.args (in dir, HOME=dir) and fails the test unless
// the command exits 2 at once, having printed nothing on stdout, with the
// usage line and one message on stderr that leads with c.lead, holds
// c.also and does not name c.not. It reports whether the command did.
func wantUsageError(t *testing.T, bin, dir string, c usageCase) bool {
	t.Helper()
	env := cleanEnv("HOME=" + dir)
	if c.env != "" {
		env = append(env, c.env)
	}
	code, out, msg := runBrieflyOut(t, bin, env, dir, c.args)
	path := commandPath(c.args)
	name := "pocket " + strings.Join(c.args, " ")
	if c.env != "" {
		name = c.env + " " + name
	}
	if code != 2 || out != "" || !strings.HasPrefix(msg, "pocket: "+path+": "+c.lead) || !strings.Contains(msg, "Usage: pocket "+path) ||
		strings.Count(msg, "pocket: ") != 1 || !strings.Contains(msg, c.also) || (c.not != "" && strings.Contains(msg, c.not)) {
		t.Errorf("%s: exit %d, stdout %q, stderr %q;\nwant exit 2, nothing on stdout, the usage line and a message leading with %q%s",
			name, code, out, msg, c.lead, notNaming(c.not))
		return false
	}
	return true
}

// usageFixture builds the pocket binary and returns it, a directory for
// the commands to run in (and their HOME) and a cluster secret file in it.
func usageFixture(t *testing.T) (bin, dir, secret string) {
	t.Helper()
	bin, dir = buildPocketBinary(t), t.TempDir()
	return bin, dir, writeSecretFile(t, dir)
}

// writeSecretFile writes a cluster secret file, mode 0600, in dir and
// returns its path.
func writeSecretFile(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// notNaming is the tail of an error that a message named c.not.
func notNaming(flag string) string {
	if flag == "" {
		return ""
	}
	return ", not naming " + flag
}

// commandPath is the path of the command args run: "node", "node drain",
// "job register", "bench workload".
func commandPath(args []string) string {
	if len(args) > 1 && commands[args[0]+" "+args[1]].summary != "" {
		return args[0] + " " + args[1]
	}
	return args[0]
}

// runBrieflyOut runs a pocket command that should end at once and returns
// its exit status (-1 when it was still running after 10 s, and was
// killed), its stdout and its stderr.
func runBrieflyOut(t *testing.T, bin string, env []string, dir string, args []string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return -1, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatalf("pocket %s: %v", strings.Join(args, " "), err)
	}
	return 0, stdout.String(), stderr.String()
}

// TestGoodAddressAndFileFlagsStart: the values the checks take start the
// commands: a node with a host name to advertise, --metrics on port 0, a
// device profile and a secret file, standalone; a node whose NVMe tier's
// file is created (its directory exists); pocket up creating a missing
// --secret-file, and printing the port its --metrics 127.0.0.1:0 got.
func TestGoodAddressAndFileFlagsStart(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	secret := writeSecretFile(t, dir)
	profile := filepath.Join(dir, "profile.json")
	prof := `{"version": 1, "host": "h", "report": {"seq_read_mb_per_sec": 2000, "seq_write_mb_per_sec": 1000, "loopback_tcp_mb_per_sec": 3000}}`
	if err := os.WriteFile(profile, []byte(prof), 0o644); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv("HOME=" + dir)
	serving := regexp.MustCompile(`pocket node serving on (\S+)`)
	pocketStart(t, bin, env, serving, "node", "--listen", "127.0.0.1:0", "--dram", "16MiB", "--advertise", "localhost:7100",
		"--metrics", "127.0.0.1:0", "--profile", profile, "--secret-file", secret)

	if directIO(t, dir) {
		pocketStart(t, bin, env, serving, "node", "--listen", "127.0.0.1:0", "--dram", "0",
			"--nvme", filepath.Join(dir, "tier")+":64MiB", "--nvme-staging", "8MiB")
	}

	_, maddr, _ := pocketStart(t, bin, env, regexp.MustCompile(`controller metrics on http://(\S+)/metrics`),
		"up", "--insecure", "--listen", "127.0.0.1:0", "--nodes", "1", "--dram", "16MiB",
		"--metrics", "127.0.0.1:0", "--secret-file", filepath.Join(dir, "new-secret"))
	if strings.HasSuffix(maddr, ":0") {
		t.Errorf("up --metrics 127.0.0.1:0 printed %s, not the port it listens on", maddr)
	}
	if _, err := os.Stat(filepath.Join(dir, "new-secret")); err != nil {
		t.Errorf("up did not create its --secret-file: %v", err)
	}
}

// directIO reports whether dir's file system takes O_DIRECT, which an
// NVMe tier's file needs.
func directIO(t *testing.T, dir string) bool {
	path := filepath.Join(dir, "direct-probe")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o600)
	if err != nil {
		t.Logf("no O_DIRECT in %s (%v): the NVMe tier is not started", dir, err)
		return false
	}
	f.Close()
	return os.Remove(path) == nil
}
