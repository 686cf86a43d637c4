package main

import (
	"net"
	"regexp"
	"slices"
	"syscall"
	"testing"
	"time"
)

// exitLine is up's log line for a node that died unasked.
var exitLine = regexp.MustCompile(`level=WARN msg="orchestrator: node exited unasked[^"]*" .*\bid=\S+ addr=(\S+) pid=(\d+) status="signal: killed"`)

// TestUpLogsANodeThatDies: when one of pocket up's nodes dies (kill -9),
// up's log says so at warning level, with the node's address, pid and
// exit status. Before, up logged nothing: the node's values became
// unavailable with no word in the log of the process that ran it.
func TestUpLogsANodeThatDies(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	up := startUpGroup(t, bin, cleanEnv("HOME="+dir), "--listen", "127.0.0.1:0", "--insecure", "--nodes", "2",
		"--dram", "32MiB", "--log-level", "warn")
	kids := procChildren(t, up.cmd.Process.Pid)
	if len(up.nodes) != 2 || len(kids) != 2 {
		t.Fatalf("up lists %d nodes and has %d children:\n%s", len(up.nodes), len(kids), up.out)
	}
	if err := syscall.Kill(kids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	var m []string
	for m = exitLine.FindStringSubmatch(up.out.String()); m == nil; m = exitLine.FindStringSubmatch(up.out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("up's log does not say a node died:\n%s", up.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.Contains(up.nodes, m[1]) {
		t.Fatalf("the log names node %s, not one of up's %v", m[1], up.nodes)
	}
	if c, err := net.DialTimeout("tcp", m[1], time.Second); err == nil {
		c.Close()
		t.Fatalf("node %s, logged as dead, still listens", m[1])
	}
	if n := len(exitLine.FindAllString(up.out.String(), -1)); n != 1 {
		t.Fatalf("%d exits logged, want 1:\n%s", n, up.out)
	}
}
