package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/internal/nettest"
)

// TestDataCommandsNameAMissingController: with no controller at the
// address, ls, get, put and rm fail with the same hint as status (where
// the address came from, how to start a cluster), and --insecure is
// honoured when POCKET_TLS_DIR is set. Before, they waited 15 s for an
// "i/o timeout" with no hint, and with POCKET_TLS_DIR set they used TLS
// whatever --insecure said.
func TestDataCommandsNameAMissingController(t *testing.T) {
	bin := buildPocketBinary(t)
	addr := nettest.RefusedAddr(t)
	dir := t.TempDir()
	env := cleanEnv("HOME="+dir, "POCKET_CONTROLLER="+addr, "POCKET_TOKEN="+strings.Repeat("ab", 49),
		"POCKET_TLS_DIR="+filepath.Join(dir, "no-such-tls-dir"))
	for _, args := range [][]string{
		{"ls", "--insecure", "job-1"},
		{"get", "--insecure", "job-1", "k"},
		{"put", "--insecure", "job-1", "k", "-"},
		{"rm", "--insecure", "job-1", "k"},
	} {
		_, errOut, code := pocketRun(t, bin, env, "v", args...)
		if code == 0 || !strings.Contains(errOut, "no controller at "+addr+", from $POCKET_CONTROLLER") {
			t.Errorf("pocket %s with no controller: exit %d, %q; want the no-controller hint", strings.Join(args, " "), code, errOut)
		}
	}
}
