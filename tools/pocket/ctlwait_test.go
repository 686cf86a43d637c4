package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/nettest"
)

// TestCommandsGiveUpOnARefusingController (new user's trial): every
// command that asks a controller waits ctlRetryFor (3 s for one address)
// for one that refuses connections, then says so. Before, `job register`
// with a size hint (its check of the hints against the cluster's status),
// `job credential` and `job deregister` (opening the job) waited a
// minute, and `node drain` 15 s; pocketRun's 30 s bound killed the first
// three here. Then `job register` with a hint and `job deregister` waited
// twice (6 s), once for each of their calls.
func TestCommandsGiveUpOnARefusingController(t *testing.T) {
	bin := buildPocketBinary(t)
	addr := nettest.RefusedAddr(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("k", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv("POCKET_CONTROLLER="+addr, "POCKET_TOKEN="+strings.Repeat("0", 98))
	for _, args := range [][]string{
		{"job", "register", "--insecure", "w", "--capacity", "1MiB"},
		{"job", "register", "--insecure", "w", "--peak-mbps", "100"},
		{"job", "credential", "--insecure", "w-1"},
		{"job", "deregister", "--insecure", "w-1"},
		{"node", "drain", "--insecure", "--secret-file", secret, "--wait=false", "127.0.0.1:1"},
	} {
		start := time.Now()
		_, errOut, code := pocketRun(t, bin, env, "", args...)
		took := time.Since(start)
		if code != 1 || !strings.Contains(errOut, "connection refused") {
			t.Errorf("pocket %s: exit %d after %v, stderr %q; want exit 1 naming the refusal", strings.Join(args, " "), code, took.Round(time.Millisecond), errOut)
			continue
		}
		// 3 s of retries, with room for a loaded machine; the old code
		// took 15 s or more, and then 6 s for two calls' waits in a row
		// (job register with a hint, job deregister).
		if took > 5*time.Second {
			t.Errorf("pocket %s: gave up after %v; want about 3 s", strings.Join(args, " "), took.Round(time.Millisecond))
		}
	}
}
