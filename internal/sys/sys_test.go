package sys

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"unsafe"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProbeHugeTLB(t *testing.T) {
	cases := []struct {
		name    string
		meminfo string
		ok      bool
	}{
		{"reserved", "MemTotal: 100 kB\nHugePages_Total:      16\nHugePages_Free:       16\nHugepagesize:       2048 kB\n", true},
		{"none reserved", "HugePages_Total:       0\nHugepagesize:       2048 kB\n", false},
		{"1 GiB default page", "HugePages_Total:       4\nHugepagesize:    1048576 kB\n", false},
		{"no fields", "MemTotal: 100 kB\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := probeHugeTLB(writeFile(t, c.meminfo))
			if c.ok && err != nil {
				t.Fatalf("probe: %v, want nil", err)
			}
			if !c.ok && !errors.Is(err, ErrNotSupported) {
				t.Fatalf("probe: %v, want ErrNotSupported", err)
			}
		})
	}
	if err := probeHugeTLB(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("missing meminfo: %v, want ErrNotSupported", err)
	}
}

func TestProbeTHP(t *testing.T) {
	for body, ok := range map[string]bool{
		"[always] madvise never\n": true,
		"always [madvise] never\n": true,
		"always madvise [never]\n": false,
	} {
		err := probeTHP(writeFile(t, body))
		if ok != (err == nil) || (!ok && !errors.Is(err, ErrNotSupported)) {
			t.Errorf("probeTHP(%q) = %v, want ok=%v", body, err, ok)
		}
	}
}

func TestProbesAreCached(t *testing.T) {
	a, b := HugeTLBSupported(), HugeTLBSupported()
	if a != b {
		t.Fatalf("HugeTLBSupported changed between calls: %v then %v", a, b)
	}
	if a != nil && !errors.Is(a, ErrNotSupported) {
		t.Fatalf("HugeTLBSupported: %v does not wrap ErrNotSupported", a)
	}
	if c, d := THPSupported(), THPSupported(); c != d {
		t.Fatalf("THPSupported changed between calls: %v then %v", c, d)
	}
}

func TestMapModes(t *testing.T) {
	for _, mode := range []HugeMode{HugeOff, HugeAuto, HugeAdvise} {
		r, err := Map(3<<20+1, mode)
		if err != nil {
			t.Fatalf("Map mode %d: %v", mode, err)
		}
		want := int64(4 << 20) // rounded up to 2 MiB
		if mode == HugeOff {
			want = 3<<20 + int64(os.Getpagesize())
		}
		if r.Len() != want {
			t.Errorf("mode %d: Len %d, want %d", mode, r.Len(), want)
		}
		b := r.Bytes()
		if uintptr(unsafe.Pointer(&b[0]))%HugePageSize != 0 {
			t.Errorf("mode %d: base %p not 2 MiB aligned", mode, &b[0])
		}
		if mode == HugeOff && r.Backing() != BackingPages {
			t.Errorf("HugeOff gave backing %v", r.Backing())
		}
		if mode != HugeOff && THPSupported() == nil && r.Backing() == BackingPages {
			t.Errorf("mode %d with THP available gave plain pages", mode)
		}
		if mode == HugeAdvise && r.Backing() == BackingHugeTLB {
			t.Errorf("HugeAdvise took reserved hugetlb pages")
		}
		if b[len(b)-1] != 0 {
			t.Errorf("fresh mapping not zeroed")
		}
		b[0], b[len(b)-1] = 1, 2
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if r.Bytes() != nil || r.Len() != 0 {
			t.Errorf("closed region still exposes memory")
		}
	}
}

