package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sampleStats() *Stats {
	st := &Stats{Config: Config{Op: Get, Size: 1000, Conns: 50, Pipeline: 16, Duration: 2 * time.Second, Keys: 100}, Ops: 400000}
	for i := 1; i <= 100; i++ {
		st.Latency.Record(time.Duration(i) * 10 * time.Microsecond)
	}
	return st
}

func TestResultFigures(t *testing.T) {
	r := NewResult("redis://h:1", "x", sampleStats())
	if r.OpsPerSec != 200000 || r.MBPerSec != 200 {
		t.Fatalf("ops/s %v MB/s %v; want 200000 and 200 (MB = 10^6 bytes)", r.OpsPerSec, r.MBPerSec)
	}
	near := func(got, want float64) bool { return got >= want*0.995 && got <= want*1.005 }
	if !near(r.P50us, 500) || !near(r.P99us, 990) || r.P999us != 1000 || r.MaxUs != 1000 {
		t.Fatalf("percentiles %v %v %v max %v; want 500, 990, 1000 within the histogram's precision", r.P50us, r.P99us, r.P999us, r.MaxUs)
	}
	if diff := r.MeanUs - 505; diff > 1 || diff < -1 {
		t.Fatalf("mean %v, want 505", r.MeanUs)
	}
}

func TestWriteJSONFields(t *testing.T) {
	r := NewResult("pocket://h:1", "cell", sampleStats())
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), "\n") != 1 {
		t.Fatalf("want one line, got %q", b.String())
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ops_per_sec", "mb_per_sec", "p50_us", "p99_us", "p999_us", "errors", "target", "op", "size", "conns", "pipeline", "label"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b.String())
		}
	}
	back, err := ReadResults(strings.NewReader("\n" + b.String() + "\n"))
	if err != nil || len(back) != 1 || back[0] != r {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if _, err := ReadResults(strings.NewReader("{not json\n")); err == nil {
		t.Fatal("ReadResults accepted a broken line")
	}
}

