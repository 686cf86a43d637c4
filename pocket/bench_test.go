package pocket

import (
	"context"
	"fmt"
	"testing"

	"github.com/pocketstore/pocket/client"
)

// BenchmarkSmallGet compares a 1 KiB get through the SDK with the raw
// data-plane connection against the same node, one request at a time: the
// SDK's own cost per call (routing, multiplexing) is the difference.
func BenchmarkSmallGet(b *testing.B) {
	addrs, _ := cluster(b, 1, 64<<20)
	ctx := context.Background()
	j := staticJob(b, Config{}, addrs)
	val := randBytes(1<<10, 1)
	if err := j.Put(ctx, "k", val); err != nil {
		b.Fatal(err)
	}
	b.Run("raw", func(b *testing.B) {
		c, err := client.DialConn(ctx, addrs[0], client.ConnOptions{Job: []byte("job-1")})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		dst := make([]byte, 1<<10)
		for b.Loop() {
			if _, err := c.SendGet([]byte("k")); err != nil {
				b.Fatal(err)
			}
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
			if r, err := c.RecvInto(dst); err != nil || len(r.Payload) != len(val) {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		dst := make([]byte, 1<<10)
		for b.Loop() {
			if got, err := j.GetInto(ctx, "k", dst); err != nil || len(got) != len(val) {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLargeObject compares a 64 MiB put and get through the SDK
// (chunked, chunks in parallel) with one raw frame each way on one node.
func BenchmarkLargeObject(b *testing.B) {
	addrs, _ := cluster(b, 1, 512<<20)
	ctx := context.Background()
	const size = 64 << 20
	val := randBytes(size, 2)
	dst := make([]byte, size)
	c, err := client.DialConn(ctx, addrs[0], client.ConnOptions{Job: []byte("job-1"), BufferSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	raw := func(b *testing.B, get bool) {
		b.SetBytes(size)
		for b.Loop() {
			if get {
				_, err = c.SendGet([]byte("raw"))
			} else {
				_, err = c.SendPut([]byte("raw"), val, 0)
			}
			if err == nil {
				err = c.Flush()
			}
			if err != nil {
				b.Fatal(err)
			}
			if r, err := c.RecvInto(dst); err != nil || r.Code != 0 {
				b.Fatal(err, r.Err())
			}
		}
	}
	b.Run("raw-put", func(b *testing.B) { raw(b, false) })
	b.Run("raw-get", func(b *testing.B) { raw(b, true) })
	for _, chunk := range []int64{256 << 10, 1 << 20, 4 << 20} {
		j := staticJob(b, Config{ChunkSize: chunk}, addrs)
		name := fmt.Sprintf("chunk=%dKiB", chunk>>10)
		b.Run("sdk-put/"+name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if err := j.Put(ctx, "obj", val); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("sdk-get/"+name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if got, err := j.GetInto(ctx, "obj", dst); err != nil || len(got) != size {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSmallPut is a 1 KiB put through the SDK, one at a time, with a
// context that cannot end (no goroutine) and with one that can (the put
// runs to its end on a goroutine of its own, finish, behind a fence only
// when given up).
func BenchmarkSmallPut(b *testing.B) {
	addrs, _ := cluster(b, 1, 64<<20)
	j := staticJob(b, Config{}, addrs)
	val := randBytes(1<<10, 1)
	for name, ctx := range map[string]context.Context{"background": context.Background(), "cancellable": cancellable(b)} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if err := j.Put(ctx, "k", val); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// cancellable is a context that can end, ended at the benchmark's end.
func cancellable(b *testing.B) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	return ctx
}
