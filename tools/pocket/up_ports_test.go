package main

import (
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
	base := 0
	for p := 21000; p < 60000 && base == 0; p += 101 {
		free := true
		for q := p; q < p+4 && free; q++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if free = err == nil; free {
				ln.Close()
			}
		}
		if free {
			base = p
		}
	}
	if base == 0 {
		t.Skip("no free port range")
	}
	held, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+1)) // another program's
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
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
