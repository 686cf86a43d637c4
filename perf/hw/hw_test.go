package hw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/limited"
	"github.com/pocketstore/pocket/nvme"
)

// A short run on a small file: every figure the profile promises is filled
// in and the JSON carries the required fields, and leaves out the summary
// of a queue depth not measured.
func TestRunSmall(t *testing.T) {
	dir := t.TempDir()
	if err := nvme.ProbeDirectIO(dir); err != nil {
		t.Skipf("hw test skipped: %s: %v", dir, err)
	}
	cfg := Config{
		Path: filepath.Join(dir, "dev"), Size: 16 << 20, Duration: 100 * time.Millisecond,
		RandDepths: []int{1, 4}, DRAMBytes: 4 << 20,
	}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.SeqWriteMBps <= 0 || r.SeqReadMBps <= 0 || r.RandRead4kP50usQD1 <= 0 || r.DRAMCopyGBps <= 0 || r.LoopbackMBps <= 0 {
		t.Fatalf("missing figures: %+v", r)
	}
	if len(r.RandRead) != 2 || len(r.RandWrite) != 2 || r.RandRead[1].Depth != 4 || r.RandRead[0].IOPS <= 0 {
		t.Fatalf("random results: %+v %+v", r.RandRead, r.RandWrite)
	}
	data, _ := json.Marshal(r)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"seq_write_mb_per_sec", "seq_read_mb_per_sec", "rand_read_4k_p50_us_qd1", "dram_copy_gb_per_sec"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %s", k)
		}
	}
	// Depth 32 was not measured: its summary is left out, not 0 (a new
	// user's trial read "rand_read_4k_iops_qd32": 0 after --depths 1,8).
	if v, ok := m["rand_read_4k_iops_qd32"]; ok {
		t.Errorf("JSON says rand_read_4k_iops_qd32 %v for a run without depth 32", v)
	}
	var table bytes.Buffer
	PrintTable(&table, r)
	if !strings.Contains(table.String(), "rand read 4 KiB QD4") {
		t.Fatalf("table:\n%s", table.String())
	}
	// The file the run created is gone (a new user's trial found its
	// test data left behind); a file that was there stays.
	if _, err := os.Stat(cfg.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file the run created: %v; want it removed", err)
	}
	kept := filepath.Join(dir, "kept")
	if err := os.WriteFile(kept, make([]byte, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Path, cfg.SkipNetwork, cfg.SkipDRAM = kept, true, true
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("a file that was there before the run: %v; want it kept", err)
	}
}

func TestProfileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "profile.json")
	p := NewProfile(Report{SeqWriteMBps: 100, RandRead: []RandResult{{Depth: 1, IOPS: 5, P50us: 40, P99us: 90}}})
	if err := WriteProfile(path, p); err != nil {
		t.Fatal(err)
	}
	got, err := ReadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != ProfileVersion || got.Report.SeqWriteMBps != 100 || len(got.Report.RandRead) != 1 || !got.MeasuredAt.Equal(p.MeasuredAt) {
		t.Fatalf("round trip: %+v", got)
	}
}

// TestReadProfileStopsAtItsLimit: a path that is not a profile (an
// endless device, here) is refused after the profile limit, not read
// until memory runs out. The prices file had the fault (a hostile trial);
// this is the same class.
func TestReadProfileStopsAtItsLimit(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	if _, err := ReadProfile("/dev/zero"); !errors.Is(err, ErrBadProfile) || !errors.Is(err, limited.ErrNotRegular) {
		t.Fatalf("ReadProfile(/dev/zero) = %v; want ErrBadProfile, not a regular file", err)
	}
}

func TestParseProfileRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":  "{",
		"version":   `{"version": 2}`,
		"negative":  `{"version": 1, "report": {"seq_read_mb_per_sec": -1}}`,
		"bad depth": `{"version": 1, "report": {"rand_read_4k": [{"qd": 0}]}}`,
		"huge":      `{"version": 1, "host": "` + strings.Repeat("x", maxProfileBytes) + `"}`,
	} {
		if _, err := ParseProfile([]byte(doc)); !errors.Is(err, ErrBadProfile) {
			t.Errorf("%s: %v, want ErrBadProfile", name, err)
		}
	}
}

func FuzzParseProfile(f *testing.F) {
	f.Add([]byte(`{"version": 1, "report": {"seq_read_mb_per_sec": 10, "rand_read_4k": [{"qd": 1, "iops": 3}]}}`))
	f.Add([]byte(`{"version": 1, "measured_at": "2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile(data)
		if err != nil {
			return
		}
		if p.Version != ProfileVersion {
			t.Fatalf("accepted version %d", p.Version)
		}
		for _, v := range []float64{p.Report.SeqReadMBps, p.Report.SeqWriteMBps, p.Report.DRAMCopyGBps} {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("accepted rate %v", v)
			}
		}
	})
}

func TestMainFlags(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{
		{},                                    // no --path
		{"--path", "x", "--size", "lots"},     // bad size
		{"--path", "x", "--engine", "magic"},  // bad engine
		{"--path", "x", "--depths", "1,zero"}, // bad depths
	} {
		if code := Main(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	dir := t.TempDir()
	if err := nvme.ProbeDirectIO(dir); err != nil {
		t.Skipf("rest skipped: %v", err)
	}
	prof := filepath.Join(dir, "p.json")
	args := []string{"--path", filepath.Join(dir, "dev"), "--size", "8MiB", "--duration", "50ms", "--depths", "1",
		"--skip-network", "--skip-dram", "--json", "--profile", prof}
	out.Reset()
	if code := Main(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var r Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.SeqWriteMBps <= 0 {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if _, err := os.Stat(prof); err != nil {
		t.Fatalf("--profile: %v", err)
	}
}

// TestEveryWorkerMovesOne: a run whose time is up before its workers
// start (a loaded machine) still makes one transfer per worker, so the
// reads that follow a write have something written to read. Before, CI
// saw a 100 ms sequential write move nothing and TestRunSmall fail "span 0
// below one 1048576-byte block"; here a zero duration did the same.
func TestEveryWorkerMovesOne(t *testing.T) {
	dir := t.TempDir()
	if err := nvme.ProbeDirectIO(dir); err != nil {
		t.Skipf("hw test skipped: %s: %v", dir, err)
	}
	dev, err := nvme.Open(filepath.Join(dir, "dev"), nvme.Options{Size: 8 << 20, QueueDepth: 2, BufferPool: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	s, err := Sequential(context.Background(), dev, true, 1<<20, 2, dev.Size(), 0)
	if err != nil || s.Ops < 2 || s.Bytes < 2<<20 {
		t.Fatalf("a zero-length run of 2 workers: %+v, %v; want a transfer from each", s, err)
	}
}
