package bench

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/nettest"
)

// checkRun asserts a clean run: operations measured, no errors, every
// operation in the histogram, and the server saw at least as many requests.
func checkRun(t *testing.T, st *Stats, err error, srv *fakeServer) {
	t.Helper()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st.Ops == 0 || st.Errors != 0 || st.FirstError != "" {
		t.Fatalf("ops %d errors %d first %q", st.Ops, st.Errors, st.FirstError)
	}
	if st.Latency.Count() != st.Ops {
		t.Fatalf("histogram holds %d values for %d ops", st.Latency.Count(), st.Ops)
	}
	if p50 := st.Latency.Quantile(0.5); p50 <= 0 || p50 > time.Second {
		t.Fatalf("p50 %v is not a plausible loopback latency", p50)
	}
	if srv != nil && srv.requests.Load() < int64(st.Ops) {
		t.Fatalf("server saw %d requests, generator counted %d ops", srv.requests.Load(), st.Ops)
	}
}

func TestRunAgainstFakeRedis(t *testing.T) {
	srv := startFake(t, serveRESP)
	for _, cfg := range []Config{
		{Op: Put, Size: 100, Conns: 4, Pipeline: 1, Duration: 300 * time.Millisecond, Keys: 500},
		// Keep: the preloaded keys stay for the check below.
		{Op: Get, Size: 1 << 10, Conns: 4, Pipeline: 8, Duration: 400 * time.Millisecond, Warmup: 100 * time.Millisecond, Keys: 500, Keep: true},
	} {
		st, err := Run(context.Background(), cfg, RESPDialer(srv.addr(), cfg.Size))
		checkRun(t, st, err, srv)
	}
	// The get run preloaded every key with a value of the right size.
	v, ok := srv.get(NewKeyspace("b1024-", 500).Key(499))
	if !ok || len(v) != 1<<10 {
		t.Fatalf("last key preloaded: %v, %d bytes", ok, len(v))
	}
}

func TestRunAgainstFakeNode(t *testing.T) {
	srv := startFake(t, serveWire)
	cfg := Config{Op: Get, Size: 4 << 10, Conns: 3, Pipeline: 4, Duration: 300 * time.Millisecond, Keys: 200, Keep: true}
	dial := PocketDialer(srv.addr(), client.ConnOptions{Job: []byte("bench")}, cfg.Size)
	st, err := Run(context.Background(), cfg, dial)
	checkRun(t, st, err, srv)
	if _, ok := srv.get([]byte("bench\x00b4096-00000007")); !ok {
		t.Fatal("the node fake holds no key under job bench")
	}
}

func TestWrongResponsesAreCounted(t *testing.T) {
	for name, serve := range map[string]func(*fakeServer, net.Conn){"resp": serveRESP, "wire": serveWire} {
		srv := startFake(t, serve)
		cfg := Config{Op: Get, Size: 64, Conns: 2, Pipeline: 2, Duration: 200 * time.Millisecond, Keys: 10}
		dial := RESPDialer(srv.addr(), cfg.Size)
		if name == "wire" {
			dial = PocketDialer(srv.addr(), client.ConnOptions{Job: []byte("bench")}, cfg.Size)
		}
		srv.corrupt.Store(true) // gets answer 63 bytes; the preload's puts are fine
		st, err := Run(context.Background(), cfg, dial)
		if err != nil {
			t.Fatalf("%s: Run: %v", name, err)
		}
		if st.Errors == 0 || st.Ops != 0 || st.FirstError == "" {
			t.Fatalf("%s: ops %d errors %d first %q; want only errors", name, st.Ops, st.Errors, st.FirstError)
		}
	}
}

// TestWrongRepliesKeepTheStream checks a missing key and a value of the
// wrong size (larger than expected) are wrong responses, and the connection
// stays in step after them.
func TestWrongRepliesKeepTheStream(t *testing.T) {
	srv := startFake(t, serveRESP)
	srv.put([]byte("big"), NewValue(5000))
	srv.put([]byte("ok"), NewValue(10))
	c, err := RESPDialer(srv.addr(), 10)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, key := range []string{"absent", "big", "ok"} {
		c.SendGet([]byte(key))
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"absent", "big"} {
		if err := c.Recv(); !errors.Is(err, ErrResponse) {
			t.Fatalf("Recv of %q = %v, want ErrResponse", key, err)
		}
	}
	if err := c.Recv(); err != nil {
		t.Fatalf("Recv of a good value after wrong ones: %v", err)
	}
}

func TestStuckServerEndsTheRun(t *testing.T) {
	srv := startFake(t, serveRESP)
	srv.stall.Store(true)
	cfg := Config{Op: Put, Size: 10, Conns: 2, Pipeline: 1, Duration: 100 * time.Millisecond, Grace: 200 * time.Millisecond,
		StallLimit: time.Second}
	start := time.Now()
	st, err := Run(context.Background(), cfg, RESPDialer(srv.addr(), cfg.Size))
	if err == nil || st == nil || st.Ops != 0 {
		t.Fatalf("Run against a silent server: %v, %+v; want a connection error and no ops", err, st)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run took %v; the grace period should have ended it", d)
	}
	if !strings.Contains(st.CleanupError, "no request succeeded") || !strings.Contains(st.CleanupNote(), "the rest are left") {
		t.Errorf("cleanup against a silent server: %q, %q; want it given up after the stall limit, said", st.CleanupError, st.CleanupNote())
	}
}

