package dataplane

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestKeyDeleteMarkHandshake checks versionTable's delete/mark
// handshake under stress: a delete of k that beginKeyDelete let through
// and a mover of k past markWaiting are never in their critical sections
// at once, and a mover is not starved by a steady stream of deletes of
// other keys (each new one takes the slow path while a mark stands).
func TestKeyDeleteMarkHandshake(t *testing.T) {
	v := newVersionTable()
	var inDel, reading atomic.Int64
	var bad atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	keys := [][]byte{[]byte("k"), []byte("other1"), []byte("other2")}
	for g := 0; g < 6; g++ {
		key := keys[g%len(keys)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				d, ok := v.beginKeyDelete(KindDRAM, []byte("j"), key)
				if !ok {
					continue
				}
				if string(key) == "k" {
					inDel.Add(1)
					if reading.Load() != 0 {
						bad.Add(1)
					}
					for i := 0; i < 50; i++ {
						_ = i
					}
					inDel.Add(-1)
				}
				d.end()
			}
		}()
	}
	var worst time.Duration
	moves := 0
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		start := time.Now()
		unmark := v.markWaiting(KindDRAM, []byte("j"), []byte("k"))
		worst = max(worst, time.Since(start))
		reading.Store(1)
		if inDel.Load() != 0 {
			bad.Add(1)
		}
		time.Sleep(20 * time.Microsecond)
		reading.Store(0)
		unmark()
		moves++
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d moves, longest markWaiting %v, unregistered left %d", moves, worst, v.unregistered.Load())
	if bad.Load() != 0 {
		t.Fatalf("%d overlaps of a delete of k and the mover's read", bad.Load())
	}
	if v.unregistered.Load() != 0 || len(v.deletingKeys) != 0 {
		t.Fatalf("counts left: unregistered %d, deletingKeys %v", v.unregistered.Load(), v.deletingKeys)
	}
	if worst > 500*time.Millisecond {
		t.Fatalf("a mover waited %v", worst)
	}
}

// TestKeyDeleteFastPathAllocs: with no key marked, a delete's
// registration allocates nothing.
func TestKeyDeleteFastPathAllocs(t *testing.T) {
	v := newVersionTable()
	job, key := []byte("j"), []byte("k")
	if n := testing.AllocsPerRun(1000, func() {
		d, _ := v.beginKeyDelete(KindDRAM, job, key)
		defer d.end()
	}); n != 0 {
		t.Fatalf("%v allocations per delete", n)
	}
}
