package nvme

import (
	"errors"
	"testing"
	"unsafe"
)

func TestMmapBuffers(t *testing.T) {
	m, err := NewMmapBuffers(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var held [][]byte
	for _, n := range []int{1, 4096, 5000, 65536, 3} {
		b, err := m.AllocAligned(n, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != n || uintptr(unsafe.Pointer(&b[0]))%4096 != 0 {
			t.Fatalf("AllocAligned(%d): len %d addr %p", n, len(b), &b[0])
		}
		for i := range b {
			b[i] = byte(len(held))
		}
		held = append(held, b)
	}
	for i, b := range held { // no buffer overwrote another
		for _, c := range b {
			if c != byte(i) {
				t.Fatalf("buffer %d overwritten", i)
			}
		}
	}
	if _, err := m.AllocAligned(2<<20, 4096); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("oversized alloc: %v", err)
	}
	if _, err := m.AllocAligned(10, 1<<20); !errors.Is(err, ErrAlign) {
		t.Fatalf("alignment past the page: %v", err)
	}
	for _, b := range held {
		m.Free(b)
	}
	if m.InUse() != 0 {
		t.Fatalf("in use after freeing all: %d", m.InUse())
	}
	mustPanic(t, "foreign", func() { m.Free(make([]byte, 10)) })
	b, _ := m.AllocAligned(100, 512)
	m.Free(b)
	mustPanic(t, "double free", func() { m.Free(b) })
	if len(m.Regions()) != 1 || len(m.Regions()[0]) != 1<<20 {
		t.Fatal("one 1 MiB region expected")
	}
}

func mustPanic(t *testing.T, name string, fn func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s: no panic", name)
		}
	}()
	fn()
}

// TestMmapBuffersSpareBlocks: a freed one-block buffer is handed out again
// by the next small allocation without counting as in use meanwhile; a
// second free of it, or a free of a block never handed out, still panics;
// and spare blocks go back to the allocator when a larger buffer needs
// their room.
func TestMmapBuffersSpareBlocks(t *testing.T) {
	const size = 64 << 10
	m, err := NewMmapBuffers(size)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a, err := m.AllocAligned(4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	m.Free(a)
	if m.InUse() != 0 {
		t.Fatalf("in use after the free: %d", m.InUse())
	}
	if _, err := m.AllocAligned(0, 4096); !errors.Is(err, ErrNoSpace) || len(m.spare) != 1 {
		t.Fatalf("a zero-byte alloc: %v, %d spare; want ErrNoSpace and the spare block kept", err, len(m.spare))
	}
	b, err := m.AllocAligned(100, 512)
	if err != nil {
		t.Fatal(err)
	}
	if &b[0] != &a[0] || len(b) != 100 || cap(b) != 100 {
		t.Fatalf("small alloc after a free: %p len %d cap %d, want the freed block %p", &b[0], len(b), cap(b), &a[0])
	}
	if m.InUse() != 4096 {
		t.Fatalf("in use with one block out: %d", m.InUse())
	}
	m.Free(b)
	mustPanic(t, "double free of a spare block", func() { m.Free(b) })
	mustPanic(t, "free of a block never handed out", func() { m.Free(m.mem[8192 : 8192+4096]) })

	var all [][]byte
	for range size / 4096 {
		c, err := m.AllocAligned(4096, 4096)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, c)
	}
	if _, err := m.AllocAligned(1, 1); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("alloc from a full source: %v", err)
	}
	for _, c := range all {
		m.Free(c)
	}
	if len(m.spare) != size/4096 || m.InUse() != 0 {
		t.Fatalf("after freeing every block: %d spare, %d in use", len(m.spare), m.InUse())
	}
	big, err := m.AllocAligned(size, 4096)
	if err != nil {
		t.Fatalf("a buffer as large as the source with every block spare: %v", err)
	}
	if len(m.spare) != 0 || m.InUse() != size {
		t.Fatalf("after the large alloc: %d spare, %d in use", len(m.spare), m.InUse())
	}
	m.Free(big)
	if m.InUse() != 0 || m.alloc.Fragments() != 1 {
		t.Fatalf("after freeing it: %d in use, %d free extents", m.InUse(), m.alloc.Fragments())
	}
}