func TestWriteText(t *testing.T) {
	r := NewResult("redis://h:1", "", sampleStats())
	var b bytes.Buffer
	r.WriteText(&b)
	for _, want := range []string{"redis://h:1  get 1000B  conns 50  pipeline 16  keys 100", "ops/s    200,000", "MB/s     200.0",
		"p50 500.7us  p99 989.2us  p99.9 1,000.0us  mean 505.0us  max 1,000.0us", "errors   0"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	lb := LoopbackStats{Addr: "127.0.0.1:9", Bytes: 3e9, Duration: time.Second}.Result("")
	lb.WriteText(&b)
	if !strings.Contains(b.String(), "3,000.0 MB/s") {
		t.Errorf("loopback text: %q", b.String())
	}
}

// TestEchoPreloadIsNotKeysHeld (a new user's trial): an echo run's
// preload is said to be puts the echo server answered and did not store,
// not "preloaded 100,000" keys.
func TestEchoPreloadIsNotKeysHeld(t *testing.T) {
	r := Result{Target: "echo://h:1", Op: "get", Ops: 10, Preloaded: 100000, Cleanup: CleanupNone}
	if note := r.keysNote(); !strings.Contains(note, "sent 100,000 preload puts") || !strings.Contains(note, "does not store") ||
		strings.Contains(note, "preloaded 100,000") {
		t.Errorf("echo run's keys note: %q", note)
	}
	r.Cleanup, r.WrittenKeys = CleanupDeleted, 100000
	if note := r.keysNote(); !strings.Contains(note, "preloaded 100,000 before the measurement") {
		t.Errorf("a store's get run's keys note: %q", note)
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4321: "-4,321"} {
		if got := fmtFloat(in, 0); got != want {
			t.Errorf("fmtFloat(%v) = %q, want %q", in, got, want)
		}
	}
	if got := fmtFloat(12345.678, 1); got != "12,345.7" {
		t.Errorf("fmtFloat(12345.678, 1) = %q", got)
	}
	if fmtMicros(42.25) != "42.2us" && fmtMicros(42.25) != "42.3us" {
		t.Errorf("fmtMicros(42.25) = %q", fmtMicros(42.25))
	}
	if got := fmtMicros(25000); got != "25.0ms" {
		t.Errorf("fmtMicros(25000) = %q", got)
	}
}

func TestComparisonTable(t *testing.T) {
	res := func(label, store string, ops, mbps, p50 float64) Result {
		return Result{Label: label, Target: store + "://x:1", OpsPerSec: ops, MBPerSec: mbps, P50us: p50}
	}
	results := []Result{
		res("get-1k-c50", "pocket", 100000, 0, 0), res("get-1k-c50", "redis", 50000, 0, 0),
		res("get-1k-p16", "pocket", 100000, 0, 0), res("get-1k-p16", "redis", 80000, 0, 0),
		res("get-1m-c8", "pocket", 0, 3000, 0), res("get-1m-c8", "redis", 0, 2000, 0),
		res("get-1k-c1", "pocket", 0, 0, 30), res("get-1k-c1", "redis", 0, 0, 40),
		res("get-1k-c1-apart", "pocket", 0, 0, 13), res("get-1k-c1-apart", "redis", 0, 0, 16),
		res(LoopbackLabel, "tcp", 0, 4000, 0),
		res("put-1k-c50", "redis", 1000, 0, 0),
	}
	bad := res("put-1k-p16", "pocket", 9, 0, 0)
	bad.Errors = 3
	results = append(results, bad, res("put-1k-p16", "redis", 5, 0, 0))
	var b bytes.Buffer
	if err := WriteComparison(&b, results); err != nil {
		t.Fatal(err)
	}
	table := b.String()
	for _, want := range []string{
		"| cell | metric | pocket | Redis or limit | ratio | target | met |",
		"| 1 KiB GET, 50 conns | ops/s | 100,000 | 50,000 | 2.00x | ≥ 1.20x | yes |",
		"| 1 KiB PUT, 50 conns | ops/s | n/a | 1,000 | n/a | — | — |",
		"| 1 KiB GET, 50 conns x 16 pipelined | ops/s | 100,000 | 80,000 | 1.25x | ≥ 1.50x | no |",
		"| 1 KiB PUT, 50 conns x 16 pipelined | ops/s | 9 (3 errors) | 5 | n/a | ≥ 1.50x | no |",
		"| 1 MiB GET, 8 conns | MB/s | 3,000.0 | 2,000.0 | 1.50x | ≥ 1.20x | yes |",
		"| 1 MiB GET, 8 conns, share of loopback | MB/s | 3,000.0 | loopback 4,000.0 | 0.75x | ≥ 0.80x | no |",
		"| 1 KiB GET, 1 conn | p50 us | 30.0 | 40.0 | 0.75x | ≤ 1.00x | yes |",
		"| 1 KiB GET, 1 conn, client and servers on separate cores | p50 us | 13.0 | 16.0 | 0.81x | ≤ 1.00x | yes |",
		"| loopback TCP, 1 stream | MB/s | 4,000.0 | | | | |",
	} {
		if !strings.Contains(table, want+"\n") {
			t.Errorf("table lacks\n%s\nin\n%s", want, table)
		}
	}
}

// With memcached and echo results, every cell gets a memcached row and the
// small-request cells a share-of-echo row (for p50, echo's p50 over ours).
func TestComparisonPeersAndEcho(t *testing.T) {
	res := func(label, store string, ops, p50 float64) Result {
		return Result{Label: label, Target: store + "://x:1", OpsPerSec: ops, P50us: p50}
	}
	var b bytes.Buffer
	WriteComparison(&b, []Result{
		res("get-1k-c50", "pocket", 90000, 0), res("get-1k-c50", "redis", 60000, 0),
		res("get-1k-c50", "memcache", 100000, 0), res("get-1k-c50", "echo", 100000, 0),
		res("get-1k-c1", "pocket", 0, 30), res("get-1k-c1", "memcache", 0, 40), res("get-1k-c1", "echo", 0, 20),
	})
	table := b.String()
	for _, want := range []string{
		"| 1 KiB GET, 50 conns, vs memcached | ops/s | 90,000 | memcached 100,000 | 0.90x | ≥ 1.00x | no |",
		"| 1 KiB GET, 50 conns, share of echo server | ops/s | 90,000 | echo 100,000 | 0.90x | ≥ 0.80x | yes |",
		"| 1 KiB GET, 1 conn, vs memcached | p50 us | 30.0 | memcached 40.0 | 0.75x | ≤ 1.00x | yes |",
		"| 1 KiB GET, 1 conn, share of echo server | p50 us | 30.0 | echo 20.0 | 0.67x | ≥ 0.80x | no |",
		"| 1 KiB PUT, 50 conns, vs memcached | ops/s | n/a | memcached n/a | n/a | ≥ 1.00x | not run |",
		// Ours without Redis's figure: no ratio, and the target is not
		// called missed (the report of one cell's results said "no" on
		// every row).
		"| 1 KiB GET, 1 conn | p50 us | 30.0 | n/a | n/a | ≤ 1.00x | n/a |",
		"| 1 KiB GET, 50 conns x 16 pipelined | ops/s | n/a | n/a | n/a | ≥ 1.50x | not run |",
	} {
		if !strings.Contains(table, want+"\n") {
			t.Errorf("table lacks\n%s\nin\n%s", want, table)
		}
	}
	if strings.Contains(table, "1 MiB GET, 8 conns, share of echo") {
		t.Errorf("a large-value cell has an echo row:\n%s", table)
	}
	b.Reset()
	WriteComparison(&b, []Result{res("get-1k-c50", "pocket", 90000, 0), res("get-1k-c50", "redis", 60000, 0)})
	if strings.Contains(b.String(), ", vs memcached |") || strings.Contains(b.String(), ", share of echo server |") {
		t.Errorf("rows for peers that were not measured:\n%s", b.String())
	}
}

func TestComparisonTakesTheMedianOfRepeats(t *testing.T) {
	run := func(store string, ops float64, errs uint64) Result {
		return Result{Label: "get-1k-c50", Target: store + "://x:1", OpsPerSec: ops, Errors: errs}
	}
	var b bytes.Buffer
	WriteComparison(&b, []Result{run("pocket", 10, 0), run("pocket", 30, 0), run("pocket", 20, 0), run("redis", 10, 0)})
	if want := "| 1 KiB GET, 50 conns | ops/s | 20 | 10 | 2.00x | ≥ 1.20x | yes |\n"; !strings.Contains(b.String(), want) {
		t.Errorf("median of 10, 30, 20 is not 20:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "Median of 3 run(s)") {
		t.Errorf("table does not say how many runs: %s", b.String())
	}
	b.Reset()
	WriteComparison(&b, []Result{run("pocket", 30, 0), run("pocket", 20, 2), run("redis", 10, 0)})
	if want := "| 1 KiB GET, 50 conns | ops/s | 20 (2 errors) | 10 | n/a | ≥ 1.20x | no |\n"; !strings.Contains(b.String(), want) {
		t.Errorf("a run with errors does not mark the cell:\n%s", b.String())
	}
}

// The matrix tells the shell loop which cells run against the echo server
// and which with servers and generator pinned apart.
func TestWriteMatrixColumns(t *testing.T) {
	var b bytes.Buffer
	if err := WriteMatrix(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"get-1k-c50 get 1024 50 1 1 0\n",
		"get-1m-c8 get 1048576 8 1 0 0\n",
		"get-1k-c1 get 1024 1 1 1 0\n",
		"get-1k-c1-apart get 1024 1 1 1 1\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("matrix lacks %q:\n%s", want, b.String())
		}
	}
}

// A ratio that rounds to its target but misses it shows a third decimal.
func TestComparisonRatioAtTheTarget(t *testing.T) {
	res := func(store string, ops float64) Result {
		return Result{Label: "put-1k-c50", Target: store + "://x:1", OpsPerSec: ops}
	}
	var b bytes.Buffer
	WriteComparison(&b, []Result{res("pocket", 998), res("redis", 500), res("memcache", 1000)})
	if want := "| 1 KiB PUT, 50 conns, vs memcached | ops/s | 998 | memcached 1,000 | 0.998x | ≥ 1.00x | no |\n"; !strings.Contains(b.String(), want) {
		t.Errorf("table lacks\n%s\nin\n%s", want, b.String())
	}
	if want := "| 1 KiB PUT, 50 conns | ops/s | 998 | 500 | 2.00x | — | — |\n"; !strings.Contains(b.String(), want) {
		t.Errorf("table lacks\n%s\nin\n%s", want, b.String())
	}
}

// TestComparisonCPUTable: runs with --server-pid figures add a table of
// each store's CPU per operation (medians, the generator's in
// parentheses); runs without add none.
func TestComparisonCPUTable(t *testing.T) {
	res := func(store string, srv, gen float64) Result {
		return Result{Label: "get-1k-c50", Target: store + "://x:1", OpsPerSec: 1000, ServerCPUus: srv, GenCPUus: gen}
	}
	var b bytes.Buffer
	WriteComparison(&b, []Result{
		res("pocket", 7, 8), res("pocket", 6, 9), res("pocket", 9, 7),
		res("redis", 12, 8), res("memcache", 7.25, 7.5),
	})
	want := "| 1 KiB GET, 50 conns | 7.00 (8.00) | 12.00 (8.00) | 7.25 (7.50) | n/a |\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("table lacks\n%sin\n%s", want, b.String())
	}
	if strings.Contains(b.String(), "| 1 KiB PUT, 50 conns | n/a") {
		t.Errorf("a row for a cell without CPU figures:\n%s", b.String())
	}
	b.Reset()
	WriteComparison(&b, []Result{res("pocket", 0, 0), res("redis", 0, 0)})
	if strings.Contains(b.String(), "CPU time per operation") {
		t.Errorf("a CPU table without CPU figures:\n%s", b.String())
	}
}
