package dataplane

import (
	"fmt"
	"sync"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// aheadRecorder is a DRAM tier that notes the record prefetches OnData asks
// for ahead of serving a request (prefetchLines from line 2 on).
type aheadRecorder struct {
	*DRAM
	mu    sync.Mutex
	ahead map[int64]int // record offset -> times fetched ahead
}

func (r *aheadRecorder) prefetchLines(off int64, from, to int) {
	if from >= 2 {
		r.mu.Lock()
		r.ahead[off]++
		r.mu.Unlock()
	}
	r.DRAM.prefetchLines(off, from, to)
}

// TestPipelinedPutsFetchNextRecordAhead: a read holding several puts of
// keys already stored has the node fetch, while it serves one put, the
// rest of the next put's current record, whose chunk the put before it
// frees and the next allocation takes (so its payload copy does not wait
// for the lines). It fails when only gets fetch ahead.
func TestPipelinedPutsFetchNextRecordAhead(t *testing.T) {
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &aheadRecorder{DRAM: d, ahead: map[int64]int{}}
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: rec}, d)
	c := dial(t, n, "j")
	const keys = 16
	val := make([]byte, 1<<10)
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%02d", i) }
	for i := range keys {
		req := wire.Request{Job: []byte("j"), Key: key(i)}
		if r := roundTrip(t, c, wire.OpPut, 0, &req, val); r.Code != wire.CodeOK {
			t.Fatalf("put %d: %v", i, r.Err())
		}
	}
	// The batch must arrive in one read for the node to see it whole; try
	// a few times.
	for try := 0; try < 20; try++ {
		for i := range keys {
			req := wire.Request{Job: []byte("j"), Key: key(i)}
			if _, err := c.Send(wire.OpPut, 0, &req, val); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		for range keys {
			r, err := c.Recv()
			if err != nil || r.Code != wire.CodeOK {
				t.Fatalf("pipelined put: %v %v", err, r.Err())
			}
		}
		rec.mu.Lock()
		got := len(rec.ahead)
		rec.mu.Unlock()
		if got > 0 {
			return
		}
	}
	t.Fatal("no record fetched ahead while serving 20 pipelined batches of puts")
}
