// Package etcdtest starts a real, single-member etcd server for tests: the
// etcd binary (Debian's etcd-server package) on loopback, on free ports,
// with a data directory under the test's temporary directory, stopped when
// the test ends.
//
// Where the binary is missing, Start skips the test with a message saying
// what to install, unless the environment variable POCKET_REQUIRE_ETCD is
// "1" (CI sets it): then the test fails, so a CI run never passes by
// skipping.
package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// EnvRequire is the environment variable that turns a missing etcd binary
// from a skip into a failure when set to "1".
const EnvRequire = "POCKET_REQUIRE_ETCD"

// Binary is the name of the etcd executable, looked up on PATH.
const Binary = "etcd"

// Options configures Start. Zero fields take etcd's defaults.
type Options struct {
	// MaxTxnOps is etcd's --max-txn-ops: the most operations one Txn may
	// hold (etcd's default 128).
	MaxTxnOps int
	// MaxRequestBytes is etcd's --max-request-bytes (default 1.5 MiB).
	MaxRequestBytes int
}

// Server is a running etcd.
type Server struct {
	// ClientURL is the URL clients connect to (http://127.0.0.1:PORT).
	ClientURL string

	cmd  *exec.Cmd
	log  *bytes.Buffer
	once sync.Once
	done chan struct{} // closed when the process has exited
}

// Endpoints is ClientURL as a clientv3 endpoint list.
func (s *Server) Endpoints() []string { return []string{s.ClientURL} }

// Start starts etcd and waits until it reports healthy; it is stopped when
// t ends. It skips t (or fails it, with POCKET_REQUIRE_ETCD=1) when the
// binary is not installed.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	bin := lookBinary(t)
	var lastErr error
	// Free ports are found by binding and releasing them, so another
	// process may take one first: try again on new ports.
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(bin, t.TempDir(), opt)
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		lastErr = err
	}
	t.Fatalf("etcdtest: %v", lastErr)
	return nil
}

// lookBinary finds etcd on PATH, or skips or fails t.
func lookBinary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err == nil {
		return bin
	}
	msg := "etcd not installed: apt-get install etcd-server"
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("%s (%s=1 forbids skipping: %v)", msg, EnvRequire, err)
		return ""
	}
	t.Skipf("%s (set %s=1 to fail instead of skipping)", msg, EnvRequire)
	return ""
}

// start runs one etcd process and waits for it to be healthy.
func start(bin, dir string, opt Options) (*Server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	args := []string{
		"--name", "test",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test=" + peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "warn",
	}
	if opt.MaxTxnOps > 0 {
		args = append(args, "--max-txn-ops", strconv.Itoa(opt.MaxTxnOps))
	}
	if opt.MaxRequestBytes > 0 {
		args = append(args, "--max-request-bytes", strconv.Itoa(opt.MaxRequestBytes))
	}
	s := &Server{ClientURL: client, log: &bytes.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	// Its own process group: a signal to the test's group does not
	// reach it, and it never outlives the test by holding its pipes.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	if err := s.waitHealthy(20 * time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%s on %s: %w; its log:\n%s", bin, client, err, s.log.String())
	}
	return s, nil
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHealthy polls etcd's /health endpoint until it answers healthy, the
// process exits, or the limit passes.
func (s *Server) waitHealthy(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		if healthy(ctx, s.ClientURL) {
			return nil
		}
		select {
		case <-s.done:
			return errors.New("exited before it was healthy")
		case <-ctx.Done():
			return fmt.Errorf("not healthy after %v", limit)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// healthy reports whether GET url/health answers {"health":"true"}.
func healthy(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && bytes.Contains(buf.Bytes(), []byte(`"health":"true"`))
}

// Stop terminates etcd (SIGTERM, then SIGKILL after 5 s) and waits for it.
// It is safe to call more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	})
}

// Client returns a client of s, closed when t ends.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("etcdtest: client of %s: %v", s.ClientURL, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
