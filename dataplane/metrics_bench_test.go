package dataplane

import (
	"strconv"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// BenchmarkNodePipelined1KiB measures 1 KiB gets and puts over loopback,
// 16 in flight on one connection: the dispatch path the request metrics
// (metrics.go) instrument. Compare builds with benchstat.
func BenchmarkNodePipelined1KiB(b *testing.B) {
	for _, op := range []wire.Op{wire.OpGet, wire.OpPut} {
		b.Run(op.String(), func(b *testing.B) { benchPipelined(b, op, 1<<10) })
	}
}

func benchPipelined(b *testing.B, op wire.Op, size int) {
	n := startNode(b, 1<<30, nil)
	c := dial(b, n, "bench")
	val := make([]byte, size)
	const keys, depth = 64, 16
	key := make([][]byte, keys)
	for i := range key {
		key[i] = []byte("key-" + strconv.Itoa(i))
		if _, err := c.SendPut(key[i], val, 0); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		b.Fatal(err)
	}
	for range key {
		if r, err := c.Recv(); err != nil || r.Code != 0 {
			b.Fatal(err, r.Err())
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += depth {
		batch := min(depth, b.N-i)
		for k := range batch {
			var err error
			if op == wire.OpGet {
				_, err = c.SendGet(key[(i+k)%keys])
			} else {
				_, err = c.SendPut(key[(i+k)%keys], val, 0)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
		for range batch {
			if r, err := c.Recv(); err != nil || r.Code != 0 {
				b.Fatal(err, r.Err())
			}
		}
	}
}

// BenchmarkRequestMetrics is what the metrics add to a request in the
// worst case, alone in its read or answered outside one: two clock reads
// (at the start of the read and as the reply is timed), the counter and a
// histogram record. It takes the unbatched path (record); the requests of
// one read share the start read, the end read (endData) and one histogram
// record per op, which this does not measure.
func BenchmarkRequestMetrics(b *testing.B) {
	var m nodeMetrics
	m.init(2)
	b.ReportAllocs()
	for b.Loop() {
		start := monoNow()
		m.record(1, time.Duration(monoNow()-start), wire.OpGet, wire.CodeOK)
	}
}
