package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var exportLine = regexp.MustCompile(`(?m)^\s*export (POCKET_[A-Z_]+)=(\S+)`)

// TestControllerInsecurePrintsItsExports: the export lines `pocket
// controller --insecure` prints, pasted into a clean shell, are all the
// next command needs. Before, it printed POCKET_CONTROLLER alone, and
// `pocket status` then refused for want of TLS credentials (a new user's
// trial); `pocket up --insecure` printed POCKET_INSECURE=1 too.
func TestControllerInsecurePrintsItsExports(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	_, _, out := pocketStart(t, bin, cleanEnv("HOME="+dir), ctlReady, "controller", "--insecure",
		"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "start nodes with") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	env := cleanEnv("HOME=" + dir)
	vars := map[string]bool{}
	for _, m := range exportLine.FindAllStringSubmatch(out.String(), -1) {
		env = append(env, m[1]+"="+m[2])
		vars[m[1]] = true
	}
	if !vars["POCKET_CONTROLLER"] || !vars["POCKET_INSECURE"] {
		t.Fatalf("exports printed: %v; want POCKET_CONTROLLER and POCKET_INSECURE in:\n%s", vars, out.String())
	}
	if _, errOut, code := pocketRun(t, bin, env, "", "status"); code != 0 {
		t.Fatalf("pocket status with the printed exports: exit %d: %s", code, errOut)
	}
}
