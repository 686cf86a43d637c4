package pocket

import (
	"context"
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
