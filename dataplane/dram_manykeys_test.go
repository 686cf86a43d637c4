package dataplane

import (
	"fmt"
	"testing"
)

// BenchmarkDRAMGetManyKeys opens random keys among many, where the index
// no longer fits in the caches: a get then costs dependent cache and TLB
// misses (about 0.6 us here against 50 ns with 64 keys). Part of that is
// this benchmark's own key slice and key bytes, which a node finds hot in
// its read buffer. The off-heap index measured no faster here than the
// map[string]*version it replaced, yet raised a node's pipelined 1 KiB get
// and put throughput by a fifth: with the key hot, a get's misses are the
// slot and the record, whose lines the reply copies anyway.
//
// The copy variants also read the value, as a get does when it copies the
// value into the reply; that read is what the record layout (key and value
// sharing cache lines) is for.
func BenchmarkDRAMGetManyKeys(b *testing.B) {
	for _, n := range []int{64, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) { benchManyKeys(b, n, false) })
		b.Run(fmt.Sprintf("copy/keys=%d", n), func(b *testing.B) { benchManyKeys(b, n, true) })
	}
}

func benchManyKeys(b *testing.B, n int, read bool) {
	d, err := NewDRAM(1<<30, DRAMOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	job := []byte("bench")
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "bench-key-%08d", i)
		p, err := d.Create(job, keys[i], 1024, Meta{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	x := uint64(1)
	for i := 0; i < b.N; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		v, err := d.Open(job, keys[(x>>33)%uint64(n)])
		if err != nil {
			b.Fatal(err)
		}
		if read {
			for _, s := range v.Segments() {
				copy(buf, s)
			}
		}
		v.Release()
	}
}

// BenchmarkDRAMPutManyKeys overwrites random keys among many with 1 KiB
// values, as a node's pipelined put benchmark does: each put's chunk is the
// one the put before it freed (the old value of another key), cold in the
// caches, and its payload copy must fetch every line for writing before
// the index lock that follows can be taken. Each put does a little work of
// its own between two tier calls, as a node parses the next request.
func BenchmarkDRAMPutManyKeys(b *testing.B) {
	const n = 100_000
	d, err := NewDRAM(1<<30, DRAMOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	job := []byte("bench")
	keys := make([][]byte, n)
	src := make([]byte, 1024)
	putAll := func(key []byte) {
		p, err := d.Create(job, key, int64(len(src)), Meta{})
		if err != nil {
			b.Fatal(err)
		}
		rest := src
		for _, buf := range p.Buffers() {
			rest = rest[copy(buf, rest):]
		}
		if _, err := p.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "bench-key-%08d", i)
		putAll(keys[i])
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	b.ResetTimer()
	x := uint64(1)
	for i := 0; i < b.N; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		putAll(keys[(x>>33)%n])
	}
}
