package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeNamesWhereItsControllerCameFrom: a node given its controller by
// $POCKET_CONTROLLER alone, without the cluster secret, is told that
// variable needs the secret. Before, the error named --controller, which
// a new user's trial had not given.
func TestNodeNamesWhereItsControllerCameFrom(t *testing.T) {
	bin, dir := buildPocketBinary(t), t.TempDir()
	env := cleanEnv("HOME="+filepath.Join(dir, "home"), "POCKET_CONTROLLER=127.0.0.1:1")
	code, _, msg := runBrieflyOut(t, bin, env, dir, []string{"node", "--insecure", "--listen", "127.0.0.1:0", "--dram", "16MiB"})
	if code != 1 || !strings.Contains(msg, "$POCKET_CONTROLLER (127.0.0.1:1) needs the cluster secret") || strings.Contains(msg, "--controller needs") {
		t.Fatalf("node with $POCKET_CONTROLLER and no secret: exit %d, stderr %q", code, msg)
	}
}
