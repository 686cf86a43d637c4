package main

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/perf/bench"
)

// startSmallNode starts, in this process, a standalone node (it serves any
// job) with size bytes of DRAM, as `pocket node --dram SIZE` does, and
// returns its address; the test's end stops it.
func startSmallNode(t *testing.T, size int64) string {
	t.Helper()
	d, err := dataplane.NewDRAM(size, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nd, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 1},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nd.Close()
		d.Close()
	})
	return nd.Addr().String()
}

// runBenchCaptured runs `pocket bench ARGS` and returns its stdout, its
// stderr and its exit status.
func runBenchCaptured(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	t.Setenv(envToken, "")
	t.Setenv(envTLSDir, "")
	stderr, _ = captured(t, &os.Stderr, func() int {
		stdout, code = stdoutOf(t, func() int { return runBench(args) })
		return code
	})
	return stdout, stderr, code
}

// TestBenchDefaultKeysFitTheNode (a new user's trial): `pocket bench
// --addr` without --keys against a small node puts no more than about
// half its free capacity. Before, the default was 256MiB/SIZE keys: a get
// run of 1 MiB values against a 256 MiB node (here 16 MiB) failed its
// preload "tier full" (a DRAM chunk adds overhead).
func TestBenchDefaultKeysFitTheNode(t *testing.T) {
	addr := startSmallNode(t, 16<<20)
	out, errOut, code := runBenchCaptured(t, "--addr", addr, "--op", "get", "--size", "1MiB", "--conns", "2",
		"--duration", "200ms", "--warmup", "0")
	if code != 0 || !strings.Contains(out, "keys 8 ") {
		t.Errorf("get of 1MiB values on a 16MiB node: exit %d, want 0 with 8 keys (half the node)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// TestBenchTierFullSaysKeys (a new user's trial): a run whose puts find
// the node full says what to do, fewer --keys (a count that fits) or a
// larger node; it said only "N wrong responses; first: ... tier full".
func TestBenchTierFullSaysKeys(t *testing.T) {
	addr := startSmallNode(t, 16<<20)
	for _, args := range [][]string{
		{"--op", "put", "--size", "64KiB", "--conns", "2", "--pipeline", "8", "--keys", "1024", "--warmup", "300ms"},
		{"--op", "get", "--size", "1MiB", "--conns", "2", "--keys", "64", "--warmup", "0"},
	} {
		out, errOut, code := runBenchCaptured(t, append([]string{"--addr", addr, "--duration", "200ms"}, args...)...)
		if code != 1 {
			t.Errorf("%q on a 16MiB node: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
		}
		for _, want := range []string{"tier full", "run with fewer keys (--keys ", "a larger node"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%q on a 16MiB node: stderr does not say %q:\n%s", args, want, errOut)
			}
		}
	}
}

// TestBenchTierFullSaysConns (a new user's trial): a put run whose keys
// fit but whose values in flight (connections x pipeline x size) do not
// fit beside them failed "tier full" and advised fewer keys, again and
// again; it now advises fewer connections, and a run with them passes.
// The default key count leaves room for the values in flight.
func TestBenchTierFullSaysConns(t *testing.T) {
	addr := startSmallNode(t, 16<<20)
	args := []string{"--addr", addr, "--duration", "300ms", "--warmup", "100ms", "--op", "put", "--size", "1MiB", "--keys", "4"}
	out, errOut, code := runBenchCaptured(t, append(args, "--conns", "20")...)
	if code != 1 || !strings.Contains(errOut, "fewer connections (--conns ") || strings.Contains(errOut, "fewer keys") {
		t.Fatalf("4 keys of 1MiB, 20 connections, on a 16MiB node: exit %d, want 1 advising fewer connections only\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if out, errOut, code := runBenchCaptured(t, append(args, "--conns", "2")...); code != 0 {
		t.Fatalf("4 keys of 1MiB, 2 connections: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	out, errOut, code = runBenchCaptured(t, "--addr", addr, "--duration", "300ms", "--warmup", "100ms", "--op", "put", "--size", "1MiB", "--conns", "4")
	if code != 0 {
		t.Fatalf("default keys, 4 connections of 1MiB puts on a 16MiB node: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// TestBenchKeysNoteWhenNothingMeasuredSucceeded (a new user's trial): a
// put run whose every measured put failed "tier full" printed "ops/s 0"
// above "deleted the 3,584 key(s) the run wrote", which reads as if the
// run had written them; they were the warm-up's (a get run's: the
// preload's).
func TestBenchKeysNoteWhenNothingMeasuredSucceeded(t *testing.T) {
	for _, c := range []struct {
		r       bench.Result
		want    string
		notWant string
	}{
		{bench.Result{Target: "pocket://n:1", Op: "put", Errors: 54456, WrittenKeys: 3584, Cleanup: bench.CleanupDeleted},
			"deleted the 3,584 key(s) the warm-up wrote (no measured put succeeded)", "the run wrote"},
		{bench.Result{Target: "pocket://n:1", Op: "get", Errors: 10, Preloaded: 8, WrittenKeys: 8, Cleanup: bench.CleanupKept},
			"kept the 8 key(s) the preload wrote (--keep; no measured get succeeded)", "the run wrote"},
		{bench.Result{Target: "pocket://n:1", Op: "put", Ops: 5, WrittenKeys: 3, Cleanup: bench.CleanupDeleted},
			"deleted the 3 key(s) the run wrote", "warm-up"},
	} {
		var b strings.Builder
		if err := c.r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), c.want) || strings.Contains(b.String(), c.notWant) {
			t.Errorf("%s run, %d ops: report\n%s\nwant %q, not %q", c.r.Op, c.r.Ops, b.String(), c.want, c.notWant)
		}
	}
}

// TestBenchValueLargerThanTheNodeSaysSize (a new user's trial): a put
// run of one key whose value is larger than the node's tier (20MiB on a
// 16MiB node) says the value is larger than the tier can hold, with the
// figures, and advises a smaller --size. Before: "N wrong responses;
// first: unexpected response: ... no space ...; run with fewer keys
// (--keys 1, 20MiB of values)", for a run of one key already.
func TestBenchValueLargerThanTheNodeSaysSize(t *testing.T) {
	addr := startSmallNode(t, 16<<20)
	out, errOut, code := runBenchCaptured(t, "--addr", addr, "--op", "put", "--size", "20MiB", "--keys", "1", "--conns", "1",
		"--duration", "300ms", "--warmup", "0")
	if code != 1 || !strings.Contains(errOut, "a value of 20MiB is larger than the node's dram tier can hold (16MiB in all") ||
		!strings.Contains(errOut, "smaller --size (at most ") || strings.Contains(errOut, "wrong responses") ||
		strings.Contains(errOut, "fewer keys") {
		t.Errorf("20MiB put on a 16MiB node: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1, the value larger than the tier, a smaller --size",
			code, out, errOut)
	}
}

// TestBenchJobTakesEnvController (a new user's trial): pocket bench --job
// J with $POCKET_CONTROLLER set and no --addr or --target runs through
// that controller, as the other commands: its address is checked as
// theirs, and without TLS credentials or --insecure the run is refused
// (not sent over plain TCP). Before, bench answered "give --addr HOST:PORT
// or --target SCHEME://HOST:PORT".
func TestBenchJobTakesEnvController(t *testing.T) {
	t.Setenv(envTLSDir, "")
	os.Unsetenv(envTLSDir)
	t.Setenv(envDataDir, t.TempDir())
	t.Setenv("POCKET_CONTROLLER", "127.0.0.1:7001")
	if _, err := benchTLSArgs([]string{"--job", "sort-7"}); !errors.Is(err, errNoTLS) {
		t.Errorf("--job through $POCKET_CONTROLLER without TLS credentials or --insecure: %v, want errNoTLS", err)
	}
	if _, err := benchTLSArgs([]string{"--job", "sort-7", "--addr", "127.0.0.1:7100"}); err != nil {
		t.Errorf("--job --addr (a node, no controller) without TLS credentials: %v", err)
	}
	t.Setenv("POCKET_CONTROLLER", "no-port")
	if _, err := benchCtlCheck([]string{"--job", "sort-7"}); err == nil || !strings.Contains(err.Error(), "$POCKET_CONTROLLER") {
		t.Errorf("--job through a malformed $POCKET_CONTROLLER: %v, want it named", err)
	}
	if _, err := benchCtlCheck([]string{"--job", "sort-7", "--addr", "127.0.0.1:7100"}); err != nil {
		t.Errorf("--job --addr with a malformed $POCKET_CONTROLLER (not used): %v", err)
	}
}
