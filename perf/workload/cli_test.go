package workload

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
)

func TestParseCLI(t *testing.T) {
	for _, c := range []struct {
		args []string
		ok   bool
		kind string
	}{
		{[]string{"sort", "--nodes", "a:1,b:2"}, true, KindPocket},
		{[]string{"sort", "--target", "redis://127.0.0.1:6379", "--workers", "16", "--size", "1GiB"}, true, KindRedis},
		{[]string{"sort", "--controller", "c:1"}, true, KindPocket},
		{[]string{"sort"}, false, ""},
		{[]string{"nope", "--nodes", "a:1"}, false, ""},
		{[]string{"sort", "--nodes", "a:1", "--target", "redis://x"}, false, ""},
		{[]string{"sort", "--nodes", "a:1", "--size", "lots"}, false, ""},
		{[]string{"sort", "--nodes", "a:1", "--workers", "0"}, false, ""},
		{[]string{"sort", "--target", "http://x"}, false, ""},
		{[]string{"sort", "--target", "redis://a:1,redis://b:2"}, true, KindRedis},
		{[]string{"sort", "--target", "redis://a:1,b:2"}, false, ""},
		{[]string{"--report", "f.jsonl"}, true, ""},
	} {
		t.Setenv("POCKET_CONTROLLER", "")
		o, err := parseCLI(c.args, io.Discard)
		if (err == nil) != c.ok {
			t.Errorf("%q: err %v", c.args, err)
			continue
		}
		if err == nil && o.target.Kind != c.kind {
			t.Errorf("%q: kind %q", c.args, o.target.Kind)
		}
	}
}

// TestMainJSONAndReport runs the command with --json (workers in-process)
// and renders the result with --report.
func TestMainJSONAndReport(t *testing.T) {
	tgt := nodes(t, 2, 64<<20)
	var out bytes.Buffer
	errFile, _ := os.CreateTemp(t.TempDir(), "stderr")
	cli := CLI{Stdout: &out, Stderr: errFile}
	args := []string{"mapreduce", "--nodes", strings.Join(tgt.Addrs, ","), "--workers", "3", "--size", "1MiB", "--json", "--inproc", "--progress"}
	if code := Main(testCtx(t), args, cli); code != 0 {
		b, _ := os.ReadFile(errFile.Name())
		t.Fatalf("exit %d: %s", code, b)
	}
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || !r.Verified || r.Workers != 3 || r.SizeBytes != 1<<20 {
		t.Fatalf("%v: %s", err, out.Bytes())
	}
	if b, _ := os.ReadFile(errFile.Name()); !bytes.Contains(b, []byte("map ")) {
		t.Errorf("no progress on stderr: %q", b)
	}
	res := t.TempDir() + "/r.jsonl"
	os.WriteFile(res, out.Bytes(), 0o644)
	out.Reset()
	if code := Main(testCtx(t), []string{"--report", res}, cli); code != 0 {
		t.Fatalf("report exit %d", code)
	}
	if !strings.Contains(out.String(), "| mapreduce | pocket | 3 | 1MiB |") {
		t.Fatalf("report:\n%s", out.String())
	}
}

// TestUsageErrorsOneLine: a bad flag or argument is one line naming it,
// then the usage line, as the pocket commands write them (before: the
// whole 40-line usage after each); --help writes the whole usage, where a
// set $POCKET_CONTROLLER no longer shows as a second default.
func TestUsageErrorsOneLine(t *testing.T) {
	t.Setenv("POCKET_CONTROLLER", "127.0.0.1:7850")
	for _, args := range [][]string{{"sort", "--bogus"}, {"nope", "--nodes", "a:1"}, {"sort", "--workers", "x"}} {
		var out bytes.Buffer
		if _, err := parseCLI(args, &out); err == nil {
			t.Fatalf("%q: no error", args)
		}
		if lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); len(lines) != 2 ||
			!strings.HasPrefix(lines[0], "pocket: bench workload: ") || !strings.HasPrefix(lines[1], "Usage: pocket bench workload NAME") {
			t.Errorf("%q: printed %q; want the error line and the usage line", args, out.String())
		}
	}
	var help bytes.Buffer
	if _, err := parseCLI([]string{"--help"}, &help); err == nil || !strings.Contains(help.String(), "-workers") ||
		strings.Contains(help.String(), `(default "127.0.0.1:7850")`) {
		t.Errorf("--help: %v, printed %q; want the whole usage, the controller's default once", err, help.String())
	}
}
