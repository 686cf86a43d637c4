package dataplane

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/nvme"
)

// Hostile tests of the NVMe tier's reader references (nvmeVersion.readers
// and .retired, atomics taken under the read lock): a version's extents
// must be freed exactly once, after the last reader let go, and never
// while one still reads them.

// seqValue is n bytes holding seq as a little-endian uint64 over and over.
func seqValue(seq uint64, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], seq)
	}
	return b
}

// seqOf returns the seq a seqValue chunk holds, or an error if the chunk
// mixes several.
func seqOf(b []byte) (uint64, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("chunk of %d bytes", len(b))
	}
	s := binary.LittleEndian.Uint64(b)
	for i := 8; i+8 <= len(b); i += 8 {
		if got := binary.LittleEndian.Uint64(b[i:]); got != s {
			return 0, fmt.Errorf("torn chunk: seq %d at 0, %d at %d", s, got, i)
		}
	}
	return s, nil
}

// TestHostileNVMeReadersLastReleaseRace attacks the gap in doneReading
// between the decrement (readers.Add(-1) == 0) and the look at retired.
// Reader A drops the count of a live version to 0 and, before it loads
// retired, reader B acquires the version (the read lock is free) and an
// overwrite retires it (retire sees B's reference and keeps the extents).
// A then loads retired == true and frees the extents under B, which still
// reads them: a put reuses them and B reads another value's bytes (or
// reads nothing into its buffer: the version's ext is nil). B's own close
// then finds nothing to free, so no allocator panic gives it away; the
// race detector sees A's write of v.ext against B's read.
//
// Fast readers open and close streams (no I/O: the gap is a large share
// of their time) while slow readers hold a stream for up to a few
// milliseconds, reading its one chunk before and after and checking,
// under the lock, that the version still has its extents. More Ps than
// CPUs let the OS preempt a fast reader inside the gap.
func TestHostileNVMeReadersLastReleaseRace(t *testing.T) {
	const size = 4096
	tier := fileNVMe(t, nvme.Options{Size: 4 << 20, Engine: nvme.EngineSync, BufferPool: 16 << 20}, NVMeOptions{ChunkSize: 4096})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4 * max(runtime.NumCPU(), 4)))
	job, key := []byte("job"), []byte("k")
	var seq atomic.Uint64
	put := func() error {
		s := seq.Add(1)
		p, err := tier.Create(job, key, size, Meta{})
		if err != nil {
			return err
		}
		copy(p.Buffers()[0], seqValue(s, size))
		_, err = p.Commit()
		return err
	}
	if err := put(); err != nil {
		t.Fatal(err)
	}

	var (
		stop     atomic.Bool
		failures atomic.Int32
		wg       sync.WaitGroup
		holds    atomic.Int64
	)
	fail := func(format string, args ...any) {
		if failures.Add(1) <= 5 {
			t.Errorf(format, args...)
		}
		stop.Store(true)
	}
	// Fast readers: acquire and drop, nothing else.
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				s, err := tier.OpenStream(job, key, size, -1)
				if err != nil || s == nil {
					continue
				}
				s.close()
			}
		})
	}
	// Slow readers: hold the reference across overwrites.
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for !stop.Load() {
				s, err := tier.OpenStream(job, key, size, -1)
				if err != nil || s == nil {
					continue
				}
				buf, seg, err := s.readWait(0)
				if err != nil {
					fail("slow reader %d: read: %v", r, err)
					s.close()
					return
				}
				first, err := seqOf(seg)
				s.free(buf)
				if err != nil {
					fail("slow reader %d: first read: %v", r, err)
				}
				time.Sleep(time.Duration(50+rng.IntN(1500)) * time.Microsecond)
				tier.mu.RLock()
				ext := len(s.v.ext)
				tier.mu.RUnlock()
				if ext == 0 {
					fail("slow reader %d: the version it holds (seq %d) lost its extents while the stream was open", r, first)
				}
				buf, seg, err = s.readWait(0)
				if err != nil {
					fail("slow reader %d: second read: %v", r, err)
				} else {
					if again, err := seqOf(seg); err != nil || again != first {
						fail("slow reader %d: held seq %d, reread %d (%v): its extents were freed under it", r, first, again, err)
					}
					s.free(buf)
				}
				s.close()
				holds.Add(1)
			}
		})
	}
	// Writer: overwrites, now and then a delete.
	deadline := time.Now().Add(5 * time.Second)
	writes := 0
	for ; time.Now().Before(deadline) && !stop.Load(); writes++ {
		if writes%11 == 10 {
			_, _ = tier.Delete(job, key)
			continue
		}
		if err := put(); err != nil {
			fail("put: %v", err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d writes, %d slow holds", writes, holds.Load())
	if failures.Load() > 0 {
		return
	}
	if err := put(); err != nil {
		t.Fatal(err)
	}
	if u := tier.Usage(); u.Used != size || u.Values != 1 {
		t.Fatalf("after the race: %+v; want Used %d (the last value), Values 1", u, size)
	}
}
