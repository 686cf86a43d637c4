package nvme

import (
	"errors"
	"math/rand"
	"sync"
	"testing"
	"unsafe"
)

// TestHostileMmapBuffersInUseAfterClose: InUse is "the number of bytes
// handed out". Close forgets the kept one-block buffers (m.spare = nil)
// without giving them back to the Allocator, so after Close InUse counts
// every kept block as still handed out although the caller holds nothing.
// befe0e9's parent reported 0 here.
func TestHostileMmapBuffersInUseAfterClose(t *testing.T) {
	m, err := NewMmapBuffers(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	var held [][]byte
	for range 4 {
		b, err := m.AllocAligned(4096, 4096)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, b)
	}
	for _, b := range held {
		m.Free(b)
	}
	if got := m.InUse(); got != 0 {
		t.Fatalf("in use before Close with nothing held: %d", got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := m.InUse(); got != 0 {
		t.Fatalf("in use after Close with nothing held: %d bytes (the kept blocks), want 0", got)
	}
}

// TestHostileMmapBuffersChurn: many goroutines allocate buffers of sizes
// around one block (below, at, just above, several blocks), fill them with
// their own pattern, hold a few, check the pattern and free; a live buffer
// never overlaps another (tracked by address) and none is overwritten.
// Afterwards nothing is in use, the refusals left nothing inconsistent, a
// buffer as large as the whole region fits (the kept blocks go back), and
// once it is freed the Allocator holds the region whole in one extent.
func TestHostileMmapBuffersChurn(t *testing.T) {
	const size = 512 << 10
	m, err := NewMmapBuffers(size)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	base := uintptr(unsafe.Pointer(&m.mem[0]))
	var (
		omu   sync.Mutex
		owner = make([]int, size/4096) // block -> goroutine+1 holding it
	)
	claim := func(g int, b []byte, on bool) {
		omu.Lock()
		defer omu.Unlock()
		off := int(uintptr(unsafe.Pointer(&b[0])) - base)
		for i := off / 4096; i < (off+len(b)+4095)/4096; i++ {
			if on {
				if owner[i] != 0 {
					t.Errorf("goroutine %d got bytes [%d,%d) overlapping a live buffer of goroutine %d", g, off, off+len(b), owner[i]-1)
					return
				}
				owner[i] = g + 1
			} else {
				owner[i] = 0
			}
		}
	}
	sizes := []int{1, 100, 4095, 4096, 4097, 8192, 12000, 40960}
	aligns := []int{1, 512, 4096}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			var held [][]byte
			check := func(b []byte) {
				for _, c := range b {
					if c != byte(g+1) {
						t.Errorf("goroutine %d: buffer of %d bytes overwritten", g, len(b))
						return
					}
				}
			}
			for i := 0; i < 1500 && !t.Failed(); i++ {
				if len(held) > 0 && (len(held) > 6 || rng.Intn(2) == 0) {
					j := rng.Intn(len(held))
					b := held[j]
					held[j] = held[len(held)-1]
					held = held[:len(held)-1]
					check(b)
					claim(g, b, false)
					m.Free(b)
					continue
				}
				n := sizes[rng.Intn(len(sizes))]
				b, err := m.AllocAligned(n, aligns[rng.Intn(len(aligns))])
				if errors.Is(err, ErrNoSpace) {
					continue
				}
				if err != nil {
					t.Errorf("AllocAligned(%d): %v", n, err)
					return
				}
				if len(b) != n || cap(b) != n || uintptr(unsafe.Pointer(&b[0]))%4096 != 0 {
					t.Errorf("AllocAligned(%d): len %d cap %d addr %p", n, len(b), cap(b), &b[0])
					return
				}
				claim(g, b, true)
				for k := range b {
					b[k] = byte(g + 1)
				}
				held = append(held, b)
			}
			for _, b := range held {
				check(b)
				claim(g, b, false)
				m.Free(b)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got := m.InUse(); got != 0 {
		t.Fatalf("in use after every buffer came back: %d", got)
	}
	if _, err := m.AllocAligned(size+1, 4096); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a buffer past the region: %v", err)
	}
	if got := m.InUse(); got != 0 {
		t.Fatalf("in use after a refused allocation: %d", got)
	}
	all, err := m.AllocAligned(size, 4096)
	if err != nil {
		t.Fatalf("the whole region after the churn: %v", err)
	}
	if m.InUse() != size {
		t.Fatalf("in use with the whole region out: %d", m.InUse())
	}
	m.Free(all)
	if m.InUse() != 0 || m.alloc.Used() != 0 || m.alloc.Fragments() != 1 || m.alloc.Largest() != size {
		t.Fatalf("after freeing the whole region: in use %d, allocator used %d, %d free extents, largest %d",
			m.InUse(), m.alloc.Used(), m.alloc.Fragments(), m.alloc.Largest())
	}
	mustPanic(t, "double free of the whole region", func() { m.Free(all) })
}
