package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpLogLinesNameTheirProcess checks README "Logs": every log line
// names its process (controller=ADDR or node=ADDR). A new user's trial of
// `pocket up --data-dir --metrics-base` restarted on its state read
// `msg="controller: state restored" jobs=0 nodes=5 ...` without
// controller= (logged while the controller loaded its state, before its
// port was bound), and three bare "metrics on http://..." lines, one a
// node, that did not say which node.
func TestUpLogLinesNameTheirProcess(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	base := freePorts(t, 2)
	env := cleanEnv("HOME=" + filepath.Join(dir, "home"))
	args := []string{"--insecure", "--nodes", "1", "--dram", "32MiB", "--data-dir", filepath.Join(dir, "data"),
		"--metrics-base", strconv.Itoa(base)}
	up := startUpGroup(t, bin, env, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	registerMap(t, bin, append(env, "POCKET_CONTROLLER="+up.ctl), "logs") // state to restore
	if err := syscall.Kill(-up.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-up.exited
	awaitGone(t, "after a SIGKILL of up's process group", up.nodes)
	up2 := startUpGroup(t, bin, env, append([]string{"--listen", up.ctl}, args...)...)
	// The node's own lines come on up's stderr after up's banner.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if strings.Count(up2.out.String(), "metrics on http://") >= 3 {
			break
		}
	}
	out := up2.out.String()
	if !strings.Contains(out, "state restored") {
		t.Fatalf("the restarted up logged no restore:\n%s", out)
	}
	for line := range strings.SplitSeq(out, "\n") {
		switch {
		case strings.Contains(line, "level=") && !strings.Contains(line, "controller=") && !strings.Contains(line, "node="):
			t.Errorf("log line names no process: %s", line)
		case strings.HasPrefix(strings.TrimSpace(line), "metrics on"):
			t.Errorf("metrics line names no process: %s", line)
		}
	}
	if !strings.Contains(out, "node "+up2.nodes[0]+" metrics on http://127.0.0.1:"+strconv.Itoa(base+1)) {
		t.Errorf("the node does not name itself on its metrics line:\n%s", out)
	}
}
