package dataplane

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane/slab"
	"github.com/pocketstore/pocket/wire"
)

// TestKTableModel drives a key table through random inserts, removals and
// lookups with hashes squeezed into a few values, so probe runs are long,
// collide and wrap around the end, and checks every answer against a map.
func TestKTableModel(t *testing.T) {
	a, err := slab.New(8<<20, slab.Options{PageSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	m, err := newIndexMem(8 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()

	const keys = 200
	recs := make([]int64, keys)
	hashes := make([]uint64, keys)
	for i := range recs {
		key := fmt.Appendf(nil, "key-%d", i)
		b, err := a.Alloc(recBody(len(key)))
		if err != nil {
			t.Fatal(err)
		}
		r := recordAt(a, a.Offset(b))
		r.h.keyLen = uint32(len(key))
		copy(r.key(), key)
		recs[i] = a.Offset(b)
		// Few distinct hashes, some landing in the table's last slots.
		hashes[i] = uint64(i%7) * 0x9E3779B97F4A7C15
		if i%5 == 0 {
			hashes[i] = ^uint64(0) - uint64(i%3)
		}
	}
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%d", i) }

	var tb ktable
	defer tb.reset(m)
	in := map[int]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 20000 {
		i := rng.IntN(keys)
		switch got := tb.find(a, hashes[i], key(i)); {
		case in[i] && (got < 0 || tb.slots[got].off() != recs[i]):
			t.Fatalf("step %d: key %d present but find gave %d", step, i, got)
		case in[i] && tb.slots[got].lines() != min(i%40, recMaxLines):
			t.Fatalf("step %d: key %d keeps %d lines, want %d", step, i, tb.slots[got].lines(), min(i%40, recMaxLines))
		case !in[i] && got >= 0:
			t.Fatalf("step %d: key %d absent but found in slot %d", step, i, got)
		case in[i] && rng.IntN(2) == 0:
			tb.remove(got)
			delete(in, i)
		case !in[i]:
			if err := tb.reserve(m); err != nil {
				t.Fatal(err)
			}
			tb.insert(hashes[i], packRec(recs[i], 64*(i%40)))
			in[i] = true
		}
		if tb.n != len(in) {
			t.Fatalf("step %d: table counts %d keys, model %d", step, tb.n, len(in))
		}
		if tb.n*4 > len(tb.slots)*3 {
			t.Fatalf("step %d: %d keys in %d slots, over 3/4", step, tb.n, len(tb.slots))
		}
	}
	seen := 0
	tb.each(func(int64) { seen++ })
	if seen != len(in) {
		t.Fatalf("each visited %d records, model holds %d", seen, len(in))
	}
}

// TestKTableIndexFull checks that a table that cannot grow says so and
// keeps what it holds.
func TestKTableIndexFull(t *testing.T) {
	m, err := newIndexMem(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	var tables []*ktable
	defer func() {
		for i := range tables {
			tables[i].reset(m)
		}
	}()
	for {
		tb := new(ktable)
		if err := tb.reserve(m); err != nil {
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("reserve on a full index: %v, want ErrNoSpace", err)
			}
			if tb.slots != nil || tb.n != 0 || tb.hint.Load() != nil {
				t.Fatal("failed reserve changed the table")
			}
			return
		}
		tables = append(tables, tb)
		if len(tables) > 1<<16 {
			t.Fatal("index memory never filled")
		}
	}
}

// TestDRAMPrefetch runs the prefetch passes over present, missing and
// foreign keys while another goroutine rewrites and deletes the same keys
// (so tables grow and records move under it), and checks that the hints
// leave every value and the tier's accounting as they were.
func TestDRAMPrefetch(t *testing.T) {
	d, err := NewDRAM(64<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	job := []byte("job")
	store := func(i int) {
		p, err := d.Create(job, fmt.Appendf(nil, "k%d", i), 100, Meta{})
		if err != nil {
			t.Error(err)
			return
		}
		p.Buffers()[0][0] = byte(i)
		if _, err := p.Commit(); err != nil {
			t.Error(err)
		}
	}
	for i := range 64 {
		store(i)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 4000 {
			store(64 + i%500)
			if i%3 == 0 {
				_, _ = d.Delete(job, fmt.Appendf(nil, "k%d", 64+i%500))
			}
		}
	}()
	var b prefetchBatch
	for range 2000 {
		b.n = 0
		for _, k := range []string{"k1", "k63", "k70", "missing", "k300"} {
			b.req[b.n] = wire.Request{Job: job, Key: []byte(k)}
			b.n++
		}
		b.req[b.n] = wire.Request{Job: []byte("no-such-job"), Key: []byte("k1")}
		b.n++
		d.prefetch(&b)
		for i := range b.n {
			if b.shard[i] != nil {
				t.Fatal("prefetch left a shard pointer behind")
			}
		}
	}
	<-done
	for i := range 64 {
		v, err := d.Open(job, fmt.Appendf(nil, "k%d", i))
		if err != nil {
			t.Fatalf("k%d after prefetching: %v", i, err)
		}
		if got := v.Segments()[0][0]; got != byte(i) {
			t.Errorf("k%d holds %d", i, got)
		}
		v.Release()
	}
	if u := d.Usage(); u.Used != d.JobUsage(job) {
		t.Errorf("arena has %d bytes out, the job %d: a reference leaked", u.Used, d.JobUsage(job))
	}
}

// TestDRAMDropJobRacingClose closes the tier inside DropJob's window
// between unlinking the job and freeing its tables. The job keeps an
// emptied table (its keys were deleted) and a value, so without DropJob's
// own live count Close would unmap the index under the walk.
func TestDRAMDropJobRacingClose(t *testing.T) {
	d, err := NewDRAM(16<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	job := []byte("job")
	for i := range 40 {
		p, err := d.Create(job, fmt.Appendf(nil, "k%d", i), 10, Meta{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < 40; i++ {
		if _, err := d.Delete(job, fmt.Appendf(nil, "k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	testHookDropUnlinked = func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	defer func() { testHookDropUnlinked = nil }()
	if freed := d.DropJob(job, false); freed.Bytes <= 0 {
		t.Errorf("DropJob freed %+v, want the last value's", freed)
	}
	if got := d.live.Load(); got != 0 {
		t.Errorf("live = %d after Close and DropJob, want 0 (arenas unmapped)", got)
	}
}

// TestDRAMStressClose mixes puts (some chunked), gets, deletes, drops,
// listings and aborted puts over a few jobs from several goroutines, closes
// the tier in the middle, and checks that once everyone has stopped every
// record was freed (live reaches zero: no reference leaked or dropped
// twice, and the arenas are unmapped).
func TestDRAMStressClose(t *testing.T) {
	for iter := range 10 {
		d, err := NewDRAM(32<<20, DRAMOptions{PageSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), uint64(iter)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					stressOp(t, d, rng)
				}
			}()
		}
		time.Sleep(time.Duration(1+iter%5) * 5 * time.Millisecond)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		if n := d.live.Load(); n != 0 {
			t.Fatalf("iteration %d: live = %d after everyone stopped, want 0", iter, n)
		}
	}
}

// stressOp runs one random tier operation; errors from a closed or full
// tier are expected and ignored, wrong answers are not.
func stressOp(t *testing.T, d *DRAM, rng *rand.Rand) {
	job := fmt.Appendf(nil, "j%d", rng.IntN(3))
	key := fmt.Appendf(nil, "k%d", rng.IntN(50))
	switch rng.IntN(6) {
	case 0, 1:
		p, err := d.Create(job, key, int64(rng.IntN(3<<20)), Meta{Flags: PutFlags(rng.IntN(2))})
		if err == nil {
			_, _ = p.Commit()
		}
	case 2:
		v, err := d.Open(job, key)
		if err != nil {
			return
		}
		var n int64
		for _, b := range v.Segments() {
			n += int64(len(b))
		}
		if n != v.Size() {
			t.Errorf("value of %d bytes has segments of %d", v.Size(), n)
		}
		v.Release()
	case 3:
		_, _ = d.Delete(job, key)
	case 4:
		d.DropJob(job, rng.IntN(2) == 0)
	case 5:
		_ = d.List(job, nil, nil, func([]byte, Info) bool { return true })
		if p, err := d.Create(job, key, int64(rng.IntN(1000)), Meta{}); err == nil {
			p.Abort()
		}
	}
}
