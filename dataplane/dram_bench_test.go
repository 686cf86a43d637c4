package dataplane_test

import (
	"strconv"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
)

// The node's hot path: a put that overwrites a key (Create, fill, Commit)
// and a get (Open, Segments, Release). Both must allocate nothing. The get
// hands the bytes out by reference (the node writev's them), so its MB/s is
// bytes made available per second, not bytes copied.

// The owned cases count the job's bytes in its owner's too, as a node
// with a controller does (dramowner.go).
func BenchmarkDRAMPutOverwrite(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 20} {
		for _, owned := range []bool{false, true} {
			name := sizeName(n)
			if owned {
				name += "/owned"
			}
			b.Run(name, func(b *testing.B) { benchPutOverwrite(b, n, owned) })
		}
	}
}

func benchPutOverwrite(b *testing.B, n int, owned bool) {
	d := newDRAM(b, 256<<20)
	defer d.Close()
	if owned {
		dataplane.SetDRAMOwners(d, func([]byte) []byte { return []byte("o tenant") })
	}
	job, key := []byte("job"), []byte("key-0001")
	src := make([]byte, n)
	put(b, d, "job", string(key), src)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := d.Create(job, key, int64(n), dataplane.Meta{})
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
}

func BenchmarkDRAMGet(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 20} {
		b.Run(sizeName(n), func(b *testing.B) {
			d := newDRAM(b, 256<<20)
			defer d.Close()
			job, key := []byte("job"), []byte("key-0001")
			put(b, d, "job", string(key), make([]byte, n))
			b.SetBytes(int64(n))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				v, err := d.Open(job, key)
				if err != nil {
					b.Fatal(err)
				}
				if len(v.Segments()) == 0 {
					b.Fatal("no segments")
				}
				v.Release()
			}
		})
	}
}

// BenchmarkDRAMGetParallel is the get with as many goroutines as cores, over
// 1024 keys of one job: the shard locks and reference counts under contention.
func BenchmarkDRAMGetParallel(b *testing.B) {
	d := newDRAM(b, 256<<20)
	defer d.Close()
	const nkeys = 1024
	keys := make([][]byte, nkeys)
	for i := range keys {
		keys[i] = []byte("key-" + strconv.Itoa(i))
		put(b, d, "job", string(keys[i]), make([]byte, 1024))
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			v, err := d.Open([]byte("job"), keys[i%nkeys])
			if err != nil {
				b.Fatal(err)
			}
			v.Release()
			i++
		}
	})
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}

// BenchmarkDRAMNewJob: a job's first put, and its end, on a tier holding
// others' jobs (each with one value): entering and unlinking the job
// copies the job map it goes to. Copied whole, that grew with every job
// the node held, on the event loop of the put (a hostile trial: 2.6 ms
// with 50,000 jobs).
func BenchmarkDRAMNewJob(b *testing.B) {
	for _, jobs := range []int{1_000, 50_000} {
		b.Run("jobs="+strconv.Itoa(jobs), func(b *testing.B) {
			d := newDRAM(b, 256<<20)
			defer d.Close()
			for i := range jobs {
				put(b, d, "held-"+strconv.Itoa(i), "k", []byte("v"))
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				job := "new-" + strconv.Itoa(i)
				put(b, d, job, "k", []byte("v"))
				d.DropJob([]byte(job), false)
			}
		})
	}
}
