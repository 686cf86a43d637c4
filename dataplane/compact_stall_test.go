package dataplane

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// TestCompactionDoesNotStallOtherJobs: one job fills a DRAM tier with small
// values; then, once a second, it deletes some of them and puts a value
// of another size, which finds no page and compacts on the event loop.
// The put must not compact on the event loop (it held the loop, and
// another job's gets on it, for 135-550 ms).
func TestCompactionDoesNotStallOtherJobs(t *testing.T) {
	d, err := NewDRAM(128<<20, DRAMOptions{PageSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	n := startNodeWith(t, NodeConfig{Listen: "127.0.0.1:0", DRAM: d, Net: netio.Config{Loops: 2}}, d)
	v := dial(t, n, "victim")
	if r := roundTrip(t, v, wire.OpPut, 0, &wire.Request{Job: []byte("victim"), Key: []byte("k")}, make([]byte, 1024)); r.Code != 0 {
		t.Fatal(r.Err())
	}
	k := 0
	for ; ; k++ { // the hostile job's values, put straight into the tier for speed
		p, err := d.Create([]byte("h"), []byte(fmt.Sprint(k)), 8, Meta{})
		if err != nil {
			break
		}
		p.Commit()
	}
	t.Logf("hostile job: %d values of 8 bytes fill the tier", k)
	var stop atomic.Bool
	var slowest atomic.Int64 // the hostile job's slowest put, ns
	done := make(chan struct{})
	go func() { // the hostile job, over the wire
		defer close(done)
		var hs []*client.Conn
		for range 4 {
			hs = append(hs, dial(t, n, "h"))
		}
		for round := 0; !stop.Load(); round++ {
			h := hs[round%len(hs)]
			base := (round * 40000) % k
			for i := base; i < base+40000 && i < k; i += 2 {
				h.Send(wire.OpDelete, 0, &wire.Request{Job: []byte("h"), Key: []byte(fmt.Sprint(i))}, nil)
			}
			h.Flush()
			for i := base; i < base+40000 && i < k; i += 2 {
				h.Recv()
			}
			h.Send(wire.OpPut, 0, &wire.Request{Job: []byte("h"), Key: []byte(fmt.Sprint("big", round))}, make([]byte, 1<<20))
			h.Flush()
			t0 := time.Now()
			r, _ := h.Recv()
			took := time.Since(t0)
			if int64(took) > slowest.Load() {
				slowest.Store(int64(took))
			}
			t.Logf("hostile round %d: 1 MiB put took %v, code %v", round, took, r.Code)
			time.Sleep(300 * time.Millisecond)
		}
	}()
	var lat []time.Duration
	end := time.Now().Add(4 * time.Second)
	for time.Now().Before(end) {
		t0 := time.Now()
		if r := roundTrip(t, v, wire.OpGet, 0, &wire.Request{Job: []byte("victim"), Key: []byte("k")}, nil); r.Code != 0 {
			t.Fatal(r.Err())
		}
		lat = append(lat, time.Since(t0))
	}
	stop.Store(true)
	<-done
	slices.Sort(lat)
	time.Sleep(1200 * time.Millisecond) // past any backoff
	vr := roundTrip(t, v, wire.OpPut, 0, &wire.Request{Job: []byte("victim"), Key: []byte("big")}, make([]byte, 1<<20))
	u := d.Usage()
	t.Logf("after: tier used %d of %d (%.1f%% free), free pages %d; victim 1 MiB put: %v", u.Used, u.Capacity, 100-100*float64(u.Used)/float64(u.Capacity), d.Arena().FreePages(), vr.Err())
	moved, pages := d.Compacted()
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	t.Logf("victim gets: %d, p50 %v p99 %v p99.9 %v max %v; compaction moved %d values, freed %d pages", len(lat), p(.5), p(.99), p(.999), lat[len(lat)-1], moved, pages)
	// A put that finds no room must not hold its event loop while the
	// tier's keys are scanned and values moved.
	if d := time.Duration(slowest.Load()); d > 50*time.Millisecond {
		t.Fatalf("a put that compacted held its event loop for %v (another job's gets waited up to %v)", d, lat[len(lat)-1])
	}
}
