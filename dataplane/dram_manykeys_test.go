package dataplane

import (
	"fmt"
	"testing"
)

// BenchmarkDRAMGetManyKeys opens random keys among many, where the index
// no longer fits in the caches: a get then costs several dependent cache
// and TLB misses (about 0.5 us here against 40 ns with 64 keys). A hash-keyed
// index with keys inline in the slots measured no better, and was dropped;
// transparent huge pages for the whole process ("always") cut it by a
// third.
func BenchmarkDRAMGetManyKeys(b *testing.B) {
	for _, n := range []int{64, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			d, err := NewDRAM(1<<30, DRAMOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			job := []byte("bench")
			keys := make([][]byte, n)
			for i := range keys {
				keys[i] = fmt.Appendf(nil, "bench-key-%08d", i)
				p, err := d.Create(job, keys[i], 1024, 0)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			x := uint64(1)
			for i := 0; i < b.N; i++ {
				x = x*6364136223846793005 + 1442695040888963407
				v, err := d.Open(job, keys[(x>>33)%uint64(n)])
				if err != nil {
					b.Fatal(err)
				}
				v.Release()
			}
		})
	}
}
