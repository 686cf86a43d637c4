package dataplane

import (
	"strconv"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// BenchmarkNodePipelinedTake1KiB measures 1 KiB puts each followed by a
// get that deletes what it read (FlagDeleteAfterRead, a shuffle's read)
// over loopback, 16 in flight on one connection; ns/op is one request,
// put or take.
func BenchmarkNodePipelinedTake1KiB(b *testing.B) {
	n := startNode(b, 1<<30, nil)
	c := dial(b, n, "bench")
	val := make([]byte, 1<<10)
	const depth = 16
	key := make([][]byte, depth/2)
	for i := range key {
		key[i] = []byte("key-" + strconv.Itoa(i))
	}
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += depth {
		for _, k := range key {
			if _, err := c.SendPut(k, val, 0); err != nil {
				b.Fatal(err)
			}
		}
		for _, k := range key {
			req := wire.Request{Job: []byte("bench"), Key: k}
			if _, err := c.Send(wire.OpGet, wire.FlagDeleteAfterRead, &req, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.Flush(); err != nil {
			b.Fatal(err)
		}
		for range depth {
			if r, err := c.Recv(); err != nil || r.Code != 0 {
				b.Fatal(err, r.Err())
			}
		}
	}
}
