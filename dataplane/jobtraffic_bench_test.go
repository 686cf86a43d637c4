package dataplane

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// BenchmarkNodeGuardedPipelined1KiB is 1 KiB gets and puts over loopback,
// 16 in flight on each of 4 connections driven in parallel, against a
// node with a token guard and a synced job table, so that every request
// finds its job's entry and is counted per job (jobtraffic.go): the path
// a node under a controller serves (a standalone node, as perf/regress.sh
// runs it, has no entries and counts nothing per job). Compare builds
// with benchstat.
func BenchmarkNodeGuardedPipelined1KiB(b *testing.B) {
	for _, op := range []wire.Op{wire.OpGet, wire.OpPut} {
		b.Run(op.String(), func(b *testing.B) { benchGuarded(b, op, 1<<10) })
	}
}

func benchGuarded(b *testing.B, op wire.Op, size int) {
	n := tokenNode(b)
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "bench-1", Gen: 90, Epoch: 1}))
	tok := jobTok("bench-1", 90)
	val := make([]byte, size)
	const keys, depth = 64, 16
	key := make([][]byte, keys)
	for i := range key {
		key[i] = []byte("key-" + strconv.Itoa(i))
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.SetParallelism(2) // 4 connections on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := client.DialConn(context.Background(), n.Addr().String(), client.ConnOptions{Job: []byte("bench-1"), Token: tok, Epoch: 1})
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		if err := guardedBatch(c, wire.OpPut, key, val, 0, keys); err != nil {
			b.Error(err)
			return
		}
		for i := 0; pb.Next(); i++ {
			if i%depth == depth-1 {
				if err := guardedBatch(c, op, key, val, i, depth); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
}

// guardedBatch sends k requests of op from key i on, then reads their
// replies.
func guardedBatch(c *client.Conn, op wire.Op, key [][]byte, val []byte, i, k int) error {
	for j := 0; j < k; j++ {
		var err error
		if op == wire.OpGet {
			_, err = c.SendGet(key[(i+j)%len(key)])
		} else {
			_, err = c.SendPut(key[(i+j)%len(key)], val, 0)
		}
		if err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return err
	}
	for j := 0; j < k; j++ {
		r, err := c.Recv()
		if err != nil {
			return err
		}
		if err := r.Err(); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkJobTrafficCount is what counting a request per job adds to
// it: finding the job's counters from its entry and adding to the
// request's loop's slot, from parallel goroutines standing for the event
// loops (each its own slot), for one job.
func BenchmarkJobTrafficCount(b *testing.B) {
	var j jobTable
	j.init()
	j.loops = 4
	e := &jobEntry{}
	job := []byte("bench-1")
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		loop := int(next.Add(1)-1) % j.loops
		for pb.Next() {
			j.traffic(e, job).addIn(loop, 1024)
		}
	})
	if in, _ := e.traffic.Load().totals(); in != uint64(b.N)*1024 {
		b.Fatalf("counted %d bytes, want %d", in, uint64(b.N)*1024)
	}
}
