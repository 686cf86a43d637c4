package main

// The process-level test of issue 12 item 1: `pocket controller
// --data-dir` killed with SIGKILL and started again on the same directory
// while its nodes run.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var ctlReady = regexp.MustCompile(`pocket controller serving on (\S+)`)

// startController starts `pocket controller` over plain TCP with its
// state in data, at listen.
func startController(t *testing.T, bin string, env []string, data, listen string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	return pocketStart(t, bin, env, ctlReady, "controller", "--insecure", "--listen", listen, "--data-dir", data,
		"--heartbeat", "100ms", "--log-level", "warn")
}

// jobCount is the number of jobs `pocket status` counts.
func jobCount(t *testing.T, bin string, env []string) int {
	t.Helper()
	return int(statusOf(t, bin, env, "--insecure").JobCount)
}

// TestControllerKill9KeepsJobs: `pocket controller --data-dir` with two
// nodes; a job registers and puts a value; the controller is killed with
// SIGKILL and started again on the same directory and address, while the
// nodes keep running (they are not restarted). The old token reads the
// value, a new job registers under a new id, and the old job deregisters
// (its value dropped on the nodes).
func TestControllerKill9KeepsJobs(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	base := cleanEnv("HOME=" + filepath.Join(dir, "home"))
	ctl, addr, _ := startController(t, bin, base, data, "127.0.0.1:0")
	secret := filepath.Join(data, stateSubdir, "secret")
	if fi, err := os.Stat(secret); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the controller's secret file: %v %v; want mode 0600", fi, err)
	}
	for range 2 {
		pocketStart(t, bin, base, nodeReady, "node", "--controller", addr, "--secret-file", secret, "--insecure",
			"--listen", "127.0.0.1:0", "--dram", "64MiB", "--log-level", "warn")
	}
	env := append(base, "POCKET_CONTROLLER="+addr)
	awaitActiveNodes(t, bin, env, 2, "--insecure")
	job, tok := registerInsecure(t, bin, env, "durable")
	withTok := append(slices.Clone(env), "POCKET_TOKEN="+tok)
	if _, errOut, code := pocketRun(t, bin, withTok, "kept across a kill -9", "put", "--insecure", job, "k", "-"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, errOut)
	}

	if err := ctl.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = ctl.Process.Wait()
	_, addr2, out2 := startController(t, bin, base, data, addr)
	if addr2 != addr {
		t.Fatalf("restarted controller on %s, want %s", addr2, addr)
	}
	// The line after "serving on", which pocketStart returns at: the
	// scanner may not have copied it yet (one run in CI met that).
	stateLine := "controller state in " + filepath.Join(data, stateSubdir)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out2.String(), stateLine) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(out2.String(), stateLine) {
		t.Errorf("the restarted controller does not say where its state is:\n%s", out2)
	}
	if got, errOut, code := pocketRun(t, bin, withTok, "", "get", "--insecure", job, "k"); code != 0 || got != "kept across a kill -9" {
		t.Fatalf("get with the old token after the restart: exit %d, %q: %s", code, got, errOut)
	}
	job2, _ := registerInsecure(t, bin, env, "durable")
	if job2 == job {
		t.Fatalf("the restarted controller gave the new job the old job's id %s", job)
	}
	if out, errOut, code := pocketRun(t, bin, withTok, "", "job", "deregister", "--insecure", job); code != 0 || !strings.Contains(out, "deregistered") {
		t.Fatalf("deregister with the old token: exit %d: %s %s", code, out, errOut)
	}
	if n := jobCount(t, bin, env); n != 1 {
		t.Fatalf("%d jobs after the old one deregistered; want the new one only", n)
	}
	// The value is dropped (by the drop order or by the node on hearing
	// of the revocation, whichever comes first): the nodes report no use.
	deadline := time.Now().Add(10 * time.Second)
	for used := usedBytes(t, bin, env); used != 0; used = usedBytes(t, bin, env) {
		if time.Now().After(deadline) {
			t.Fatalf("the nodes still use %d bytes after the job deregistered", used)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// usedBytes is the bytes the nodes report used, in all.
func usedBytes(t *testing.T, bin string, env []string) int64 {
	t.Helper()
	st := statusOf(t, bin, env, "--insecure")
	var used int64
	for _, n := range st.Nodes {
		used += n.UsedBytes
	}
	return used
}

// registerInsecure runs `pocket job register NAME --json --insecure` and
// returns the job id and token.
func registerInsecure(t *testing.T, bin string, env []string, name string) (string, string) {
	t.Helper()
	out, errOut, code := pocketRun(t, bin, env, "", "job", "register", name, "--json", "--insecure")
	var reg jobMapJSON
	if code != 0 || json.Unmarshal([]byte(out), &reg) != nil || reg.Token == "" {
		t.Fatalf("job register %s: exit %d: %s %s", name, code, out, errOut)
	}
	return reg.JobID, reg.Token
}

// TestControllerOnCorruptStateSaysSoBeforeServing: a controller whose
// state file is damaged exits 1 saying so, and never prints "serving on"
// (scripts wait for that line). Before, it printed the line and then
// exited (a hostile trial).
func TestControllerOnCorruptStateSaysSoBeforeServing(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	base := cleanEnv("HOME=" + filepath.Join(dir, "home"))
	ctl, _, _ := startController(t, bin, base, data, "127.0.0.1:0")
	if err := ctl.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = ctl.Process.Wait()
	// A job record that does not decode: the file opens, its load fails.
	db, err := bolt.Open(filepath.Join(data, stateSubdir, "controller.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("jobs")).Put([]byte("jk-1"), []byte("{\"id\": \"\x16"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := pocketRun(t, bin, base, "", "controller", "--insecure", "--listen", "127.0.0.1:0", "--data-dir", data)
	if code != 1 || !strings.Contains(errOut, "corrupted") || ctlReady.MatchString(out) {
		t.Fatalf("exit %d; stdout %q; stderr %q: want exit 1, the corruption named, no \"serving on\"", code, out, errOut)
	}
}
