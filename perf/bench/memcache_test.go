package bench

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startMemcached runs /usr/bin/memcached (or the one on PATH) on a free
// loopback port, TCP only, for the test's life, and returns its address.
// Without memcached the test is skipped, saying how to get it.
func startMemcached(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("memcached")
	if err != nil {
		t.Skip("memcached not on PATH (Debian: apt-get install memcached): the memcache driver is tested only against a real memcached")
	}
	port := freePort(t)
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-t", "2", "-m", "64", "-I", "2m"}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root without -u.
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "-u", u.Username)
	}
	cmd := exec.Command(bin, args...)
	var log strings.Builder
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if i == 250 {
			t.Fatalf("memcached did not listen on %s: %v; its log: %s", addr, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunAgainstMemcached(t *testing.T) {
	addr := startMemcached(t)
	for _, cfg := range []Config{
		{Op: Put, Size: 1 << 10, Conns: 4, Pipeline: 8, Duration: 200 * time.Millisecond, Keys: 1000},
		{Op: Get, Size: 1 << 10, Conns: 4, Pipeline: 8, Duration: 200 * time.Millisecond, Keys: 1000},
		{Op: Get, Size: 1 << 20, Conns: 2, Pipeline: 1, Duration: 200 * time.Millisecond, Keys: 8},
	} {
		st, err := Run(context.Background(), cfg, MemcacheDialer(addr, cfg.Size))
		checkRun(t, st, err, nil)
	}
}

// dialMemcache opens one driver connection built for values of size bytes.
func dialMemcache(t *testing.T, addr string, size int) Conn {
	t.Helper()
	c, err := MemcacheDialer(addr, size)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends one request and returns its Recv error.
func roundTrip(t *testing.T, c Conn, send func() error) error {
	t.Helper()
	if err := send(); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	return c.Recv()
}

// A miss and a value of the wrong size are wrong responses, and the
// stream stays in step: the next request is answered correctly.
func TestMemcachedWrongResponsesKeepTheStream(t *testing.T) {
	addr := startMemcached(t)
	c := dialMemcache(t, addr, 20)
	key, short := []byte("k-short"), []byte("0123456789")
	if err := roundTrip(t, c, func() error { return c.SendPut(key, short) }); err != nil {
		t.Fatalf("put: %v", err)
	}
	err := roundTrip(t, c, func() error { return c.SendGet(key) })
	if !errors.Is(err, ErrResponse) || !strings.Contains(err.Error(), "10 bytes, want 20") {
		t.Fatalf("get of a 10-byte value on a 20-byte driver: %v", err)
	}
	err = roundTrip(t, c, func() error { return c.SendGet([]byte("k-missing")) })
	if !errors.Is(err, ErrResponse) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("get of a missing key: %v", err)
	}
	right := []byte("01234567890123456789")
	if err := roundTrip(t, c, func() error { return c.SendPut(key, right) }); err != nil {
		t.Fatalf("put after wrong responses: %v", err)
	}
	if err := roundTrip(t, c, func() error { return c.SendGet(key) }); err != nil {
		t.Fatalf("get after wrong responses: %v", err)
	}
}

func TestMemcacheRefusesBadKeys(t *testing.T) {
	c := newMemcacheConn(nil, 8)
	for _, k := range []string{"", "a b", "a\r\nb", strings.Repeat("k", maxMemcacheKey+1)} {
		if err := c.SendGet([]byte(k)); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	if c.w.Buffered() != 0 {
		t.Fatalf("refused keys left %d bytes buffered", c.w.Buffered())
	}
}

// Malformed replies are protocol errors (the stream is out of step), never
// wrong responses that the generator would count and go on from.
func TestMemcacheMalformedReplies(t *testing.T) {
	for _, tc := range []struct {
		op    Op
		reply string
	}{
		{Get, "VA x\r\n"},
		{Get, "VA 99999999\r\n"},
		{Get, "VA 4\r\nabcdXY"},
		{Get, "HD\r\n"},
		{Put, "VA 4\r\n"},
		{Put, "STORED\n"},
	} {
		server, client := net.Pipe()
		go func() { server.Write([]byte(tc.reply)); server.Close() }()
		c := newMemcacheConn(client, 4)
		c.sent.push(tc.op)
		err := c.Recv()
		client.Close()
		if err == nil || errors.Is(err, ErrResponse) {
			t.Errorf("%v answered %q: %v, want a protocol error", tc.op, tc.reply, err)
		}
	}
}
