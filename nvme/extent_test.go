package nvme

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// allocModel checks an Allocator against a bitmap of blocks.
type allocModel struct {
	t     testing.TB
	a     *Allocator
	used  []bool
	held  []Extent
	block int64
}

func newAllocModel(t testing.TB, blocks int64) *allocModel {
	const block = 4096
	a, err := NewAllocator(blocks*block, block)
	if err != nil {
		t.Fatal(err)
	}
	return &allocModel{t: t, a: a, used: make([]bool, blocks), block: block}
}

func (m *allocModel) mark(e Extent, v bool) {
	if e.Off%m.block != 0 || e.Len <= 0 || e.Len%m.block != 0 || e.End() > m.a.Capacity() {
		m.t.Fatalf("bad extent %+v", e)
	}
	for b := e.Off / m.block; b < e.End()/m.block; b++ {
		if m.used[b] == v {
			m.t.Fatalf("block %d already %v (extent %+v)", b, v, e)
		}
		m.used[b] = v
	}
}

func (m *allocModel) alloc(n int64, scattered bool) {
	var got []Extent
	var err error
	if scattered {
		got, err = m.a.AllocScattered(n, 8)
	} else {
		var e Extent
		if e, err = m.a.Alloc(n); err == nil {
			got = []Extent{e}
		}
	}
	freeBefore := m.freeBlocks()
	if err != nil {
		if !errors.Is(err, ErrNoSpace) {
			m.t.Fatalf("alloc %d: %v", n, err)
		}
		if !scattered && m.longestRun() >= m.a.Round(n)/m.block {
			m.t.Fatalf("alloc %d refused with a free run of %d blocks", n, m.longestRun())
		}
		if scattered && freeBefore >= m.a.Round(n)/m.block && m.runs() <= 8 {
			m.t.Fatalf("scattered alloc %d refused with %d free blocks in %d runs", n, freeBefore, m.runs())
		}
		return
	}
	var total int64
	for _, e := range got {
		m.mark(e, true)
		total += e.Len
	}
	if total != m.a.Round(n) {
		m.t.Fatalf("alloc %d gave %d bytes", n, total)
	}
	m.held = append(m.held, got...)
}

func (m *allocModel) free(i int) {
	e := m.held[i]
	m.held[i] = m.held[len(m.held)-1]
	m.held = m.held[:len(m.held)-1]
	if err := m.a.Free(e); err != nil {
		m.t.Fatalf("free %+v: %v", e, err)
	}
	m.mark(e, false)
	if err := m.a.Free(e); !errors.Is(err, ErrForeign) {
		m.t.Fatalf("double free of %+v: %v", e, err)
	}
}

func (m *allocModel) freeBlocks() int64 {
	var n int64
	for _, u := range m.used {
		if !u {
			n++
		}
	}
	return n
}

func (m *allocModel) longestRun() int64 {
	var best, cur int64
	for _, u := range m.used {
		if u {
			cur = 0
			continue
		}
		cur++
		best = max(best, cur)
	}
	return best
}

// runs counts maximal free runs: the number of fragments a fully merging
// allocator must have.
func (m *allocModel) runs() int {
	n := 0
	for i, u := range m.used {
		if !u && (i == 0 || m.used[i-1]) {
			n++
		}
	}
	return n
}

func (m *allocModel) check() {
	if got, want := m.a.Used(), (int64(len(m.used))-m.freeBlocks())*m.block; got != want {
		m.t.Fatalf("Used %d, model %d", got, want)
	}
	if got, want := m.a.Fragments(), m.runs(); got != want {
		m.t.Fatalf("%d free fragments, model has %d runs (not merged)", got, want)
	}
	if got, want := m.a.Largest(), m.longestRun()*m.block; got != want {
		m.t.Fatalf("Largest %d, model %d", got, want)
	}
}

func (m *allocModel) step(op, arg byte) {
	switch {
	case op%3 != 0 || len(m.held) == 0:
		n := int64(arg)%40*m.block + int64(op)%m.block + 1
		m.alloc(n, op%5 == 0)
	default:
		m.free(int(arg) % len(m.held))
	}
	m.check()
}

func TestAllocatorProperties(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 42))
		m := newAllocModel(t, 256)
		for range 2000 {
			m.step(byte(rng.Uint32()), byte(rng.Uint32()))
		}
		for len(m.held) > 0 {
			m.free(0)
		}
		m.check()
		if m.a.Fragments() != 1 || m.a.Largest() != m.a.Capacity() {
			t.Fatalf("seed %d: after freeing all, %d fragments, largest %d", seed, m.a.Fragments(), m.a.Largest())
		}
	}
}

func TestAllocatorScatteredUsesFragments(t *testing.T) {
	a, err := NewAllocator(16*4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var es []Extent
	for range 16 {
		e, err := a.Alloc(4096)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	for i := 0; i < 16; i += 2 { // free every other block: 8 one-block holes
		if err := a.Free(es[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Alloc(2 * 4096); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("contiguous alloc in a splintered space: %v", err)
	}
	if _, err := a.AllocScattered(8*4096, 4); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "smaller values still fit") {
		// Before, it said "free space splintered past 4 pieces", and not
		// what to do (a hostile trial).
		t.Fatalf("scattered alloc beyond the piece cap: %v; want ErrNoSpace saying smaller values still fit", err)
	}
	if a.Used() != 8*4096 {
		t.Fatalf("a refused scattered alloc leaked: used %d", a.Used())
	}
	got, err := a.AllocScattered(8*4096, 8)
	if err != nil || len(got) != 8 {
		t.Fatalf("scattered alloc: %v, %d pieces", err, len(got))
	}
	if _, err := a.AllocScattered(4096, 8); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("alloc in a full space: %v", err)
	}
}

func TestAllocatorRejects(t *testing.T) {
	if _, err := NewAllocator(1<<20, 3000); err == nil {
		t.Fatal("non-power-of-two block accepted")
	}
	if _, err := NewAllocator(100, 4096); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("capacity below a block: %v", err)
	}
	a, _ := NewAllocator(1<<20, 4096)
	if _, err := a.Alloc(0); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("zero alloc: %v", err)
	}
	if err := a.Free(Extent{Off: 4096, Len: 4096}); !errors.Is(err, ErrForeign) {
		t.Fatalf("free of an unallocated extent: %v", err)
	}
	e, _ := a.Alloc(3 * 4096)
	if err := a.Free(Extent{Off: e.Off, Len: 4096}); !errors.Is(err, ErrForeign) {
		t.Fatalf("partial free: %v", err)
	}
}

func FuzzAllocator(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 0, 0, 6, 9, 3, 1})
	f.Add([]byte{5, 200, 5, 200, 3, 0, 3, 0, 10, 39})
	f.Fuzz(func(t *testing.T, ops []byte) {
		m := newAllocModel(t, 64)
		for i := 0; i+1 < len(ops); i += 2 {
			m.step(ops[i], ops[i+1])
		}
		for len(m.held) > 0 {
			m.free(len(m.held) - 1)
		}
		m.check()
	})
}

func BenchmarkAllocatorChurn(b *testing.B) {
	a, _ := NewAllocator(1<<30, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	held := make([]Extent, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		if len(held) < 1000 {
			e, err := a.Alloc(int64(1+rng.IntN(256)) * 4096)
			if err == nil {
				held = append(held, e)
			}
			continue
		}
		i := rng.IntN(len(held))
		_ = a.Free(held[i])
		held[i] = held[len(held)-1]
		held = held[:len(held)-1]
	}
}
