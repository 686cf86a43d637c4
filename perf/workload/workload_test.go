package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// small is the size of each test run: 4 MiB with 4 workers (the param
// server's model is smaller: its Size is the model).
func small(name string) Spec {
	s := Spec{Workers: 4, Size: 4 << 20, Seed: 7}
	switch name {
	case "paramserver":
		s.Size, s.Rounds = 8<<10, 5
	}
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func runAll(t *testing.T, tgt Target, o Options) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			r, err := Run(testCtx(t), name, tgt, small(name), o)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Verified {
				t.Fatalf("not verified: %s", r.VerifyError)
			}
			if r.TotalSeconds <= 0 || r.BytesMoved <= 0 {
				t.Fatalf("total %v s, %d bytes moved", r.TotalSeconds, r.BytesMoved)
			}
			if (name == "sort") != (r.ShuffleSeconds != nil) {
				t.Fatalf("shuffle_seconds %v for %s", r.ShuffleSeconds, name)
			}
		})
	}
}

func TestWorkloadsPocket(t *testing.T) {
	runAll(t, nodes(t, 3, 128<<20), Options{})
}

func TestWorkloadsFakeRedis(t *testing.T) {
	f, tgt := startFakeRedis(t)
	runAll(t, tgt, Options{})
	if n := f.len(); n != 0 {
		t.Fatalf("%d keys left after the runs", n)
	}
}

// TestWorkloadsShardedRedis runs every workload over three Redis shards
// and checks that each shard holds keys while they run, as ShardOf says.
func TestWorkloadsShardedRedis(t *testing.T) {
	var fakes []*fakeRedis
	tgt := Target{Kind: KindRedis}
	for range 3 {
		f, one := startFakeRedis(t)
		fakes = append(fakes, f)
		tgt.Addrs = append(tgt.Addrs, one.Addrs...)
	}
	if tgt.String() != "redis x3" {
		t.Errorf("three shards are named %q in reports", tgt.String())
	}
	runAll(t, tgt, Options{})
	ctx := testCtx(t)
	be, err := Open(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	for i := range 30 {
		key := fmt.Sprintf("shard-test-%d", i)
		if err := be.Put(ctx, key, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, ok := fakes[ShardOf(key, 3)].get(key); !ok {
			t.Fatalf("%s is not on shard %d", key, ShardOf(key, 3))
		}
		if v, err := be.Get(ctx, key, nil); err != nil || len(v) != 1 || v[0] != byte(i) {
			t.Fatalf("get %s: %v %v", key, v, err)
		}
	}
	for i, f := range fakes {
		if f.len() == 0 {
			t.Errorf("shard %d holds none of 30 keys", i)
		}
	}
}

func TestWorkloadsRealRedis(t *testing.T) {
	tgt := startRedisServer(t)
	runAll(t, tgt, Options{})
}

// TestSortMovesWhatItShould: the map phase reads the input and writes it
// again; the reduce phase reads it and writes it again.
func TestSortMovesWhatItShould(t *testing.T) {
	s := small("sort")
	r, err := Run(testCtx(t), "sort", nodes(t, 2, 128<<20), s, Options{})
	if err != nil || !r.Verified {
		t.Fatalf("%v %s", err, r.VerifyError)
	}
	if want := 4 * records(s) * RecordSize; r.BytesMoved != want {
		t.Fatalf("bytes moved %d, want %d", r.BytesMoved, want)
	}
	if *r.ShuffleSeconds > r.TotalSeconds {
		t.Fatalf("shuffle %v s longer than total %v s", *r.ShuffleSeconds, r.TotalSeconds)
	}
}

// corruptions names, per workload, the output key a test corrupts after
// the phase that writes it, and where in the value.
var corruptions = map[string]struct {
	phase, key string
	off        int
}{
	"sort":        {"reduce", "out/1", 150},        // a payload byte: only the checksum can tell
	"sort-key":    {"reduce", "out/2", 1000 - 100}, // a key byte: order or range breaks
	"mapreduce":   {"reduce", "total", 3},          // a digit or word of the total
	"paramserver": {"train", "model/0", 5},         // a model word
	"statechain":  {"chain", "state/3", 100},       // the final state
}

func TestCorruptOutputNotVerified(t *testing.T) {
	tgt := nodes(t, 2, 128<<20)
	for name, c := range corruptions {
		t.Run(name, func(t *testing.T) {
			wl, _, _ := strings.Cut(name, "-")
			o := Options{AfterPhase: func(ctx context.Context, phase string, be Backend, s Spec) error {
				if phase != c.phase {
					return nil
				}
				return flipByte(ctx, be, key(s, "%s", c.key), c.off)
			}}
			r, err := Run(testCtx(t), wl, tgt, small(wl), o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Verified || r.VerifyError == "" {
				t.Fatalf("corrupted %s verified (%q)", c.key, r.VerifyError)
			}
			t.Log(r.VerifyError)
		})
	}
}

// TestSubprocessWorkers runs a sort with every task in its own process:
// this test binary, re-executed as a worker (see TestMain).
func TestSubprocessWorkers(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	t.Setenv(workerEnv, "1")
	o := Options{Launcher: Subprocess{Exe: exe}}
	for _, name := range []string{"sort", "statechain"} {
		r, err := Run(testCtx(t), name, nodes(t, 2, 128<<20), small(name), o)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Verified {
			t.Fatalf("%s not verified: %s", name, r.VerifyError)
		}
	}
}

func TestWorkerFailureFailsRun(t *testing.T) {
	tgt := Target{Kind: KindRedis, Addrs: []string{"127.0.0.1:" + freePort(t)}} // nothing listens there
	_, err := Run(testCtx(t), "statechain", tgt, small("statechain"), Options{})
	if err == nil {
		t.Fatal("run against a dead store succeeded")
	}
}

func TestResultJSONFields(t *testing.T) {
	r, err := Run(testCtx(t), "sort", nodes(t, 1, 64<<20), Spec{Workers: 2, Size: 1 << 20}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"total_seconds", "shuffle_seconds", "bytes_moved", "verified"} {
		if _, ok := m[f]; !ok {
			t.Errorf("no %q in %s", f, b)
		}
	}
	if m["verified"] != true {
		t.Errorf("verified = %v", m["verified"])
	}
}

func TestUnknownWorkload(t *testing.T) {
	if _, err := Run(context.Background(), "nope", Target{}, Spec{Workers: 1}, Options{}); err == nil {
		t.Fatal("no error for an unknown workload")
	}
}

// startRedisServer starts redis-server on a free loopback port, or skips.
func startRedisServer(t *testing.T) Target {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	port := freePort(t)
	cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	tgt := Target{Kind: KindRedis, Addrs: []string{"127.0.0.1:" + port}}
	r := NewRedis(tgt.Addrs[0], 1)
	defer r.Close()
	for range 100 {
		if _, err := r.Exists(context.Background(), "x"); err == nil {
			return tgt
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
	return tgt
}

// freePort finds a loopback port nobody listens on (for servers that
// cannot be told to pick one themselves).
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
