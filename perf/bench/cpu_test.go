package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestProcessCPUCountsWork spins until this process has used 100 ms more
// CPU by getrusage, then expects /proc to show at least half of it (it
// counts in 10 ms ticks); a process that does not exist is an error.
func TestProcessCPUCountsWork(t *testing.T) {
	before, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for start := selfCPU(); selfCPU()-start < 100*time.Millisecond; {
	}
	after, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after - before; d < 50*time.Millisecond {
		t.Fatalf("/proc counted %v of 100 ms of work", d)
	}
	if _, err := ProcessCPU(1 << 30); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

// TestRunReportsServerCPU runs the generator against connections answered
// in-process, naming this process as the server: the server's and the
// generator's CPU over the window are then one process's, and must agree
// to within /proc's tick.
func TestRunReportsServerCPU(t *testing.T) {
	cfg := Config{Op: Get, Size: 16, Conns: 2, Pipeline: 4, Keys: 100, Duration: 300 * time.Millisecond,
		Warmup: 50 * time.Millisecond, ServerPID: os.Getpid(), Keep: true}
	dial := func(context.Context) (Conn, error) { return &nullConn{}, nil }
	st, err := Run(context.Background(), cfg, dial)
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUError != "" || st.GenCPU <= 0 {
		t.Fatalf("CPU figures: server %v, generator %v, error %q", st.ServerCPU, st.GenCPU, st.CPUError)
	}
	if d := st.ServerCPU - st.GenCPU; d < -20*time.Millisecond || d > 20*time.Millisecond {
		t.Fatalf("one process measured twice: %v by /proc, %v by getrusage", st.ServerCPU, st.GenCPU)
	}
	r := NewResult("pocket://x", "", st)
	if r.GenCPUus <= 0 || r.CPUError != "" {
		t.Fatalf("result: %+v", r)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil || !strings.Contains(b.String(), "us/op, generator") {
		t.Fatalf("text report without the CPU line: %q, %v", b.String(), err)
	}
}

// TestRunCPUWindowMissing: a run that ends before its window closes (the
// connections fail at once) reports why it has no CPU figures.
func TestRunCPUWindowMissing(t *testing.T) {
	w := startCPUWindow(os.Getpid(), time.Now().Add(time.Hour), time.Now().Add(2*time.Hour))
	if _, _, err := w.result(); err == nil {
		t.Fatal("no error for a window that never opened")
	}
}

func TestServerPIDFlag(t *testing.T) {
	var errOut strings.Builder
	if _, err := ParseArgs([]string{"--addr", "127.0.0.1:1", "--server-pid", "1073741824"}, &errOut); err == nil {
		t.Fatal("--server-pid of a process that does not exist: accepted")
	}
	o, err := ParseArgs([]string{"--addr", "127.0.0.1:1", "--server-pid", "1"}, &errOut)
	if err != nil || o.Config.ServerPID != 1 {
		t.Fatalf("--server-pid 1: %v", err)
	}
}

// TestCPUWindowResultAtTheClose asks for the result the moment the window
// closes, before its close sample's timer has (necessarily) fired, as Run
// does when the workers stop on time: the result waits for the sample.
// (A memcached 1-conn run lost its figures so before.)
func TestCPUWindowResultAtTheClose(t *testing.T) {
	for range 20 {
		end := time.Now().Add(20 * time.Millisecond)
		w := startCPUWindow(os.Getpid(), time.Now(), end)
		time.Sleep(time.Until(end))
		if _, _, err := w.result(); err != nil {
			t.Fatal(err)
		}
	}
}
