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
