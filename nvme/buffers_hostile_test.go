package nvme

import "testing"

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
