package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

func TestParseArgsSizesAndDurations(t *testing.T) {
	o, err := ParseArgs(strings.Fields("--addr 127.0.0.1:7000 --op put --size 1MiB --conns 8 --pipeline 16 --duration 1500ms --warmup 2s --keys 77"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.Config
	if o.Mode != ModeRun || o.Store != "pocket" || o.Addr != "127.0.0.1:7000" || c.Op != Put || c.Size != 1<<20 ||
		c.Conns != 8 || c.Pipeline != 16 || c.Duration != 1500*time.Millisecond || c.Warmup != 2*time.Second || c.Keys != 77 {
		t.Fatalf("parsed %+v / %+v", o, c)
	}
	if o.Target() != "pocket://127.0.0.1:7000" {
		t.Fatalf("Target = %q", o.Target())
	}
}

func TestParseArgsDefaults(t *testing.T) {
	o, err := ParseArgs([]string{"--target", "redis://localhost"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := o.Config
	if o.Store != "redis" || o.Addr != "localhost:6379" || c.Op != Get || c.Size != 1024 || c.Conns != 50 ||
		c.Pipeline != 1 || c.Duration != 5*time.Second || c.Keys != 100000 || o.JSON {
		t.Fatalf("defaults %+v / %+v", o, c)
	}
	o, err = ParseArgs([]string{"--target", "redis://:6380", "--size", "1MiB"}, &bytes.Buffer{})
	if err != nil || o.Addr != "127.0.0.1:6380" || o.Config.Keys != 256 {
		t.Fatalf("redis://:6380 with 1MiB values: %v %+v", err, o)
	}
}

func TestParseArgsModes(t *testing.T) {
	for args, mode := range map[string]Mode{
		"--matrix":         ModeMatrix,
		"--report r.jsonl": ModeReport,
		"--loopback --duration 1s --chunk 256KiB": ModeLoopback,
	} {
		o, err := ParseArgs(strings.Fields(args), &bytes.Buffer{})
		if err != nil || o.Mode != mode {
			t.Errorf("%q: mode %v, %v; want %v", args, o, err, mode)
		}
	}
	o, _ := ParseArgs(strings.Fields("--loopback --chunk 256KiB"), &bytes.Buffer{})
	if o.Chunk != 256<<10 {
		t.Errorf("--chunk 256KiB parsed as %d", o.Chunk)
	}
}

func TestParseArgsRejects(t *testing.T) {
	for _, args := range []string{
		"",                                // no store
		"--addr a:1 --target redis://b:2", // both
		"--addr nohost",                   // no port
		"--addr a:0",                      // bad port
		"--target http://a:1",             // scheme
		"--addr a:1 --op delete",          // op
		"--addr a:1 --size 1XB",           // size
		"--addr a:1 --size 3GiB",          // too big for one value
		"--addr a:1 --size 300MiB",        // over a node's request limit (64 MiB)
		"--addr a:1 --duration soon",      // duration
		"--addr a:1 --duration 0s",        // zero duration
		"--addr a:1 --conns 0",            // conns
		"--addr a:1 --pipeline -1",        // pipeline
		"--addr a:1 stray",                // argument
		"--loopback --chunk 0",            // chunk
		"--addr a:1 --tier ssd",           // tier
		"--target echo://a",               // echo has no default port
		"--addr a:1 --stall-limit -1s",    // negative stall limit
		"--addr a:1 --keys -5",            // negative keys (a new user's trial: taken)
		"--controller c:1 --lambdas -1",   // negative hints (taken: the job was registered)
		"--controller c:1 --peak-mbps -1",
		"--controller c:1 --job j", // a registered job without its token
		"--controller c:1 --job j --token " + strings.Repeat("ab", token.Len) + " --lambdas 4", // hints of a fresh job
		"--controller c:1 --epoch 3",  // a node's epoch: the SDK follows the map
		"--controller c:1 --addr a:1", // both
	} {
		var out bytes.Buffer
		if o, err := ParseArgs(strings.Fields(args), &out); err == nil {
			t.Errorf("%q accepted: %+v", args, o)
		} else if !strings.HasPrefix(out.String(), "pocket: bench: ") || !strings.HasSuffix(out.String(), "\n"+usageLine+"\n") {
			t.Errorf("%q: printed %q; want the error after \"pocket: bench: \", then the usage line", args, out.String())
		}
	}
}

// TestParseArgsErrorsNameTheFlag: a usage error names the flag and its
// value, after "pocket: bench: " as the other pocket commands say it, and
// is followed by one usage line, not the whole usage (which --help
// prints). Before, --addr junk said `address "junk"` and printed the
// whole usage, --size junk had no "pocket: bench: ", and the range checks
// named two flags at once.
func TestParseArgsErrorsNameTheFlag(t *testing.T) {
	for _, c := range []struct{ args, lead, not string }{
		{"--addr junk", `--addr "junk": want HOST:PORT`, ""},
		{"--addr a:0", `--addr "a:0": port "0"`, ""},
		{"--target echo://a", `--target "echo://a": want HOST:PORT`, ""},
		{"--target redis://a:99999", `--target "redis://a:99999": port "99999"`, ""},
		{"--addr a:1 --size junk", `invalid value "junk" for flag -size`, ""},
		{"--addr a:1 --op delete", `--op "delete": want get or put`, ""},
		{"--addr a:1 --tier ssd", `--tier "ssd": want dram or nvme`, ""},
		{"--addr a:1 --conns 0", "--conns 0: ", "--pipeline"},
		{"--addr a:1 --pipeline 0", "--pipeline 0: ", "--conns"},
		{"--addr a:1 --duration 0s", "--duration 0s: ", "--warmup"},
		{"--addr a:1 --warmup -1s", "--warmup -1s: ", "--duration"},
		{"--loopback --chunk 0", "--chunk 0B: ", "--duration"},
		{"--controller c:1 --lambdas -1", "--lambdas -1: ", "--peak-mbps"},
		{"--controller c:1 --peak-mbps -1", "--peak-mbps -1: ", "--lambdas"},
	} {
		var out bytes.Buffer
		_, err := ParseArgs(strings.Fields(c.args), &out)
		msg := out.String()
		if err == nil || !strings.HasPrefix(msg, "pocket: bench: "+c.lead) || strings.Count(msg, "\n") != 2 ||
			!strings.HasSuffix(msg, "\n"+usageLine+"\n") || (c.not != "" && strings.Contains(msg, c.not)) {
			t.Errorf("%s: %v, printed %q;\nwant \"pocket: bench: %s...\" and the usage line", c.args, err, msg, c.lead)
		}
	}
	var help bytes.Buffer
	if _, err := ParseArgs([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) || !strings.Contains(help.String(), "-addr HOST:PORT") {
		t.Errorf("--help: %v, printed %q; want flag.ErrHelp and the whole usage", err, help.String())
	}
	// The token flag, which the pocket command refuses, is not listed
	// (before, "-token string" was, above a line saying it is refused);
	// a default is shown as the flag set defines it.
	if u := help.String(); strings.Contains(u, "\n  -token") || !strings.Contains(u, `(default "dram")`) {
		t.Errorf("--help lists -token, or lost a default: %q", u)
	}
}

func TestMainExitStatus(t *testing.T) {
	var out, errOut bytes.Buffer
	if st := Main(context.Background(), []string{"--bogus"}, &out, &errOut); st != 2 {
		t.Errorf("bad flag: status %d, want 2", st)
	}
	if st := Main(context.Background(), []string{"--matrix"}, &out, &errOut); st != 0 || !strings.Contains(out.String(), "get-1k-c50 get 1024 50 1 1 0\n") {
		t.Errorf("--matrix: status %d, output %q", st, out.String())
	}
	if st := Main(context.Background(), []string{"--report", filepath.Join(t.TempDir(), "missing")}, &out, &errOut); st != 1 {
		t.Errorf("--report of a missing file: status %d, want 1", st)
	}
}

// TestMainEndToEnd runs the command against the fake Redis, writes the
// JSON results of both a store run and a loopback run to a file, and
// reads them back into a comparison table.
func TestMainEndToEnd(t *testing.T) {
	srv := startFake(t, serveRESP)
	results := filepath.Join(t.TempDir(), "results.jsonl")
	var out, errOut bytes.Buffer
	args := []string{"--target", "redis://" + srv.addr(), "--op", "get", "--size", "1KiB", "--conns", "2",
		"--pipeline", "4", "--duration", "300ms", "--warmup", "0s", "--keys", "100", "--json", "--label", "get-1k-c50"}
	if st := Main(context.Background(), args, &out, &errOut); st != 0 {
		t.Fatalf("status %d: %s", st, errOut.String())
	}
	if st := Main(context.Background(), []string{"--loopback", "--duration", "100ms", "--warmup", "0s", "--json", "--label", LoopbackLabel}, &out, &errOut); st != 0 {
		t.Fatalf("loopback status %d: %s", st, errOut.String())
	}
	if err := os.WriteFile(results, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := ReadResults(bytes.NewReader(out.Bytes()))
	if err != nil || len(rs) != 2 || rs[0].Store() != "redis" || rs[0].OpsPerSec <= 0 || rs[0].Errors != 0 || rs[1].Store() != "tcp" {
		t.Fatalf("results %+v, %v", rs, err)
	}
	out.Reset()
	if st := Main(context.Background(), []string{"--report", results}, &out, &errOut); st != 0 {
		t.Fatalf("report status %d: %s", st, errOut.String())
	}
	if !strings.Contains(out.String(), "| 1 KiB GET, 50 conns | ops/s | n/a |") || !strings.Contains(out.String(), "| loopback TCP, 1 stream | MB/s |") {
		t.Fatalf("table:\n%s", out.String())
	}
}

func TestMainReportsWrongResponses(t *testing.T) {
	srv := startFake(t, serveRESP)
	srv.corrupt.Store(true)
	var out, errOut bytes.Buffer
	args := []string{"--target", "redis://" + srv.addr(), "--size", "100", "--conns", "1", "--duration", "100ms", "--warmup", "0s", "--keys", "10"}
	if st := Main(context.Background(), args, &out, &errOut); st != 1 {
		t.Fatalf("status %d, want 1; stderr %s", st, errOut.String())
	}
	if !strings.Contains(errOut.String(), "wrong responses") || !strings.Contains(out.String(), "first error") {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
}

func TestParseTargets(t *testing.T) {
	for _, tc := range []struct{ args, store, addr string }{
		{"--target memcache://h", StoreMemcache, "h:11211"},
		{"--target memcache://h:5", StoreMemcache, "h:5"},
		{"--target memcached://h:5", StoreMemcache, "h:5"}, // the server's own name (a new user's trial)
		{"--target redis://h", StoreRedis, "h:6379"},
		{"--target echo://:7", StoreEcho, "127.0.0.1:7"},
		{"--target pocket://h:8", StorePocket, "h:8"},
		{"--addr h:9 --tier nvme", StorePocket, "h:9"},
	} {
		o, err := ParseArgs(strings.Fields(tc.args), &bytes.Buffer{})
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if o.Store != tc.store || o.Addr != tc.addr || o.Target() != tc.store+"://"+tc.addr {
			t.Errorf("%q: store %q addr %q target %q, want %s://%s", tc.args, o.Store, o.Addr, o.Target(), tc.store, tc.addr)
		}
	}
	o, _ := ParseArgs(strings.Fields("--addr h:9 --tier nvme"), &bytes.Buffer{})
	if o.Tier != wire.TierNVMe {
		t.Errorf("--tier nvme parsed as %v", o.Tier)
	}
	o, _ = ParseArgs(strings.Fields("--echo-listen 127.0.0.1:0"), &bytes.Buffer{})
	if o.Mode != ModeEcho || o.EchoListen != "127.0.0.1:0" {
		t.Errorf("--echo-listen: mode %v listen %q", o.Mode, o.EchoListen)
	}
}

// TestRunDeletesWhatItWrote: a run against a node (--addr, the job's keys
// on one node) or a Redis server deletes the keys it wrote at its end: a
// get run's preloaded keys, a put run's; the report says it preloaded and
// deleted them, and --help says a get run preloads; --keep leaves them
// and says so. Before, a run left every key it wrote in the user's job (a
// get run's 100,000 preloaded keys: 130 MiB on a 64 MiB allotment) and
// neither the report nor --help said so.
func TestRunDeletesWhatItWrote(t *testing.T) {
	for _, tc := range []struct {
		name   string
		serve  func(*fakeServer, net.Conn)
		target func(addr string) []string
	}{
		{"node", serveWire, func(a string) []string { return []string{"--addr", a, "--job", "mine"} }},
		{"redis", serveRESP, func(a string) []string { return []string{"--target", "redis://" + a} }},
	} {
		for _, op := range []string{"get", "put"} {
			t.Run(tc.name+"-"+op, func(t *testing.T) {
				srv := startFake(t, tc.serve)
				run := func(extra ...string) (string, int) {
					var out, errOut bytes.Buffer
					args := append(tc.target(srv.addr()), "--op", op, "--size", "64", "--conns", "2", "--pipeline", "4",
						"--duration", "200ms", "--warmup", "0s", "--keys", "100")
					if st := Main(context.Background(), append(args, extra...), &out, &errOut); st != 0 {
						t.Fatalf("status %d: %s", st, errOut.String())
					}
					return out.String(), srv.stored()
				}
				out, left := run()
				if left != 0 {
					t.Errorf("%d key(s) left after the run:\n%s", left, out)
				}
				if !strings.Contains(out, "key(s) the run wrote") || !strings.Contains(out, "deleted the ") ||
					op == "get" && !strings.Contains(out, "preloaded 100 before the measurement") {
					t.Errorf("report does not say what the run wrote and deleted:\n%s", out)
				}
				out, left = run("--keep")
				if left == 0 || op == "get" && left != 100 || !strings.Contains(out, "kept the ") {
					t.Errorf("--keep: %d key(s) left, report:\n%s", left, out)
				}
			})
		}
	}
	var help, errOut bytes.Buffer
	Main(context.Background(), []string{"--help"}, &help, &errOut)
	for _, want := range []string{"a get run first puts\nevery one of its --keys", "-keep"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// TestErrorLineSaysBenchOnce: a failed run's line has the other commands'
// form, "pocket: bench: ...", with the package's "bench: " prefix said
// once (an operator's trial read "pocket bench: bench: ...").
func TestErrorLineSaysBenchOnce(t *testing.T) {
	var b strings.Builder
	if code := status(&b, fmt.Errorf("bench: cleanup: %w", ErrStalled)); code != 1 || !strings.HasPrefix(b.String(), "pocket: bench: cleanup: ") {
		t.Fatalf("status: exit %d, line %q; want exit 1 and %q", code, b.String(), "pocket: bench: cleanup: ...")
	}
}

// TestErrorLineSaysPrefixesOnce: an SDK error under a bench error reads
// "pocket: bench: open job ...", not "pocket: bench: pocket: open job ..."
// (a new-user trial).
func TestErrorLineSaysPrefixesOnce(t *testing.T) {
	err := fmt.Errorf("bench: %w", errors.New(`pocket: open job "e-1": wire: bad token: no`))
	if got, want := errorLine(err), `pocket: bench: open job "e-1": wire: bad token: no`; got != want {
		t.Errorf("errorLine: %q, want %q", got, want)
	}
}

// TestJobRunDefaultsToEnvController (a new user's trial): pocket bench
// --job J with $POCKET_CONTROLLER set and neither --addr nor --target
// drives the job through that controller, as every other pocket command
// defaults its controller to $POCKET_CONTROLLER; --addr still measures
// one node. Without it, the usage error names --controller beside --addr
// and --target. Before, it said only "give --addr HOST:PORT or --target
// SCHEME://HOST:PORT".
func TestJobRunDefaultsToEnvController(t *testing.T) {
	tok := strings.Repeat("ab", token.Len)
	t.Setenv("POCKET_CONTROLLER", "127.0.0.1:7001")
	o, err := ParseArgs([]string{"--job", "sort-7", "--token", tok}, &bytes.Buffer{})
	if err != nil || o.Controller != "127.0.0.1:7001" || o.Target() != "sdk://127.0.0.1:7001?job=sort-7" ||
		o.Config.Keys != DefaultKeys(1024, SmallBudget) {
		t.Fatalf("--job with $POCKET_CONTROLLER: %v, %+v; want a run through 127.0.0.1:7001, keys sized as a --controller run's", err, o)
	}
	o, err = ParseArgs([]string{"--job", "sort-7", "--token", tok, "--addr", "127.0.0.1:7100"}, &bytes.Buffer{})
	if err != nil || o.Controller != "" || o.Target() != "pocket://127.0.0.1:7100" {
		t.Fatalf("--job --addr with $POCKET_CONTROLLER: %v, %+v; want the node", err, o)
	}
	var out bytes.Buffer
	if _, err := ParseArgs([]string{"--job", "sort-7"}, &out); err == nil || !strings.Contains(out.String(), "$POCKET_CONTROLLER") ||
		!strings.Contains(out.String(), "token") {
		t.Errorf("--job without its token through $POCKET_CONTROLLER: %v, printed %q", err, out.String())
	}
	out.Reset()
	if _, err := ParseArgs([]string{"--job", "sort-7", "--token", tok, "--tier", "nvme"}, &out); err == nil ||
		!strings.Contains(out.String(), "$POCKET_CONTROLLER") {
		t.Errorf("--tier of a --job run through $POCKET_CONTROLLER: %v, printed %q", err, out.String())
	}
	t.Setenv("POCKET_CONTROLLER", "")
	for _, args := range [][]string{{"--job", "sort-7"}, {}} {
		out.Reset()
		if _, err := ParseArgs(args, &out); err == nil || !strings.Contains(out.String(), "--controller") ||
			!strings.Contains(out.String(), "--addr") {
			t.Errorf("%q without $POCKET_CONTROLLER: %v, printed %q; want the usage error naming --addr and --controller", args, err, out.String())
		}
	}
}

// TestNoSpaceHintOneKeySaysSize: a run of one key refused for space by a
// store that does not say its room (Redis, memcached, a node that does
// not answer) advises a smaller --size, not "fewer keys (--keys 1)";
// a run of more keys still advises fewer.
func TestNoSpaceHintOneKeySaysSize(t *testing.T) {
	full := fmt.Errorf("bench: the store refused 3 put(s) for lack of space; first: %w", wire.ErrNoSpace)
	o := &Options{Store: StoreRedis, Addr: "127.0.0.1:1", Config: Config{Op: Put, Size: 300 << 20, Keys: 1, Conns: 1, Pipeline: 1}}
	msg := o.noSpaceHint(context.Background(), full, true, false).Error()
	if strings.Contains(msg, "fewer keys") || !strings.Contains(msg, "smaller --size") || !strings.Contains(msg, "300MiB") {
		t.Errorf("one key of 300MiB: %q; want a smaller --size, not fewer keys", msg)
	}
	o.Config.Keys, o.Config.Size = 100, 1<<20
	if msg := o.noSpaceHint(context.Background(), full, true, false).Error(); !strings.Contains(msg, "fewer keys (--keys ") {
		t.Errorf("100 keys of 1MiB: %q; want fewer keys", msg)
	}
}
