package idlecpu

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestSpinGateFollowsIdleTime feeds the gate synthetic CPU times: it opens
// while a core is idle, closes when the machine is busy, and stays closed
// when the times cannot be read.
func TestSpinGateFollowsIdleTime(t *testing.T) {
	var idleShare atomic.Int64 // per mille of each tick that is idle
	var fail atomic.Bool
	// times returns a fresh reader: each gate's goroutine owns its sums.
	times := func() cpuTimes {
		var idle, total float64
		return func() (float64, float64, error) {
			if fail.Load() {
				return 0, 0, errors.New("no /proc")
			}
			total += 1000
			idle += float64(idleShare.Load())
			return idle, total, nil
		}
	}
	wait := func(want bool, g *Gate) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); g.Open() != want; {
			if time.Now().After(deadline) {
				t.Fatalf("gate open = %v, want %v", g.Open(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	idleShare.Store(900) // 90 % idle: at least MinIdleCores on any machine
	g := start(times(), time.Millisecond)
	defer g.Close()
	wait(true, g)
	idleShare.Store(0)
	wait(false, g)

	fail.Store(true)
	g2 := start(times(), time.Millisecond)
	defer g2.Close()
	for range 20 {
		g2.Open()
		time.Sleep(time.Millisecond)
	}
	if g2.Open() {
		t.Fatal("gate opened without CPU times")
	}
}

func TestNilGateIsOpen(t *testing.T) {
	var g *Gate
	if !g.Open() {
		t.Fatal("a nil gate must be open")
	}
	g.Close()
}

func TestCloseTwice(t *testing.T) {
	g := start(func() (float64, float64, error) { return 0, 1, nil }, time.Millisecond)
	g.Close()
	g.Close() // must neither panic nor block
}

func TestParseCPULine(t *testing.T) {
	idle, total, err := parseCPULine([]byte("cpu  100 5 50 800 20 1 3 7 0 0\ncpu0 1 2 3\n"))
	if err != nil || idle != 820 || total != 986 {
		t.Fatalf("parseCPULine = %v, %v, %v; want 820, 986, nil", idle, total, err)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu  1 2 x 4 5 6 7 8"} {
		if _, _, err := parseCPULine([]byte(bad)); err == nil {
			t.Errorf("parseCPULine(%q) accepted", bad)
		}
	}
}

func TestProcStatReads(t *testing.T) {
	idle, total, err := procStat()()
	if err != nil {
		t.Skipf("no /proc/stat here: %v", err)
	}
	if total <= 0 || idle < 0 || idle > total {
		t.Fatalf("procStat = idle %v of %v", idle, total)
	}
}

// TestGateReadsOnlyWhenAsked checks that a gate nobody asks does not read
// the CPU times (an idle node's sampler costs nothing), and reads again
// once asked.
func TestGateReadsOnlyWhenAsked(t *testing.T) {
	var reads atomic.Int64
	read := func() (float64, float64, error) {
		n := reads.Add(1)
		return float64(n * 900), float64(n * 1000), nil
	}
	g := start(read, time.Millisecond)
	defer g.Close()
	time.Sleep(30 * time.Millisecond)
	if n := reads.Load(); n > 1 {
		t.Fatalf("%d reads with nobody asking, want only the baseline", n)
	}
	for deadline := time.Now().Add(5 * time.Second); !g.Open(); {
		if time.Now().After(deadline) {
			t.Fatal("asked gate never opened on idle times")
		}
		time.Sleep(time.Millisecond)
	}
	if reads.Load() < 2 {
		t.Fatal("asked gate did not read")
	}
}
