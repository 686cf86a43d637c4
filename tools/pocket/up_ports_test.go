package main

import (
	"encoding/json"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestUpNodePorts: up --node-ports FIRST-LAST starts its nodes on the
// lowest free ports of the range, passing over one another program holds.
// Before, up's nodes took ports the kernel picked (a new user's trial,
// confined to a port range, could not use up at all).
func TestUpNodePorts(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	base := freePorts(t, 4)
	holdPort(t, base+1) // another program's
	ports := strconv.Itoa(base) + "-" + strconv.Itoa(base+3)
	_, _, out := pocketStart(t, bin, cleanEnv("HOME="+dir), upReady, "up", "--insecure", "--listen", "127.0.0.1:0",
		"--nodes", "2", "--dram", "16MiB", "--data-dir", filepath.Join(dir, "data"), "--node-ports", ports,
		"--max-bytes-per-client", "300MiB", "--max-mbps-per-client", "2000")
	want := regexp.MustCompile(`(?m)^  node 127\.0\.0\.1:` + strconv.Itoa(base+2) + `$`)
	awaitOutput(t, out, regexp.MustCompile(`(?m)^  node (127\.0\.0\.1:`+strconv.Itoa(base)+`)$`))
	if !want.MatchString(out.String()) || strings.Contains(out.String(), "node 127.0.0.1:"+strconv.Itoa(base+1)+"\n") {
		t.Fatalf("up --node-ports %s with %d held: nodes\n%s\nwant ports %d and %d", ports, base+1, out, base, base+2)
	}
	// The banner names the range in its add-a-node recipe, and the
	// quotas (a new user's check found neither).
	awaitOutput(t, out, regexp.MustCompile(`(each node added by hand needs its own --listen port outside them)`))
	outside := strconv.Itoa(base + 4)
	if b := out.String(); !strings.Contains(b, "take ports "+ports+" (--node-ports)") || !strings.Contains(b, "--listen 127.0.0.1:"+outside+" ") ||
		!strings.Contains(b, "outside them: "+outside+", then ") ||
		!strings.Contains(b, "allotment quota per client (a tenant over TLS, else an address): 300MiB and 2000 Mb/s") {
		t.Errorf("up's banner does not name the ports and the quotas:\n%s", b)
	}
}

// TestRegisterSaysItsNodesDidNotCome: on an autoscaling cluster whose
// --node-ports range another program holds, a registration whose hint
// wants a node the autoscaler cannot start is entered over the node there
// is, and job register says so (stderr, and --json note). Before, it said
// nothing, and the job ran past its node's bandwidth (a hostile trial).
func TestRegisterSaysItsNodesDidNotCome(t *testing.T) {
	bin := buildPocketBinary(t)
	dir := t.TempDir()
	base := freePorts(t, 2)
	holdPort(t, base+1) // another program's: the autoscaler's node finds no port
	env := cleanEnv("HOME=" + dir)
	_, ctl, _ := pocketStart(t, bin, env, upReady, "up", "--insecure", "--listen", "127.0.0.1:0", "--autoscale",
		"--nodes", "1", "--max-nodes", "2", "--node-mbps", "1000", "--dram", "16MiB", "--data-dir", filepath.Join(dir, "data"),
		"--node-ports", strconv.Itoa(base)+"-"+strconv.Itoa(base+1))
	env = append(env, "POCKET_CONTROLLER="+ctl)
	out, errOut, code := pocketRun(t, bin, env, "", "job", "register", "--insecure", "--json", "wide", "--peak-mbps", "1200")
	if code != 0 {
		t.Fatalf("job register: exit %d: %s %s", code, out, errOut)
	}
	var m jobMapJSON
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	const want = "the autoscaler could not add 1 node(s) it wanted for the job"
	if !strings.Contains(m.Note, want) || !strings.Contains(errOut, "note: "+want) || len(m.Nodes) != 1 {
		t.Errorf("job register of a hint whose node did not come: note %q, stderr %q, %d node(s); want the note, on 1 node", m.Note, errOut, len(m.Nodes))
	}
}

// holdPort listens on loopback port p until the test ends.
func holdPort(t *testing.T, p int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}
