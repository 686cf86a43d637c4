package main

import (
	"bufio"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketstore/pocket/telemetry/metrics"
)

// envAsPocket makes the test binary run as the pocket command, so `up`
// can start its nodes from it (orchestrator.Local runs this executable).
const envAsPocket = "POCKET_TEST_AS_POCKET"

func TestMain(m *testing.M) {
	if os.Getenv(envAsPocket) == "1" {
		os.Exit(runMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// freePorts returns a port p with p to p+n-1 free on loopback now. It
// looks below the kernel's ephemeral range (ip_local_port_range), where
// no connection's local port or listener on port 0 is placed between this
// check and the caller's bind: a run in the ephemeral range lost its first
// port to another test's connection in a CI run ("no free port left in
// the nodes' port range").
func freePorts(t *testing.T, n int) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	const base = 10000
	if low-n <= base {
		t.Skip("no ports below the ephemeral range")
	}
	for range 50 {
		p := base + rand.IntN(low-n-base)
		if portsFree(p, n) {
			return p
		}
	}
	t.Skip("no run of free loopback ports")
	return 0
}

// portsFree reports whether loopback ports p to p+n-1 can be bound now.
func portsFree(p, n int) bool {
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+i))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

var endpointLine = regexp.MustCompile(`^\s*(controller|node (\S+)) metrics on (http://\S+/metrics)$`)

// TestUpMetricsBase runs `pocket up --metrics-base` (this test binary as
// pocket) and scrapes every endpoint it prints: the controller's on the
// base port sees both nodes, and each node's, on the ports after it, serves
// its tier, connection and host figures.
func TestUpMetricsBase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	base := freePorts(t, 3)
	cmd := exec.Command(exe, "up", "--insecure", "--nodes", "2", "--dram", "32MiB", "--listen", "127.0.0.1:0",
		"--metrics-base", strconv.Itoa(base), "--data-dir", t.TempDir(), "--secret-file", t.TempDir()+"/secret")
	cmd.Env = append(os.Environ(), envAsPocket+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	endpoints := readEndpoints(t, out, done, cmd)
	ctl := endpoints["controller"]
	if ctl != "http://127.0.0.1:"+strconv.Itoa(base)+"/metrics" || len(endpoints) != 3 {
		t.Fatalf("endpoints %v, want the controller on port %d and two nodes", endpoints, base)
	}
	fams := scrapeUntil(t, ctl, func(f metrics.Families) bool {
		v, _ := f.Value(metrics.ControllerNodes, "state", "active")
		return v == 2
	})
	if fams == nil {
		t.Fatal("the controller's /metrics never showed 2 active nodes")
	}
	for who, url := range endpoints {
		if who == "controller" {
			continue
		}
		port, _ := strconv.Atoi(url[strings.LastIndex(url, ":")+1 : strings.LastIndex(url, "/")])
		if port <= base || port > base+2 {
			t.Errorf("%s serves metrics on port %d, want %d or %d", who, port, base+1, base+2)
		}
		f := scrapeUntil(t, url, func(f metrics.Families) bool { return f[metrics.CPUBusyPercent] != nil })
		if f == nil {
			t.Fatalf("%s: no host figures on %s", who, url)
		}
		if v, _ := f.Value(metrics.NodeTierCapacity, "tier", "dram"); v < 32<<20 {
			t.Errorf("%s: dram capacity %v, want 32 MiB", who, v)
		}
		if _, ok := f.Value(metrics.NodeConnections); !ok {
			t.Errorf("%s: no %s", who, metrics.NodeConnections)
		}
		if f.Find(metrics.NodeRequestDuration, "op", "get") == nil {
			t.Errorf("%s: no get latency histogram", who)
		}
	}
}

// readEndpoints reads up's output until its usage hint, collecting the
// metrics endpoints it printed by "controller" or "node ADDR"; then it
// drains the rest and closes done when up exits.
func readEndpoints(t *testing.T, out io.Reader, done chan struct{}, cmd *exec.Cmd) map[string]string {
	t.Helper()
	eps := map[string]string{}
	lines := make(chan string, 256) // up prints a few dozen lines; later ones may be dropped
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
		_ = cmd.Wait()
	}()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("up exited; endpoints so far %v", eps)
			}
			if m := endpointLine.FindStringSubmatch(line); m != nil {
				eps[m[1]] = m[3]
			}
			if strings.HasPrefix(line, "point the other commands") {
				return eps
			}
		case <-deadline:
			t.Fatalf("up did not come up in 60 s; endpoints so far %v", eps)
		}
	}
}

// scrapeUntil scrapes url until ok holds (10 s at most), nil if never.
func scrapeUntil(t *testing.T, url string, ok func(metrics.Families) bool) metrics.Families {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		f, err := metrics.Scrape(nil, url)
		if err == nil && ok(f) {
			return f
		}
	}
	return nil
}