// TestStuckServerEndsThePreload: a get run's preload against a server
// that accepts and never answers ends with ErrStalled after the stall
// limit. Before, it waited for as long as the server kept the connection
// (a new user's `pocket bench --addr` at a Redis port).
func TestStuckServerEndsThePreload(t *testing.T) {
	srv := startFake(t, serveRESP)
	srv.stall.Store(true)
	cfg := Config{Op: Get, Size: 10, Keys: 64, Conns: 2, Pipeline: 1, Duration: 100 * time.Millisecond, Grace: 200 * time.Millisecond,
		StallLimit: time.Second}
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cfg, RESPDialer(srv.addr(), cfg.Size))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "preload") {
			t.Fatalf("Run against a silent server: %v; want the preload stalled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the preload against a silent server did not end 30 s after a stall limit of 1 s")
	}
}

func TestDialFailure(t *testing.T) {
	addr := nettest.RefusedAddr(t)
	cfg := Config{Op: Put, Size: 10, Conns: 1, Pipeline: 1, Duration: time.Second}
	if _, err := Run(context.Background(), cfg, RESPDialer(addr, 10)); err == nil {
		t.Fatal("Run against a closed port succeeded")
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Op: 0, Conns: 1, Pipeline: 1, Duration: time.Second},
		{Op: Get, Conns: 0, Pipeline: 1, Duration: time.Second},
		{Op: Get, Conns: 1, Pipeline: 0, Duration: time.Second},
		{Op: Get, Conns: 1, Pipeline: 1, Duration: 0},
		{Op: Get, Size: -1, Conns: 1, Pipeline: 1, Duration: time.Second},
	} {
		if _, err := Run(context.Background(), cfg, nil); err == nil {
			t.Errorf("Run(%+v) accepted a bad config", cfg)
		}
	}
}

// TestBatchDoesNotAllocate checks the generator's own loop allocates
// nothing per request.
func TestBatchDoesNotAllocate(t *testing.T) {
	for _, op := range []Op{Get, Put} {
		cfg := Config{Op: op, Size: 1024, Conns: 1, Pipeline: 16, Duration: time.Second}
		if err := cfg.normalize(); err != nil {
			t.Fatal(err)
		}
		w := &worker{conn: &nullConn{}, keys: NewKeyspace("k", 1000), value: NewValue(1024), cfg: &cfg, rng: newRNG(1)}
		allocs := testing.AllocsPerRun(200, func() {
			if err := w.batch(time.Now(), true); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%v batch allocates %.1f times", op, allocs)
		}
		if w.ops != 201*16 { // AllocsPerRun runs once more to warm up
			t.Fatalf("%v: %d ops recorded, want %d", op, w.ops, 201*16)
		}
	}
}

// freePort finds a loopback port that is free right now.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRunAgainstRedis drives a real redis-server when one is installed.
func TestRunAgainstRedis(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH; the RESP driver is covered by the fake above")
	}
	port := freePort(t)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("redis-server did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cfg := Config{Op: Get, Size: 1 << 10, Conns: 4, Pipeline: 4, Duration: 300 * time.Millisecond, Keys: 1000}
	st, err := Run(context.Background(), cfg, RESPDialer(addr, cfg.Size))
	checkRun(t, st, err, nil)
}

func TestLoopback(t *testing.T) {
	st, err := Loopback(context.Background(), 200*time.Millisecond, 50*time.Millisecond, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes <= 0 || st.MBPerSec() <= 0 {
		t.Fatalf("loopback moved %d bytes", st.Bytes)
	}
	if r := st.Result("loopback"); r.Store() != "tcp" || r.MBPerSec != st.MBPerSec() {
		t.Fatalf("loopback result %+v", r)
	}
}

// A window too short for any read to complete in it (a busy machine, or
// here a nanosecond) still gives a rate: the first read after it over the
// time it took, never zero.
func TestLoopbackTinyWindow(t *testing.T) {
	st, err := Loopback(context.Background(), time.Nanosecond, 0, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes <= 0 || st.Duration <= 0 || !(st.MBPerSec() > 0) {
		t.Fatalf("tiny window measured %d bytes in %v (%v MB/s)", st.Bytes, st.Duration, st.MBPerSec())
	}
}

func BenchmarkGeneratorBatch(b *testing.B) {
	cfg := Config{Op: Get, Size: 1024, Conns: 1, Pipeline: 16, Duration: time.Second}
	cfg.normalize()
	w := &worker{conn: &nullConn{}, keys: NewKeyspace("k", 100000), value: NewValue(1024), cfg: &cfg, rng: newRNG(1)}
	b.ReportAllocs()
	for b.Loop() {
		w.batch(time.Now(), true)
	}
}

// TestCleanupNoteSaysWhereKeysWent (new-user trial): a fresh --controller
// job's run that failed in its preload said it "kept the 255 key(s) it
// wrote", though the job's deregistration deleted them; it now says they
// went with the job. --keep still says kept.
func TestCleanupNoteSaysWhereKeysWent(t *testing.T) {
	st := &Stats{Written: 255, Config: Config{Keep: true, Gone: "with the job, deregistered"}}
	if got, want := st.CleanupNote(), "the 255 key(s) it wrote went with the job, deregistered"; got != want {
		t.Errorf("fresh job: %q, want %q", got, want)
	}
	st.Config.Gone = ""
	if got, want := st.CleanupNote(), "kept the 255 key(s) it wrote"; got != want {
		t.Errorf("--keep: %q, want %q", got, want)
	}
}
