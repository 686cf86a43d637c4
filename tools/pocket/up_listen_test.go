package main

// A new user's `POCKET_ADDR=127.0.0.1:7420 make run` with the port taken
// failed with 'pocket: up: controller: listen tcp 127.0.0.1:7420: bind:
// address already in use', naming neither --listen nor POCKET_ADDR.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// takenAddr listens on a loopback port for the test and returns it.
func takenAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestControllerOnATakenAddressNamesListen: pocket up and pocket
// controller on an address another process listens on fail naming the
// address and --listen.
func TestControllerOnATakenAddressNamesListen(t *testing.T) {
	addr := takenAddr(t)
	for name, run := range map[string]func() int{
		"up": func() int {
			return runUp([]string{"--listen", addr, "--insecure", "--nodes", "1", "--log-level", "error"})
		},
		"controller": func() int {
			return runController([]string{"--listen", addr, "--insecure", "--log-level", "error"})
		},
	} {
		errOut, code := captured(t, &os.Stderr, run)
		if code == 0 || !strings.Contains(errOut, "address already in use") ||
			!strings.Contains(errOut, addr+" is taken: give the controller another address with --listen HOST:PORT") {
			t.Errorf("%s on a taken address: exit %d, stderr %q; want the address taken and --listen named", name, code, errOut)
		}
	}
}

// TestMakeRunOnATakenPortNamesPOCKET_ADDR: the demo `make run` starts
// (scripts/run-demo.sh) says which variable moves it when its port is
// taken.
func TestMakeRunOnATakenPortNamesPOCKET_ADDR(t *testing.T) {
	bin := buildPocketBinary(t)
	addr := takenAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", "scripts", "run-demo.sh"), bin)
	cmd.Env = cleanEnv("POCKET_ADDR="+addr, "DEMO_TLS=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err == nil || !strings.Contains(out.String(), "--listen HOST:PORT") ||
		!strings.Contains(out.String(), "make run: "+addr+" is taken: run the demo on another address with POCKET_ADDR=HOST:PORT make run") {
		t.Fatalf("run-demo.sh on a taken port: %v, output\n%s\nwant --listen and POCKET_ADDR named", err, out.String())
	}
}

// TestUpOnATakenNodeMetricsPortNamesMetricsBase: pocket up whose node
// /metrics port (--metrics-base PORT: node i on PORT+1+i) is taken fails
// before starting any node, naming the address and --metrics-base. Before,
// the node exited, up waited 15 s and said "0 of 2 nodes registered:
// context deadline exceeded" (a new user's trial).
func TestUpOnATakenNodeMetricsPortNamesMetricsBase(t *testing.T) {
	var taken string
	var base int
	for try := 0; taken == ""; try++ {
		if try == 20 {
			t.Skip("found no three free ports in a row")
		}
		addr := takenAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		if p < 3 || !portFree(p-2) || !portFree(p-1) {
			continue
		}
		taken, base = addr, p-2
	}
	errOut, code := captured(t, &os.Stderr, func() int {
		return runUp([]string{"--listen", "127.0.0.1:0", "--insecure", "--nodes", "2", "--dram", "16MiB", "--ephemeral",
			"--metrics-base", strconv.Itoa(base), "--log-level", "error"})
	})
	if code == 0 || !strings.Contains(errOut, "node 1's metrics") || !strings.Contains(errOut, taken+" is taken: give --metrics-base another port") {
		t.Fatalf("up with node 1's metrics port %s taken: exit %d, stderr %q; want the port and --metrics-base named", taken, code, errOut)
	}
}

// portFree reports whether nothing listens on the loopback port p.
func portFree(p int) bool {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
