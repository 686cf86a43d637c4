package main

// The process-level test of issue 12 item 1 for `pocket up --data-dir`:
// the whole process group killed with SIGKILL and started again on the
// same directory. What a restart of up means (startUp, printRestored): the
// jobs, their tokens and maps are kept; their data is not, since it lived
// on up's own nodes, which die with it.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upProc is a running `pocket up` in a process group of its own.
type upProc struct {
	cmd    *exec.Cmd
	ctl    string   // the controller's address
	nodes  []string // the nodes it started
	out    *syncBuffer
	exited chan struct{}
}

// startUpGroup starts `pocket up ARGS` as the leader of a new process
// group (its nodes join it) and waits for its banner; cleanup kills the
// group.
func startUpGroup(t *testing.T, bin string, env []string, args ...string) *upProc {
	t.Helper()
	p := &upProc{cmd: exec.Command(bin, append([]string{"up"}, args...)...), out: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	})
	banner := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.out, line)
			if m := upReady.FindStringSubmatch(line); m != nil {
				p.ctl = m[1]
			} else if a, ok := strings.CutPrefix(line, "  node "); ok && !strings.Contains(a, " ") {
				p.nodes = append(p.nodes, a)
			} else if strings.HasPrefix(line, "point the other commands") && len(banner) == 0 {
				banner <- true
			}
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case <-banner:
		return p
	case <-p.exited:
		t.Fatalf("pocket up exited before it was ready:\n%s", p.out)
	case <-time.After(30 * time.Second):
		t.Fatalf("pocket up not ready after 30 s:\n%s", p.out)
	}
	return nil
}

