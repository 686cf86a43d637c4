package nvme

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// benchDevice opens a 256 MiB file, written end to end so reads hit
// allocated blocks ($POCKET_NVME_BENCHFILE names a file or device to use
// instead). For comparisons with fio run perf/hw/fio-compare.sh.
func benchDevice(b *testing.B, eng Engine, depth int) *Device {
	path := os.Getenv("POCKET_NVME_BENCHFILE")
	size := int64(256 << 20)
	if path == "" {
		path = filepath.Join(testDir(b), "bench")
	} else {
		size = 0
	}
	d, err := Open(path, Options{Size: size, Engine: eng, QueueDepth: depth})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	buf, err := d.AllocBuffer(1 << 20)
	if err != nil {
		b.Fatal(err)
	}
	defer d.FreeBuffer(buf)
	for off := int64(0); off+int64(len(buf)) <= d.Size() && os.Getenv("POCKET_NVME_BENCHFILE") == ""; off += int64(len(buf)) {
		if _, err := d.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	return d
}

// BenchmarkRandRead4K reads 4 KiB at random offsets with QD goroutines
// each keeping one read in flight.
func BenchmarkRandRead4K(b *testing.B) {
	for _, eng := range engines(b) {
		for _, qd := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/qd%d", eng, qd), func(b *testing.B) {
				d := benchDevice(b, eng, qd)
				benchParallel(b, d, qd, 4096, false, func(rng *rand.Rand) int64 {
					return rng.Int64N(d.Size()/4096) * 4096
				})
			})
		}
	}
}

// BenchmarkSeq1M writes and reads 1 MiB blocks in ascending order at QD16.
func BenchmarkSeq1M(b *testing.B) {
	for _, eng := range engines(b) {
		for _, write := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/%s", eng, dir(write)), func(b *testing.B) {
				d := benchDevice(b, eng, 16)
				var next atomic.Int64
				blocks := d.Size() >> 20
				benchParallel(b, d, 16, 1<<20, write, func(*rand.Rand) int64 {
					return (next.Add(1) % blocks) << 20
				})
			})
		}
	}
}

// benchParallel runs qd goroutines that share b.N transfers, each keeping
// one transfer in flight.
func benchParallel(b *testing.B, d *Device, qd, block int, write bool, offset func(*rand.Rand) int64) {
	b.SetBytes(int64(block))
	b.ReportAllocs()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range qd {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			buf, err := d.AllocBuffer(block)
			if err != nil {
				b.Error(err)
				return
			}
			defer d.FreeBuffer(buf)
			ios := make([]IO, 1)
			for left.Add(-1) >= 0 {
				ios[0] = IO{Write: write, Buf: buf, Off: offset(rng)}
				if err := d.Do(ios); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
