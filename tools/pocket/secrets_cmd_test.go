package main

// The end-to-end test of issue 11 item 6: the cluster secret and job tokens
// never appear in any process's command line. It drives the pocket binary
// only, so it runs unchanged against older code.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildPocketBinary builds this command into a temporary directory.
func buildPocketBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the pocket binary and starts a cluster")
	}
	bin := filepath.Join(t.TempDir(), "pocket")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build pocket: %v\n%s", err, out)
	}
	return bin
}

// cleanEnv is this process's environment without POCKET_ variables, plus
// extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POCKET_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pocketRun runs one short pocket command and returns its output and exit
// status.
func pocketRun(t *testing.T, bin string, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("pocket %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errOut.String(), code
}

// pocketStart starts a long-running pocket command, waits for a line of
// its output matching ready, and returns the process, its first match
// group and its collected output (stdout and stderr). Cleanup stops it.
func pocketStart(t *testing.T, bin string, env []string, ready *regexp.Regexp, args ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	all := &syncBuffer{}
	cmd.Stderr = all
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(all, sc.Text())
			if m := ready.FindStringSubmatch(sc.Text()); m != nil && len(found) == 0 {
				found <- m[1]
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case m := <-found:
		return cmd, m, all
	case <-exited:
		t.Fatalf("pocket %s exited before it was ready:\n%s", strings.Join(args, " "), all)
	case <-time.After(20 * time.Second):
		t.Fatalf("pocket %s not ready after 20 s:\n%s", strings.Join(args, " "), all)
	}
	return nil, "", nil
}

// procChildren returns the pids whose parent is pid.
func procChildren(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var kids []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			kids = append(kids, child)
		}
	}
	return kids
}