// awaitGone waits until nothing listens at any of addrs.
func awaitGone(t *testing.T, why string, addrs []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("%s: node %s still listens", why, a)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// registerMap runs `pocket job register NAME --json --insecure [ARGS]`.
func registerMap(t *testing.T, bin string, env []string, name string, args ...string) jobMapJSON {
	t.Helper()
	out, errOut, code := pocketRun(t, bin, env, "", append([]string{"job", "register", name, "--json", "--insecure"}, args...)...)
	var reg jobMapJSON
	if code != 0 || json.Unmarshal([]byte(out), &reg) != nil || reg.Token == "" {
		t.Fatalf("job register %s: exit %d: %s %s", name, code, out, errOut)
	}
	return reg
}

// TestUpKill9KeepsJobs: `pocket up --data-dir` with two nodes; a job
// registers and puts a value; the whole process group (up and its nodes)
// is killed with SIGKILL, and up starts again on the same directory and
// address. It says where its state is and that it restored the job; the
// old nodes are gone, so the value is too, but the old token is still the
// job's: a get is refused for the dead nodes (unavailable, or lost once
// they have left the map), not for the token, and the
// job deregisters with it. A new job gets a new id and a map of the new
// nodes only, and keeps a value. Finally up alone is killed: its nodes
// stop with it (SIGTERM by Pdeathsig).
func TestUpKill9KeepsJobs(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	base := cleanEnv("HOME=" + filepath.Join(dir, "home"))
	args := []string{"--insecure", "--nodes", "2", "--dram", "32MiB", "--data-dir", data, "--log-level", "warn"}
	up := startUpGroup(t, bin, base, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	stateDir := filepath.Join(data, stateSubdir)
	if !strings.Contains(up.out.String(), "controller state in "+stateDir) || len(up.nodes) != 2 {
		t.Fatalf("up does not say where its state is, or lists %d nodes:\n%s", len(up.nodes), up.out)
	}
	if fi, err := os.Stat(filepath.Join(stateDir, "secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("up's secret file: %v %v; want DATA/%s/secret, mode 0600", fi, err, stateSubdir)
	}
	env := append(base, "POCKET_CONTROLLER="+up.ctl)
	old := registerMap(t, bin, env, "durable")
	withTok := append(slices.Clone(env), "POCKET_TOKEN="+old.Token)
	if _, errOut, code := pocketRun(t, bin, withTok, "lost with the nodes", "put", "--insecure", old.JobID, "k", "-"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, errOut)
	}

	if err := syscall.Kill(-up.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-up.exited
	awaitGone(t, "after a SIGKILL of up's process group", up.nodes)

	up2 := startUpGroup(t, bin, base, append([]string{"--listen", up.ctl}, args...)...)
	if up2.ctl != up.ctl || !strings.Contains(up2.out.String(), "restored 1 job of an earlier run whose data was on that run's nodes") {
		t.Fatalf("restarted up on %s (want %s), or it does not say it restored the job:\n%s", up2.ctl, up.ctl, up2.out)
	}
	_, errOut, code := pocketRun(t, bin, withTok, "", "get", "--insecure", old.JobID, "k")
	if code == 0 || !strings.Contains(errOut, "unavailable") && !strings.Contains(errOut, "lost") {
		t.Fatalf("get of the old job's value after its nodes died: exit %d: %s; want a refusal for the nodes, not the token", code, errOut)
	}
	t.Logf("get of the old job's value: %s", strings.TrimSpace(errOut))
	// A wide job (60 lambdas: more bandwidth than the two new nodes
	// carry) is placed over every active node: none may be the earlier
	// run's (they stopped with it; up waits until they are marked dead).
	job2 := registerMap(t, bin, env, "durable", "--lambdas", "60")
	if job2.JobID == old.JobID || len(job2.Nodes) == 0 {
		t.Fatalf("new job %s (old %s) with %d nodes", job2.JobID, old.JobID, len(job2.Nodes))
	}
	for _, n := range job2.Nodes {
		if !slices.Contains(up2.nodes, n.Addr) {
			t.Fatalf("the new job is placed on %s, not a node of the restarted up %v", n.Addr, up2.nodes)
		}
	}
	withTok2 := append(slices.Clone(env), "POCKET_TOKEN="+job2.Token)
	if _, errOut, code := pocketRun(t, bin, withTok2, "new", "put", "--insecure", job2.JobID, "k", "-"); code != 0 {
		t.Fatalf("put of the new job: exit %d: %s", code, errOut)
	}
	if got, errOut, code := pocketRun(t, bin, withTok2, "", "get", "--insecure", job2.JobID, "k"); code != 0 || got != "new" {
		t.Fatalf("get of the new job: exit %d, %q: %s", code, got, errOut)
	}
	// The job deregisters; the CLI exits 1 because its dead nodes could
	// not be told to drop its data (they hold none: they died with it):
	// marked dead, or, within the restored nodes' first-heartbeat grace
	// (controller restoreGrace), unreachable.
	out, errOut, code := pocketRun(t, bin, withTok, "", "job", "deregister", "--insecure", old.JobID)
	if !strings.Contains(out, "deregistered") || code != 0 && !strings.Contains(errOut, "node dead") && !strings.Contains(errOut, "unavailable") {
		t.Fatalf("deregister with the old token: exit %d: %s %s", code, out, errOut)
	}
	if n := jobCount(t, bin, env); n != 1 {
		t.Fatalf("%d jobs after the old one deregistered; want the new one only", n)
	}

	if err := up2.cmd.Process.Kill(); err != nil { // up alone, not its group
		t.Fatal(err)
	}
	<-up2.exited
	awaitGone(t, "after a SIGKILL of up alone", up2.nodes)
}

// TestUpRestartAfterDrainOnItsPorts: `pocket up --node-ports` drains one
// of its nodes, stops, and starts again on the same data directory within
// a minute. Its new nodes take the same ports, one of them the drained
// node's, whose retirement the controller keeps for ForgetAfter; the
// drained process died with the earlier up, so the new node registers.
// Before, the restart failed after 15 s: "1 of 2 nodes registered" (a new
// user's trial; the reason was in a log line only).
func TestUpRestartAfterDrainOnItsPorts(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	base := cleanEnv("HOME=" + filepath.Join(dir, "home"))
	p := freePorts(t, 3)
	args := []string{"--listen", "127.0.0.1:0", "--insecure", "--nodes", "2", "--dram", "32MiB", "--data-dir", data,
		"--log-level", "warn", "--node-ports", fmt.Sprintf("%d-%d", p, p+2)}
	up := startUpGroup(t, bin, base, args...)
	env := append(base, "POCKET_CONTROLLER="+up.ctl)
	secret := filepath.Join(data, stateSubdir, "secret")
	// The banner's drain recipe names the controller, as its node recipe
	// does (before, a shell without $POCKET_CONTROLLER drained through the
	// default address: a new user's trial).
	recipe := "pocket node drain --controller " + up.ctl + " ADDR"
	for end := time.Now().Add(5 * time.Second); !strings.Contains(up.out.String(), recipe); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Errorf("the banner's drain recipe does not name the controller:\n%s", up.out.String())
			break
		}
	}
	if out, errOut, code := pocketRun(t, bin, env, "", "node", "drain", "--insecure", "--secret-file", secret, up.nodes[0]); code != 0 {
		t.Fatalf("node drain %s: exit %d: %s %s", up.nodes[0], code, out, errOut)
	}
	if err := syscall.Kill(-up.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-up.exited
	awaitGone(t, "after a SIGKILL of up's process group", up.nodes)
	up2 := startUpGroup(t, bin, base, args...) // fails the test unless ready within 30 s
	if len(up2.nodes) != 2 || !slices.Contains(up2.nodes, up.nodes[0]) {
		t.Fatalf("restarted up's nodes %v; want 2, one at the drained node's address %s", up2.nodes, up.nodes[0])
	}
}
