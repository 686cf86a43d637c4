package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net"
	"strings"
	"testing"
	"time"
)

// mainInterrupted runs Main with args (a --duration 30s run) and cancels
// its context after d, as a signal does the pocket command's; it returns
// the exit status, stdout, stderr and how long Main took.
func mainInterrupted(t *testing.T, d time.Duration, args ...string) (int, string, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(d, cancel)
	var out, errOut bytes.Buffer
	start := time.Now()
	code := Main(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String(), time.Since(start)
}

// TestInterruptedRunRatesOverElapsed (a new user's trial): a --duration
// 30s run interrupted after about a second reports ops/s and MB/s over the
// time it measured, shows that time in its header and says it was
// interrupted ("interrupted after 1.0s of 30s"), not that its connections
// failed ("2 of 2 connections failed: ... context canceled"), exits 1 as
// an interrupted pocket command does, and deletes the keys it wrote. Before,
// the rates were divided by the 30 s asked for (about 30x too low here)
// and the header said 30.0s.
func TestInterruptedRunRatesOverElapsed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		serve  func(*fakeServer, net.Conn)
		target func(addr string) []string
		op     string
	}{
		{"node-put", serveWire, func(a string) []string { return []string{"--addr", a} }, "put"},
		{"node-get", serveWire, func(a string) []string { return []string{"--addr", a} }, "get"},
		{"redis-put", serveRESP, func(a string) []string { return []string{"--target", "redis://" + a} }, "put"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, tc.serve)
			args := append(tc.target(srv.addr()), "--op", tc.op, "--size", "1KiB", "--conns", "2", "--pipeline", "2",
				"--keys", "500", "--duration", "30s", "--warmup", "200ms")
			for _, asJSON := range []bool{true, false} {
				a := args
				if asJSON {
					a = append(a, "--json")
				}
				code, out, errOut, took := mainInterrupted(t, 1200*time.Millisecond, a...)
				if took > 15*time.Second {
					t.Fatalf("the interrupted run took %v", took)
				}
				if code != 1 || !strings.Contains(errOut, "interrupted after ") || strings.Contains(errOut, "connections failed") ||
					strings.Contains(errOut, "context canceled") {
					t.Errorf("exit %d, stderr %q; want 1 and \"interrupted after ...\", no failed connections", code, errOut)
				}
				if left := srv.stored(); left != 0 {
					t.Errorf("%d key(s) left after the interrupted run", left)
				}
				if !asJSON {
					if strings.Contains(out, "  30.0s\n") || !strings.Contains(out, "interrupted after ") || !strings.Contains(out, " of 30s") {
						t.Errorf("report of the interrupted run:\n%s\nwant the time measured in its header and \"interrupted after ... of 30s\"", out)
					}
					continue
				}
				var r map[string]any
				if err := json.Unmarshal([]byte(out), &r); err != nil {
					t.Fatalf("%v: %q", err, out)
				}
				secs, ops, rate := r["duration_s"].(float64), r["ops"].(float64), r["ops_per_sec"].(float64)
				if secs <= 0.3 || secs > 10 || ops == 0 || math.Abs(rate-ops/secs) > 0.01*rate || r["interrupted"] != true || r["requested_s"] != 30.0 {
					t.Errorf("interrupted run: duration_s %v, ops %v, ops_per_sec %v (ops/duration_s %v), interrupted %v, requested_s %v; "+
						"want the seconds measured (about 1) and the rate over them",
						secs, ops, rate, ops/secs, r["interrupted"], r["requested_s"])
				}
				if mb := r["mb_per_sec"].(float64); math.Abs(mb-rate*1024/1e6) > 0.01*mb {
					t.Errorf("mb_per_sec %v, want ops_per_sec x 1KiB / 1e6 = %v", mb, rate*1024/1e6)
				}
			}
		})
	}
}

// TestRunStoppedEarlyRatesOverElapsed: a run its connections stop before
// its --duration (here every connection's server goes away) has its rates
// over the time it measured, and says it stopped early; it still fails.
// Before, a run stopped after 1 s of 30 had its rates divided by 30.
func TestRunStoppedEarlyRatesOverElapsed(t *testing.T) {
	srv := startFake(t, serveRESP)
	time.AfterFunc(time.Second, func() {
		srv.ln.Close()
		srv.conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
	})
	cfg := Config{Op: Put, Size: 1000, Conns: 2, Pipeline: 1, Duration: 30 * time.Second, Keys: 100, Keep: true}
	st, err := Run(context.Background(), cfg, RESPDialer(srv.addr(), cfg.Size))
	if err == nil || st == nil || st.Ops == 0 {
		t.Fatalf("run whose server went away: %v, stats %+v; want an error and the operations before it", err, st)
	}
	r := NewResult("redis://"+srv.addr(), "", st)
	if r.DurationS <= 0.3 || r.DurationS > 10 || math.Abs(r.OpsPerSec-float64(r.Ops)/r.DurationS) > 0.01*r.OpsPerSec {
		t.Fatalf("run stopped after about 1s of 30s: duration_s %v, %d ops, ops/s %v; want the time measured and the rate over it",
			r.DurationS, r.Ops, r.OpsPerSec)
	}
	var out strings.Builder
	if err := r.WriteText(&out); err != nil || !strings.Contains(out.String(), "stopped after ") || !strings.Contains(out.String(), " of 30s") {
		t.Fatalf("report of a run stopped early: %v\n%s", err, out.String())
	}
}

// TestInterruptedPreloadSaysInterrupted: a get run interrupted in its
// preload (here a server that takes the puts and never answers) says it
// was interrupted before the measurement, not that the preload failed
// with a closed connection or "context canceled".
func TestInterruptedPreloadSaysInterrupted(t *testing.T) {
	srv := startFake(t, serveWire)
	srv.stall.Store(true)
	code, _, errOut, took := mainInterrupted(t, 300*time.Millisecond, "--addr", srv.addr(), "--op", "get", "--size", "1KiB",
		"--conns", "2", "--keys", "100", "--duration", "30s", "--keep")
	if took > 10*time.Second || code != 1 || !strings.Contains(errOut, "interrupted during the preload, before the measurement") ||
		strings.Contains(errOut, "context canceled") || strings.Contains(errOut, "closed") {
		t.Fatalf("preload interrupted: exit %d after %v, stderr %q; want 1 and \"interrupted during the preload\"", code, took, errOut)
	}
}

// TestLoopbackInterruptedRateOverElapsed: a --loopback transfer of 30 s
// interrupted after half a second has its MB/s over the time it measured,
// which the report gives with "interrupted after"; before, the bytes of
// half a second were divided by 30 s and the run exited 0.
func TestLoopbackInterruptedRateOverElapsed(t *testing.T) {
	code, out, errOut, took := mainInterrupted(t, 700*time.Millisecond, "--loopback", "--duration", "30s", "--warmup", "200ms",
		"--chunk", "64KiB", "--json")
	if took > 10*time.Second || code != 1 || !strings.Contains(errOut, "interrupted after ") {
		t.Fatalf("loopback interrupted: exit %d after %v, stderr %q; want 1 and \"interrupted after\"", code, took, errOut)
	}
	var r Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if r.DurationS <= 0.1 || r.DurationS > 5 || r.MBPerSec <= 0 {
		t.Fatalf("interrupted loopback: duration_s %v, MB/s %v; want the half second measured", r.DurationS, r.MBPerSec)
	}
}
