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
		for deadline := time.Now().Add(5 * time.Second); g.open.Load() != want; {
			if time.Now().After(deadline) {
				t.Fatalf("gate open = %v, want %v", g.open.Load(), want)
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
	time.Sleep(20 * time.Millisecond)
	if g2.open.Load() {
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
