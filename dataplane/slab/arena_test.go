package slab

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"unsafe"

	"github.com/pocketstore/pocket/internal/sys"
)

func newArena(t testing.TB, capacity int64, opts Options) *Arena {
	t.Helper()
	a, err := New(capacity, opts)
	if err != nil {
		t.Fatalf("New(%d): %v", capacity, err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func TestClassSizes(t *testing.T) {
	for _, ps := range []int{MinPageSize, 1 << 20, DefaultPageSize, MaxPageSize} {
		sizes := classSizes(ps)
		if sizes[0] != MinChunk || sizes[len(sizes)-1] != ps {
			t.Fatalf("page %d: classes run %d..%d, want %d..%d", ps, sizes[0], sizes[len(sizes)-1], MinChunk, ps)
		}
		if len(sizes) > 255 {
			t.Fatalf("page %d: %d classes do not fit the uint8 lookup", ps, len(sizes))
		}
		for i, s := range sizes {
			if i > 0 && s <= sizes[i-1] {
				t.Fatalf("page %d: classes not ascending at %d: %v", ps, i, sizes)
			}
			if s < directIOAlign && s%16 != 0 || s >= directIOAlign && s%directIOAlign != 0 {
				t.Errorf("page %d: class %d misaligned", ps, s)
			}
			// Below 4 KiB the ladder keeps a chunk at most 25 % (64-128 B)
			// or 12.5 % larger than the largest request it serves.
			if i > 0 && s <= directIOAlign && ps >= 1<<20 {
				limit := sizes[i-1] + sizes[i-1]/8
				if sizes[i-1] < 128 {
					limit = sizes[i-1] + sizes[i-1]/4
				}
				if s > limit {
					t.Errorf("page %d: step %d -> %d wastes too much", ps, sizes[i-1], s)
				}
			}
		}
	}
}

func TestChunkSizeIsSmallestFit(t *testing.T) {
	a := newArena(t, DefaultPageSize, Options{})
	sizes := a.ClassSizes()
	check := func(n int) {
		want := 0
		for _, s := range sizes {
			if s >= n {
				want = s
				break
			}
		}
		if got := a.ChunkSize(n); got != want {
			t.Fatalf("ChunkSize(%d) = %d, want %d", n, got, want)
		}
		floor := 0
		for _, s := range sizes {
			if s <= n {
				floor = s
			}
		}
		if got := a.FloorChunkSize(n); got != floor {
			t.Fatalf("FloorChunkSize(%d) = %d, want %d", n, got, floor)
		}
	}
	for n := 1; n <= 3*directIOAlign; n++ {
		check(n)
	}
	for n := 3 * directIOAlign; n <= a.MaxChunk(); n += 511 {
		check(n)
	}
	check(a.MaxChunk())
	if a.ChunkSize(0) != 0 || a.ChunkSize(a.MaxChunk()+1) != 0 {
		t.Fatal("ChunkSize outside (0, MaxChunk] is not 0")
	}
}

func TestAllocFreeRoundTrip(t *testing.T) {
	a := newArena(t, 4*DefaultPageSize, Options{})
	for _, n := range []int{1, 63, 64, 65, 1000, 1024, 4095, 4096, 4097, 65536, 700000, a.MaxChunk()} {
		b, err := a.Alloc(n)
		if err != nil {
			t.Fatalf("Alloc(%d): %v", n, err)
		}
		if len(b) != n || cap(b) != a.ChunkSize(n) {
			t.Fatalf("Alloc(%d): len %d cap %d, want len %d cap %d", n, len(b), cap(b), n, a.ChunkSize(n))
		}
		if !a.Contains(b) {
			t.Fatalf("Alloc(%d) returned memory outside the arena", n)
		}
		if cap(b) >= directIOAlign && addr(b)%directIOAlign != 0 {
			t.Fatalf("Alloc(%d): class %d chunk at %#x not 4096-aligned", n, cap(b), addr(b))
		}
		for i := range b {
			b[i] = byte(i)
		}
		if a.Used() != int64(cap(b)) {
			t.Fatalf("Used %d after Alloc(%d), want %d", a.Used(), n, cap(b))
		}
		if err := a.Free(b); err != nil {
			t.Fatalf("Free: %v", err)
		}
		if a.Used() != 0 || a.Stats().PagesUsed != 0 {
			t.Fatalf("after Free: used %d, pages %d", a.Used(), a.Stats().PagesUsed)
		}
	}
}

func TestAllocBadSizes(t *testing.T) {
	a := newArena(t, DefaultPageSize, Options{})
	for _, n := range []int{0, -1} {
		if _, err := a.Alloc(n); !errors.Is(err, ErrBadSize) {
			t.Errorf("Alloc(%d): %v, want ErrBadSize", n, err)
		}
	}
	if _, err := a.Alloc(a.MaxChunk() + 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Alloc(MaxChunk+1): %v, want ErrTooLarge", err)
	}
	for _, al := range []int{0, -4096, 3, 4095, 2 * a.PageSize()} {
		if _, err := a.AllocAligned(64, al); !errors.Is(err, ErrBadSize) {
			t.Errorf("AllocAligned(64, %d): %v, want ErrBadSize", al, err)
		}
	}
}

func TestNewBadOptions(t *testing.T) {
	for _, ps := range []int{1000, MinPageSize / 2, MaxPageSize * 2} {
		if _, err := New(1<<20, Options{PageSize: ps}); !errors.Is(err, ErrBadSize) {
			t.Errorf("page size %d: %v, want ErrBadSize", ps, err)
		}
	}
	if _, err := New(0, Options{}); !errors.Is(err, ErrBadSize) {
		t.Errorf("capacity 0: %v, want ErrBadSize", err)
	}
	a := newArena(t, DefaultPageSize+1, Options{})
	if a.Capacity() != 2*DefaultPageSize {
		t.Errorf("capacity %d not rounded up to whole pages", a.Capacity())
	}
}

func TestAllocAligned(t *testing.T) {
	a := newArena(t, 4*DefaultPageSize, Options{})
	for _, c := range []struct{ n, align int }{{1, 16}, {100, 4096}, {5000, 4096}, {100, 65536}, {3000, 512}, {1, a.PageSize()}} {
		b, err := a.AllocAligned(c.n, c.align)
		if err != nil {
			t.Fatalf("AllocAligned(%d, %d): %v", c.n, c.align, err)
		}
		if len(b) != c.n || addr(b)%uintptr(c.align) != 0 {
			t.Fatalf("AllocAligned(%d, %d): len %d at %#x", c.n, c.align, len(b), addr(b))
		}
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFullArenaAndPageReuse(t *testing.T) {
	const pages = 3
	a := newArena(t, pages*DefaultPageSize, Options{})
	var chunks [][]byte
	for {
		b, err := a.Alloc(1000)
		if errors.Is(err, ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = byte(len(chunks))
		}
		chunks = append(chunks, b)
	}
	per := DefaultPageSize / a.ChunkSize(1000)
	if len(chunks) != pages*per {
		t.Fatalf("filled %d chunks, want %d", len(chunks), pages*per)
	}
	if _, err := a.Alloc(a.MaxChunk()); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("big Alloc in a full arena: %v, want ErrNoSpace", err)
	}
	for i, b := range chunks {
		for _, x := range b {
			if x != byte(i) {
				t.Fatalf("chunk %d overwritten", i)
			}
		}
	}
	for _, b := range chunks {
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
	st := a.Stats()
	if st.Used != 0 || st.PagesUsed != 0 {
		t.Fatalf("after freeing all: %+v", st)
	}
	// Every page went back to the pool, so another class can take them all.
	for range pages {
		if _, err := a.Alloc(a.MaxChunk()); err != nil {
			t.Fatalf("pages not reusable by another class: %v", err)
		}
	}
}

func TestFreeRefusesForeignAndDouble(t *testing.T) {
	a := newArena(t, 2*DefaultPageSize, Options{})
	other := newArena(t, DefaultPageSize, Options{})
	b, _ := a.Alloc(1000)
	keep, _ := a.Alloc(1000) // keeps the page owned after b is freed
	ob, _ := other.Alloc(1000)
	region := unsafe.Slice((*byte)(a.base), a.size)
	foreign := map[string][]byte{
		"heap":           make([]byte, 64),
		"nil":            nil,
		"inside a chunk": b[1:],
		"other arena":    ob,
		"unowned page":   region[DefaultPageSize:],
		"page tail":      region[DefaultPageSize-1:],
	}
	for name, f := range foreign {
		if err := a.Free(f); !errors.Is(err, ErrForeign) {
			t.Errorf("Free(%s): %v, want ErrForeign", name, err)
		}
	}
	if err := a.Free(b); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(b); !errors.Is(err, ErrDoubleFree) {
		t.Errorf("second Free: %v, want ErrDoubleFree", err)
	}
	if a.Used() != int64(cap(keep)) {
		t.Errorf("refused frees changed Used: %d", a.Used())
	}
}

func TestClosed(t *testing.T) {
	a, err := New(DefaultPageSize, Options{Huge: sys.HugeOff})
	if err != nil {
		t.Fatal(err)
	}
	if a.Backing() != sys.BackingPages {
		t.Errorf("HugeOff arena backed by %v", a.Backing())
	}
	b, _ := a.Alloc(10)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Alloc(10); !errors.Is(err, ErrClosed) {
		t.Errorf("Alloc after Close: %v", err)
	}
	if err := a.Free(b); !errors.Is(err, ErrClosed) {
		t.Errorf("Free after Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStats(t *testing.T) {
	a := newArena(t, 2*DefaultPageSize, Options{})
	b1, _ := a.Alloc(100)
	b2, _ := a.Alloc(100)
	b3, _ := a.Alloc(70000)
	st := a.Stats()
	var chunks, pages int64
	for _, c := range st.Classes {
		chunks += c.Chunks
		pages += c.Pages
		if c.Size == a.ChunkSize(100) && c.Chunks != 2 {
			t.Errorf("class %d: %d chunks, want 2", c.Size, c.Chunks)
		}
	}
	if chunks != 3 || pages != 2 || st.PagesUsed != 2 || st.Pages != 2 {
		t.Errorf("stats %+v: chunks %d pages %d", st, chunks, pages)
	}
	if st.Used != int64(cap(b1)+cap(b2)+cap(b3)) || st.Capacity != 2*DefaultPageSize {
		t.Errorf("stats used %d capacity %d", st.Used, st.Capacity)
	}
}

func TestConcurrentNoOverlap(t *testing.T) {
	a := newArena(t, 16*DefaultPageSize, Options{PageSize: 1 << 20})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			var live [][]byte
			for i := range 3000 {
				if len(live) > 0 && (rng.IntN(2) == 0 || len(live) > 40) {
					j := rng.IntN(len(live))
					b := live[j]
					for _, x := range b {
						if x != byte(g) {
							t.Errorf("goroutine %d: chunk overwritten by another", g)
							return
						}
					}
					if err := a.Free(b); err != nil {
						t.Error(err)
						return
					}
					live[j] = live[len(live)-1]
					live = live[:len(live)-1]
					continue
				}
				n := 1 + rng.IntN(1<<(6+i%14))
				b, err := a.Alloc(n)
				if errors.Is(err, ErrNoSpace) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				for k := range b {
					b[k] = byte(g)
				}
				live = append(live, b)
			}
			for _, b := range live {
				if err := a.Free(b); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if a.Used() != 0 || a.Stats().PagesUsed != 0 {
		t.Fatalf("after all frees: used %d pages %d", a.Used(), a.Stats().PagesUsed)
	}
}

func TestSteadyStateAllocsNothing(t *testing.T) {
	a := newArena(t, DefaultPageSize, Options{})
	pin, _ := a.Alloc(1024) // keeps the class's page so the loop does not return it
	allocs := testing.AllocsPerRun(1000, func() {
		b, err := a.Alloc(1024)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Alloc+Free made %v heap allocations, want 0", allocs)
	}
	_ = a.Free(pin)
}

func BenchmarkAllocFree(b *testing.B) {
	for _, n := range []int{64, 1024, 65536, 1 << 20} {
		b.Run(sizeName(n), func(b *testing.B) {
			a := newArena(b, 8*DefaultPageSize, Options{})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c, err := a.Alloc(n)
					if err != nil {
						b.Error(err)
						return
					}
					if err := a.Free(c); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

func TestOffsetAt(t *testing.T) {
	a, err := New(4<<20, Options{PageSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := a.Alloc(1000)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, "hello")
	off := a.Offset(b)
	if got := a.At(off, 5); string(got) != "hello" || &got[0] != &b[0] {
		t.Fatalf("At(Offset(b)) = %q at %p, want hello at %p", got, &got[0], &b[0])
	}
	if err := a.Free(a.At(off, 1)); err != nil {
		t.Fatalf("Free through At: %v", err)
	}
	for _, f := range []func(){
		func() { a.Offset(make([]byte, 8)) },
		func() { a.At(-1, 1) },
		func() { a.At(4<<20, 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("out-of-arena access did not panic")
				}
			}()
			f()
		}()
	}
}

// TestNextOfNamesTheNextAlloc checks the prediction Free's prefetch relies
// on: in full pages of a class, the chunk just freed is the one nextOf
// names and the one the next Alloc returns; with no free chunk in the page
// nothing is named.
func TestNextOfNamesTheNextAlloc(t *testing.T) {
	a := newArena(t, 4*int64(MinPageSize), Options{PageSize: MinPageSize})
	const size = 1000
	var chunks [][]byte
	for {
		b, err := a.Alloc(size)
		if errors.Is(err, ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, b)
	}
	if len(chunks) < 8 {
		t.Fatalf("only %d chunks in the arena", len(chunks))
	}
	ci := a.classFor(size)
	c := &a.classes[ci]
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		i := r.IntN(len(chunks))
		off := uintptr(a.Offset(chunks[i]))
		p := int32(off >> a.pageShift)
		if err := a.Free(chunks[i]); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		next := a.nextOf(c, p)
		c.mu.Unlock()
		if next != off {
			t.Fatalf("after freeing offset %d, nextOf = %d", off, next)
		}
		b, err := a.Alloc(size)
		if err != nil {
			t.Fatal(err)
		}
		if got := uintptr(a.Offset(b)); got != off {
			t.Fatalf("freed offset %d, next Alloc returned %d", off, got)
		}
		c.mu.Lock()
		none := a.nextOf(c, p)
		c.mu.Unlock()
		if none != ^uintptr(0) {
			t.Fatalf("every page full, nextOf(page %d) = %d, want none", p, none)
		}
		chunks[i] = b
	}
}
