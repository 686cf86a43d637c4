package dataplane

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/wire"
)

// TestLaneTurnAfterRequestEnds: a job goes to the back of the scan lane's
// turn when its request ends, behind the jobs that came while it ran. On
// the code before, it went back when its request began: job b's request,
// queued while a's first ran, waited for a's second too (with a job of 2
// million keys listing over and over, another job's listing of 10 keys
// waited 181-186 ms p50 for 90 ms scans, a hostile trial).
func TestLaneTurnAfterRequestEnds(t *testing.T) {
	l := &scanLane{owners: map[string]*laneJob{}, wake: make(chan struct{}, 1)}
	var order []string
	work := func(name string) laneWork { return func(bool) { order = append(order, name) } }
	for _, w := range []struct{ job, name string }{{"a", "a1"}, {"a", "a2"}} {
		if err := l.submit(w.job, work(w.name)); err != nil {
			t.Fatal(err)
		}
	}
	f, _, _ := l.next() // a1 runs
	f(true)
	if err := l.submit("b", work("b1")); err != nil { // b comes while a1 runs
		t.Fatal(err)
	}
	for range 2 {
		f, _, ok := l.next()
		if !ok {
			t.Fatal("lane closed")
		}
		f(true)
	}
	if got := fmt.Sprint(order); got != "[a1 b1 a2]" {
		t.Fatalf("lane ran %s, want [a1 b1 a2]", got)
	}
}

// TestNVMeScanUnderWrites: an NVMe scan lets the tier's lock go every
// scanBatch keys, so keys are put and deleted while it runs: every key
// present all along must be listed exactly once, none twice (List, and a
// listing snapshot), while another goroutine deletes keys and puts them
// again.
func TestNVMeScanUnderWrites(t *testing.T) {
	nv := fileNVMe(t, nvme.Options{Size: 64 << 20, BufferPool: 16 << 20}, NVMeOptions{})
	job := []byte("j")
	put := func(key string) {
		p, err := nv.Create(job, []byte(key), 0, Meta{})
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := p.Commit(); err != nil {
			t.Error(err)
		}
	}
	const stable, churn = 20000, 5000
	for i := range stable {
		put(fmt.Sprintf("s-%06d", i))
	}
	for i := range churn {
		put(fmt.Sprintf("c-%06d", i))
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := 0; !stop.Load(); r++ {
			for i := range churn {
				k := fmt.Sprintf("c-%06d", (i*7+r)%churn)
				_, _ = nv.Delete(job, []byte(k))
				put(k)
			}
		}
	}()
	defer func() { stop.Store(true); <-done }()
	check := func(what string, keys [][]byte) {
		seen := map[string]int{}
		for _, k := range keys {
			seen[string(k)]++
		}
		for k, c := range seen {
			if c > 1 {
				t.Fatalf("%s: %q listed %d times", what, k, c)
			}
		}
		for i := range stable {
			if seen[fmt.Sprintf("s-%06d", i)] != 1 {
				t.Fatalf("%s: stable key %d missing", what, i)
			}
		}
	}
	for range 20 {
		var keys [][]byte
		_ = nv.List(job, nil, nil, func(k []byte, _ Info) bool { keys = append(keys, bytes.Clone(k)); return true })
		check("List", keys)
		snap, err := newListSnap(nv, job, nil, nil, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		keys = keys[:0]
		for i := range snap.len() {
			keys = append(keys, snap.key(i))
		}
		check("listing snapshot", keys)
	}
}

// BenchmarkNVMePutBesideScans: another job's index writes (Create and
// Commit of an empty value: each takes the NVMe tier's write lock) while
// scans of a job with about 250,000 keys, for a prefix none has, run back
// to back on another goroutine, as the scan lane runs a job's listings.
// ns/op is one write's time, its wait for the lock included.
func BenchmarkNVMePutBesideScans(b *testing.B) {
	nv := fileNVMe(b, nvme.Options{Size: 64 << 20, BufferPool: 16 << 20}, NVMeOptions{})
	for k := 0; ; k++ {
		p, err := nv.Create([]byte("att"), []byte(fmt.Sprintf("a-%07d", k)), 0, Meta{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Commit(); err != nil {
			break // the job's share of the key index is full
		}
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			_ = nv.listScan([]byte("att"), []byte("zz"), nil, func([]byte, Info) {})
		}
	}()
	b.ResetTimer()
	for i := range b.N {
		p, err := nv.Create([]byte("vic"), []byte(fmt.Sprint("v", i%64)), 0, Meta{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	stop.Store(true)
	<-done
}

// TestPrefixDeleteBoundsItsKeys: a prefix delete removes at most
// deletePrefixKeys keys and says More; the next removes the rest. Before,
// one request collected and deleted every key under the prefix, holding
// the scan lane (and every other job's listing) for as long as that took.
func TestPrefixDeleteBoundsItsKeys(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	d := n.Tiers()[0]
	for i := range deletePrefixKeys + 100 {
		p, err := d.Create([]byte("j"), []byte(fmt.Sprintf("p/%06d", i)), 0, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, n, "j")
	for _, want := range []struct {
		count uint64
		more  bool
	}{{deletePrefixKeys, true}, {100, false}} {
		r := roundTrip(t, c, wire.OpDelete, wire.FlagPrefix, &wire.Request{Job: []byte("j"), Key: []byte("p/")}, nil)
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
		if m := meta(t, r.Meta); uint64(m.Count) != want.count || m.More != want.more {
			t.Fatalf("prefix delete removed %d, more %v; want %d, %v", m.Count, m.More, want.count, want.more)
		}
	}
	if u := d.Usage(); u.Values != 0 {
		t.Fatalf("%d values left", u.Values)
	}
}