func TestMapHugeRequire(t *testing.T) {
	r, err := Map(HugePageSize, HugeRequire)
	if HugeTLBSupported() != nil {
		if !errors.Is(err, ErrNotSupported) {
			t.Fatalf("HugeRequire without reserved pages: %v, want ErrNotSupported", err)
		}
		t.Skipf("no hugetlb pages reserved: %v", HugeTLBSupported())
	}
	if err != nil {
		if !errors.Is(err, ErrNotSupported) {
			t.Fatalf("HugeRequire: %v does not wrap ErrNotSupported", err)
		}
		t.Skipf("hugetlb pages reserved but none free: %v", err)
	}
	defer r.Close()
	if r.Backing() != BackingHugeTLB {
		t.Fatalf("backing %v, want hugetlb", r.Backing())
	}
	r.Bytes()[HugePageSize-1] = 1
}

func TestMapErrors(t *testing.T) {
	if _, err := Map(0, HugeOff); err == nil {
		t.Error("Map(0) succeeded")
	}
	if _, err := Map(math.MaxInt64, HugeOff); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Map(MaxInt64): %v, want ErrOutOfRange", err)
	}
	_, err := Map(1<<62, HugeOff)
	var se *os.SyscallError
	if !errors.As(err, &se) || se.Syscall != "mmap" {
		t.Errorf("Map(4 EiB): %v, want an mmap SyscallError", err)
	}
}

func TestSliceBounds(t *testing.T) {
	r, err := Map(HugePageSize, HugeOff)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := r.Len()
	good := [][2]int64{{0, 0}, {0, n}, {n, 0}, {n - 1, 1}, {4096, 100}}
	for _, g := range good {
		b, err := r.Slice(g[0], g[1])
		if err != nil || int64(len(b)) != g[1] {
			t.Errorf("Slice(%d, %d) = len %d, %v", g[0], g[1], len(b), err)
		}
	}
	bad := [][2]int64{{-1, 1}, {0, -1}, {n, 1}, {1, n}, {math.MaxInt64, math.MaxInt64}, {1, math.MaxInt64}}
	for _, g := range bad {
		if _, err := r.Slice(g[0], g[1]); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("Slice(%d, %d): %v, want ErrOutOfRange", g[0], g[1], err)
		}
	}
	b, _ := r.Slice(100, 1)
	b[0] = 7
	if r.Bytes()[100] != 7 {
		t.Error("Slice does not alias the region")
	}
	r.Close()
	if _, err := r.Slice(0, 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Slice after Close: %v, want ErrOutOfRange", err)
	}
}

func TestPrefetchNeverFaults(t *testing.T) {
	b := make([]byte, 128)
	Prefetch(unsafe.Pointer(&b[0]))
	Prefetch(nil)
	prefetch(1 << 47) // unmapped on purpose: the hint must not fault
	prefetch(^uintptr(0))
	PrefetchLines(unsafe.Pointer(&b[0]), 2)
	PrefetchLines(nil, 3)
	PrefetchLines(unsafe.Pointer(&b[0]), 0)
	PrefetchLines(unsafe.Pointer(&b[0]), -1)
	prefetchLines(1<<47, 64)         // unmapped lines
	prefetchLines(^uintptr(0)-64, 4) // running past the top of the address space
	if b[0] != 0 {
		t.Fatal("prefetch changed memory")
	}
}

// BenchmarkPrefetchRecord compares prefetching a 1 KiB record's 17 lines
// one call per line with one PrefetchLines call, over records spread
// through 64 MiB so most lines miss.
func BenchmarkPrefetchRecord(b *testing.B) {
	mem := make([]byte, 64<<20)
	const rec, lines = 4096 + 64, 17
	b.Run("per-line", func(b *testing.B) {
		off := 0
		for b.Loop() {
			p := unsafe.Pointer(&mem[off])
			for l := range lines {
				Prefetch(unsafe.Add(p, l*LineSize))
			}
			off = (off + 7*rec) % (len(mem) - rec)
		}
	})
	b.Run("one-call", func(b *testing.B) {
		off := 0
		for b.Loop() {
			PrefetchLines(unsafe.Pointer(&mem[off]), lines)
			off = (off + 7*rec) % (len(mem) - rec)
		}
	})
}