// cmdlineHolding returns the pids of processes whose command line holds
// any of secrets, as they run now.
func cmdlineHolding(t *testing.T, secrets ...string) []string {
	t.Helper()
	files, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var hits []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range secrets {
			if s != "" && bytes.Contains(b, []byte(s)) {
				hits = append(hits, fmt.Sprintf("%s: %q", f, bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
			}
		}
	}
	return hits
}

func writeMode(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

var (
	upReady   = regexp.MustCompile(`cluster up: controller (\S+),`)
	nodeReady = regexp.MustCompile(`serving on (\S+)`)
)

// TestSecretsStayOffCommandLines starts `pocket up` with a secret file it
// creates, adds nodes holding the secret from the environment and from the
// file, runs jobs with tokens from the environment and from a file, and
// checks while all of it runs that no process's /proc/PID/cmdline holds the
// secret or a token, that up's nodes are its children and registered, that
// files open to other users and the old --secret and --token flags are
// refused without echoing the value, and that up prints no secret.
//
// The cluster runs over mutual TLS when put and get can (dataTLS), else
// over plain TCP.
func TestSecretsStayOffCommandLines(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	base := cleanEnv("HOME=" + filepath.Join(dir, "home"))
	upMode, mode := []string{"--data-dir", filepath.Join(dir, "data")}, []string(nil)
	if !dataTLS(t, bin, base) {
		upMode, mode = []string{"--insecure"}, []string{"--insecure"}
	}

	t.Run("old flags refused", func(t *testing.T) {
		const s = "0123456789abcdef0123456789abcdef"
		for _, args := range [][]string{
			{"node", "drain", "127.0.0.1:9", "--wait=false", "--controller", "127.0.0.1:9", "--secret", s},
			{"job", "deregister", "j", "--controller", "127.0.0.1:9", "--token", s},
			{"get", "j", "k", "--controller", "127.0.0.1:9", "--token=" + s},
		} {
			_, errOut, code := pocketRun(t, bin, base, "", args...)
			if code != 2 || strings.Contains(errOut, s) || !strings.Contains(errOut, "POCKET_") {
				t.Errorf("pocket %s: exit %d, stderr %q; want 2 and a pointer to POCKET_ without the value",
					strings.Join(args[:2], " "), code, errOut)
			}
		}
	})

	t.Run("open secret file refused", func(t *testing.T) {
		open := filepath.Join(dir, "open-secret")
		writeMode(t, open, "0123456789abcdef0123456789abcdef\n", 0o644)
		_, errOut, code := pocketRun(t, bin, base, "", append([]string{"up", "--listen", "127.0.0.1:0", "--nodes", "1", "--dram", "16MiB", "--secret-file", open}, upMode...)...)
		if code == 0 || !strings.Contains(errOut, "chmod 600 "+open) {
			t.Errorf("up with a 0644 secret file: exit %d, stderr %q; want an error saying chmod 600 %s", code, errOut, open)
		}
	})

	secretFile := filepath.Join(dir, "secret") // up creates it
	up, ctl, upOut := pocketStart(t, bin, base, upReady,
		append([]string{"up", "--listen", "127.0.0.1:0", "--nodes", "2", "--dram", "16MiB", "--secret-file", secretFile}, upMode...)...)
	fi, err := os.Stat(secretFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("up's secret file: %v, %v; want mode 0600", fi, err)
	}
	raw, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(raw))
	if len(secret) < 16 {
		t.Fatalf("up's secret file holds %d bytes", len(secret))
	}
	kids := procChildren(t, up.Process.Pid)
	if len(kids) != 2 {
		t.Fatalf("up has %d child processes, want its 2 nodes", len(kids))
	}
	env := append(slices.Clone(base), "POCKET_CONTROLLER="+ctl)
	if mode == nil {
		env = append(env, envTLSDir+"="+awaitOutput(t, upOut, upTLSDir))
	}

	// More nodes, holding the secret from the environment and from the file.
	pocketStart(t, bin, append(slices.Clone(env), "POCKET_SECRET="+secret), nodeReady,
		append([]string{"node", "--listen", "127.0.0.1:0", "--dram", "16MiB"}, mode...)...)
	_, fileNode, _ := pocketStart(t, bin, env, nodeReady,
		append([]string{"node", "--listen", "127.0.0.1:0", "--dram", "16MiB", "--secret-file", secretFile}, mode...)...)
	awaitActiveNodes(t, bin, env, 4, mode...)

	// Job tokens from the environment (put, get, deregister) and a file.
	var tokens []string
	for i, how := range []string{"env", "file"} {
		out, errOut, code := pocketRun(t, bin, env, "", append([]string{"job", "register", "secrets-" + how, "--json"}, mode...)...)
		var reg struct {
			JobID string `json:"job_id"`
			Token string `json:"token"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &reg) != nil || reg.Token == "" {
			t.Fatalf("job register: exit %d, %q %q", code, out, errOut)
		}
		tokens = append(tokens, reg.Token)
		withTok := append(slices.Clone(env), "POCKET_TOKEN="+reg.Token)
		value := fmt.Sprintf("value %d", i)
		if _, errOut, code := pocketRun(t, bin, withTok, value, "put", reg.JobID, "k", "-"); code != 0 {
			t.Fatalf("put with $POCKET_TOKEN: exit %d: %s", code, errOut)
		}
		if got, errOut, code := pocketRun(t, bin, withTok, "", "get", reg.JobID, "k"); code != 0 || got != value {
			t.Fatalf("get with $POCKET_TOKEN: exit %d, %q: %s", code, got, errOut)
		}
		if hits := cmdlineHolding(t, append([]string{secret}, tokens...)...); len(hits) > 0 {
			t.Fatalf("the secret or a token is on a command line:\n%s", strings.Join(hits, "\n"))
		}
		args := append([]string{"job", "deregister", reg.JobID}, mode...)
		denv := withTok
		if how == "file" {
			tokFile := filepath.Join(dir, "token")
			writeMode(t, tokFile, reg.Token+"\n", 0o644)
			if _, errOut, code := pocketRun(t, bin, env, "", append(args, "--token-file", tokFile)...); code == 0 ||
				!strings.Contains(errOut, "chmod 600 "+tokFile) || strings.Contains(errOut, reg.Token) {
				t.Errorf("deregister with a 0644 token file: exit %d, stderr %q", code, errOut)
			}
			writeMode(t, tokFile, reg.Token+"\n", 0o600)
			args, denv = append(args, "--token-file", tokFile), env
		}
		if out, errOut, code := pocketRun(t, bin, denv, "", args...); code != 0 {
			t.Fatalf("job deregister with the token from the %s: exit %d: %s %s", how, code, out, errOut)
		}
	}

	// Drain orders are signed with the secret from the file.
	if out, errOut, code := pocketRun(t, bin, env, "", append([]string{"node", "drain", fileNode, "--wait=false", "--secret-file", secretFile}, mode...)...); code != 0 {
		t.Fatalf("node drain with --secret-file: exit %d: %s %s", code, out, errOut)
	}

	// While everything runs: no command line holds a credential, up's nodes included.
	for _, pid := range append(kids, up.Process.Pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatalf("node process %d gone: %v", pid, err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("process %d has the secret on its command line", pid)
		}
	}
	if hits := cmdlineHolding(t, append([]string{secret}, tokens...)...); len(hits) > 0 {
		t.Errorf("the secret or a token is on a command line:\n%s", strings.Join(hits, "\n"))
	}
	for _, s := range append([]string{secret}, tokens...) {
		if strings.Contains(upOut.String(), s) {
			t.Errorf("pocket up printed a credential:\n%s", upOut)
		}
	}
}

// awaitActiveNodes waits until `pocket status --json` (with flags) lists
// n active nodes.
func awaitActiveNodes(t *testing.T, bin string, env []string, n int, flags ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, errOut, code := pocketRun(t, bin, env, "", append([]string{"status", "--json"}, flags...)...)
		var st struct {
			Nodes []struct{ Addr, State string }
		}
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("status: exit %d: %s %s", code, out, errOut)
		}
		active := 0
		for _, nd := range st.Nodes {
			if nd.State == "active" {
				active++
			}
		}
		if active == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d nodes active: %s", active, n, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
