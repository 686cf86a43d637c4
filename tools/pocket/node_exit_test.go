package main

// Process-level tests of a node's end: `pocket node` exits 0 once the
// controller has drained and retired it, and non-zero when another node
// serves at the address it advertises.

import (
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// watchedNode is a `pocket node` process whose exit the test awaits.
type watchedNode struct {
	addr string
	out  *syncBuffer // its stdout and stderr
	done chan struct{}
	code int // its exit status, once done is closed
}

// startWatchedNode starts `pocket node ARGS` and waits until it serves.
// The test's end stops it if it still runs.
func startWatchedNode(t *testing.T, bin string, env []string, args ...string) *watchedNode {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"node"}, args...)...)
	cmd.Env = env
	w := &watchedNode{out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = w.out, w.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			w.code = ee.ExitCode()
		case err != nil:
			w.code = -1
		}
		close(w.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-w.done
		}
	})
	w.addr = awaitOutput(t, w.out, nodeReady)
	return w
}

// awaitExit returns the node's exit status, failing the test if it still
// runs after limit.
func (w *watchedNode) awaitExit(t *testing.T, what string, limit time.Duration) int {
	t.Helper()
	select {
	case <-w.done:
		return w.code
	case <-time.After(limit):
		t.Fatalf("%s: pocket node %s still runs after %v:\n%s", what, w.addr, limit, w.out)
		return 0
	}
}

// nodeCluster starts `pocket controller` (plain TCP, 100 ms heartbeats,
// warnings only) and returns its address and output, the environment
// pointing at it, and the flags a node needs to join it.
func nodeCluster(t *testing.T, bin string) (addr string, ctlOut *syncBuffer, env, nodeArgs []string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	base := cleanEnv("HOME=" + filepath.Join(dir, "home"))
	_, addr, ctlOut = startController(t, bin, base, data, "127.0.0.1:0")
	nodeArgs = []string{"--controller", addr, "--secret-file", filepath.Join(data, stateSubdir, "secret"), "--insecure",
		"--listen", "127.0.0.1:0", "--dram", "64MiB"}
	return addr, ctlOut, append(base, "POCKET_CONTROLLER="+addr), nodeArgs
}

// TestNodeExitsAfterDrain: `pocket node drain ADDR` moves the node's value
// to the other node and reports it gone; the drained node's process then
// logs that the controller retired it and exits 0, with no error logged,
// and the value reads from the other node. Before, the process kept
// running, retrying its refused registration, and came back as an active
// node a minute later.
func TestNodeExitsAfterDrain(t *testing.T) {
	bin := buildPocketBinary(t)
	_, _, env, nodeArgs := nodeCluster(t, bin)
	drained := startWatchedNode(t, bin, env, nodeArgs...) // logs at info: its last line is checked
	pocketStart(t, bin, env, nodeReady, append(append([]string{"node"}, nodeArgs...), "--log-level", "warn")...)
	awaitActiveNodes(t, bin, env, 2, "--insecure")
	job, tok := registerInsecure(t, bin, env, "drained")
	withTok := append(slices.Clone(env), "POCKET_TOKEN="+tok)
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, errOut, code := pocketRun(t, bin, withTok, "value "+k, "put", "--insecure", job, k, "-"); code != 0 {
			t.Fatalf("put %s: exit %d: %s", k, code, errOut)
		}
	}
	secret := nodeArgs[slices.Index(nodeArgs, "--secret-file")+1]
	out, errOut, code := pocketRun(t, bin, env, "", "node", "drain", drained.addr, "--insecure", "--secret-file", secret)
	if code != 0 || !strings.Contains(out, "drained and gone") {
		t.Fatalf("node drain %s: exit %d: %s %s", drained.addr, code, out, errOut)
	}
	if code := drained.awaitExit(t, "a drained node", 15*time.Second); code != 0 {
		t.Fatalf("the drained node exited %d; want 0:\n%s", code, drained.out)
	}
	log := drained.out.String()
	if !strings.Contains(log, "drained and retired by the controller: exiting") || strings.Contains(log, "level=ERROR") ||
		strings.Contains(log, "pocket: node:") {
		t.Fatalf("the drained node's output: want its exit explained, no error:\n%s", log)
	}
	awaitActiveNodes(t, bin, env, 1, "--insecure")
	for _, k := range []string{"a", "b", "c", "d"} {
		if got, errOut, code := pocketRun(t, bin, withTok, "", "get", "--insecure", job, k); code != 0 || got != "value "+k {
			t.Fatalf("get %s after the drain: exit %d, %q: %s", k, code, got, errOut)
		}
	}
}

// TestNodeAtATakenAddressExits: a second `pocket node` advertising the
// address of a live node is refused by the controller and exits non-zero,
// saying why (another node serves there; give it its own --advertise);
// the controller warns once, and the live node stays active. Before, the
// second node retried once a second forever, and it and the controller
// logged a warning for every attempt.
func TestNodeAtATakenAddressExits(t *testing.T) {
	bin := buildPocketBinary(t)
	_, ctlOut, env, nodeArgs := nodeCluster(t, bin)
	_, live, _ := pocketStart(t, bin, env, nodeReady, append(append([]string{"node"}, nodeArgs...), "--log-level", "warn")...)
	awaitActiveNodes(t, bin, env, 1, "--insecure")
	second := startWatchedNode(t, bin, env, append(nodeArgs, "--advertise", live)...)
	code := second.awaitExit(t, "a second node at a live node's address", 15*time.Second)
	log := second.out.String()
	if code == 0 || !strings.Contains(log, "pocket: node:") || !strings.Contains(log, "serving at "+live) || !strings.Contains(log, "--advertise") {
		t.Fatalf("the second node exited %d; want non-zero, naming the address and --advertise:\n%s", code, log)
	}
	awaitActiveNodes(t, bin, env, 1, "--insecure")
	if n := strings.Count(ctlOut.String(), "a second node registers at a live node's address"); n != 1 {
		t.Fatalf("the controller warned %d times about the second node; want once:\n%s", n, ctlOut)
	}
}
