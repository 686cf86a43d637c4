package nvme

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func uringTestDevice(t *testing.T, opts Options) (*Device, *uringEngine) {
	t.Helper()
	if err := ProbeUring(); err != nil {
		t.Skipf("io_uring: %v", err)
	}
	d := openTestFile(t, EngineUring, 1<<20, opts)
	return d, d.eng.(*uringEngine)
}

// A goroutine that finds another submitting leaves its entries to it: they
// stay published, not submitted, until the submitter's next look at
// unsubmitted, which then hands them over and the transfer completes.
func TestUringFlushHandsOverToSubmitter(t *testing.T) {
	d, e := uringTestDevice(t, Options{})
	buf, err := d.AllocBuffer(d.Align())
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeBuffer(buf)
	e.submitting.Store(true) // the test is "the goroutine in the system call"
	done := make(chan error, 1)
	go func() {
		_, err := d.ReadAt(buf, 0)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.unsubmitted.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the read was never published")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("read finished while its entry was unsubmitted: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if n := e.unsubmitted.Load(); n != 1 {
		t.Fatalf("unsubmitted = %d, want 1", n)
	}
	e.submitting.Store(false)
	e.flush()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read did not complete after the hand-over")
	}
	if n := e.unsubmitted.Load(); n != 0 {
		t.Fatalf("unsubmitted = %d after flush", n)
	}
}

// Many goroutines submitting at once: every entry is submitted exactly
// once (the counter returns to zero, nothing hangs) and every read sees
// what was written, whichever goroutine's system call carried it.
func TestUringCombinedSubmissions(t *testing.T) {
	d, e := uringTestDevice(t, Options{QueueDepth: 8})
	blk := d.Align()
	const workers, rounds = 16, 60
	w, err := d.AllocBuffer(workers * blk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeBuffer(w)
	fill(rand.New(rand.NewPCG(3, 4)), w)
	if _, err := d.WriteAt(w, 0); err != nil {
		t.Fatal(err)
	}
	var failed atomic.Bool
	done := make(chan struct{})
	for g := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			r, err := d.AllocBuffer(blk)
			if err != nil {
				t.Error(err)
				return
			}
			defer d.FreeBuffer(r)
			for range rounds {
				if _, err := d.ReadAt(r, int64(g*blk)); err != nil || !bytes.Equal(r, w[g*blk:(g+1)*blk]) {
					failed.Store(true)
					t.Errorf("worker %d: read %v or wrong bytes", g, err)
					return
				}
			}
		}()
	}
	for range workers {
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("workers hung")
		}
	}
	if n := e.unsubmitted.Load(); n != 0 || e.submitting.Load() {
		t.Fatalf("after the run: unsubmitted %d, submitting %v", n, e.submitting.Load())
	}
}

// A batch alone in flight waits in the kernel with the eventfd off; it
// turns the eventfd back on before it lets the completion queue go, so a
// later completion still reaches the reaper.
func TestUringLoneWaitRestoresEventfd(t *testing.T) {
	d, e := uringTestDevice(t, Options{})
	if e.r.cqFlags == nil {
		t.Skip("kernel without CQ ring flags: the eventfd is never turned off")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 20 {
		roundTrip(t, d, rng, int64(i*d.Align()), d.Align())
		if f := *e.r.cqFlags; f&cqEventfdDisabled != 0 {
			t.Fatalf("round %d: eventfd left disabled (cq flags %#x)", i, f)
		}
	}
	// With the completion queue held (as by a lone waiter), a read
	// completes through the reaper only if the eventfd is on.
	e.cqMu.Lock()
	done := make(chan error, 1)
	go func() {
		buf, err := d.AllocBuffer(d.Align())
		if err == nil {
			_, err = d.ReadAt(buf, 0)
			d.FreeBuffer(buf)
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	e.cqMu.Unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read hung: the reaper was not signalled")
	}
}

// fileRegions is a RegionSource over a shared mapping of a regular file:
// the kernel refuses to register such memory for io_uring (no long-term
// pins of file-backed pages), so the device must fall back to plain
// READ and WRITE on it.
type fileRegions struct {
	mem  []byte
	next int
}

func (f *fileRegions) AllocAligned(n, align int) ([]byte, error) {
	f.next = (f.next + align - 1) &^ (align - 1)
	if f.next+n > len(f.mem) {
		return nil, ErrNoSpace
	}
	b := f.mem[f.next : f.next+n : f.next+n]
	f.next += n
	return b, nil
}

func (f *fileRegions) Free([]byte)       {}
func (f *fileRegions) Regions() [][]byte { return [][]byte{f.mem} }

func TestUringRegistrationRefusedFallsBack(t *testing.T) {
	if err := ProbeUring(); err != nil {
		t.Skipf("io_uring: %v", err)
	}
	fd, err := os.Create(filepath.Join(t.TempDir(), "region"))
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if err := fd.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(fd.Fd()), 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	d := openTestFile(t, EngineUring, 1<<20, Options{Buffers: &fileRegions{mem: mem}})
	e := d.eng.(*uringEngine)
	if len(e.fixed) != 0 {
		t.Logf("this kernel registered a file-backed region; the fixed path ran instead")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 4 {
		roundTrip(t, d, rng, int64(i*2*d.Align()), 2*d.Align())
	}
}

// With deferSubmitAt transfers in the kernel, FlushSoon leaves a started
// read to the reaper: it stays published, not submitted, and goes to the
// kernel with the reaping of the next completion (one doorbell for what
// came in meanwhile). Before, every flush rang the device at once.
func TestUringDefersSubmissionWhileBusy(t *testing.T) {
	d, e := uringTestDevice(t, Options{QueueDepth: 16})
	blk := d.Align()
	n := deferSubmitAt + 1
	buf, err := d.AllocBuffer(n * blk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeBuffer(buf)
	e.cqMu.Lock() // nothing is reaped: the first deferSubmitAt stay in the kernel
	locked := true
	defer func() {
		if locked {
			e.cqMu.Unlock()
		}
	}()
	done := make(chan error, n)
	for i := range n {
		ios := []IO{{Buf: buf[i*blk : (i+1)*blk], Off: int64(i * blk)}}
		if !d.Start(ios, false, func(err error) { done <- err }) {
			t.Fatalf("read %d did not start", i)
		}
		d.FlushSoon()
		want := uint32(0)
		if i == n-1 {
			want = 1
		}
		if got := e.unsubmitted.Load(); got != want {
			t.Fatalf("after read %d of %d: %d unsubmitted, want %d", i+1, n, got, want)
		}
	}
	e.cqMu.Unlock()
	locked = false
	for range n {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a read left to the reaper never completed")
		}
	}
	if got := e.unsubmitted.Load(); got != 0 {
		t.Fatalf("%d unsubmitted after every read completed", got)
	}
}

// A batch larger than the ring from one goroutine, beside reads left to
// the reaper: every transfer completes (a lone batch's wait hands over
// what is queued before it waits in the kernel) and every read sees what
// was written.
func TestUringBatchLargerThanTheRing(t *testing.T) {
	d, _ := uringTestDevice(t, Options{QueueDepth: 4})
	blk := d.Align()
	const n = 32
	w, err := d.AllocBuffer(n * blk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeBuffer(w)
	r, err := d.AllocBuffer(n * blk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeBuffer(r)
	fill(rand.New(rand.NewPCG(7, 8)), w)
	// Beside the batches, small reads begun with Start and FlushSoon, as
	// an event loop begins them, some left to the reaper.
	small, err := d.AllocBuffer(blk)
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeBuffer(small)
	stop, smallDone := make(chan struct{}), make(chan int)
	go func() {
		started := 0
		for {
			select {
			case <-stop:
				smallDone <- started
				return
			default:
			}
			ended := make(chan error, 1)
			if d.Start([]IO{{Buf: small, Off: 0}}, false, func(err error) { ended <- err }) {
				d.FlushSoon()
				if err := <-ended; err != nil {
					t.Error(err)
				}
				started++
			}
		}
	}()
	defer func() {
		close(stop)
		if n := <-smallDone; n == 0 {
			t.Error("no small read started beside the batches")
		}
	}()
	for round := range 20 {
		var wr, rd []IO
		for i := range n {
			wr = append(wr, IO{Buf: w[i*blk : (i+1)*blk], Off: int64(i * blk), Write: true})
			rd = append(rd, IO{Buf: r[i*blk : (i+1)*blk], Off: int64(i * blk)})
		}
		if err := d.Do(wr); err != nil {
			t.Fatal(err)
		}
		clear(r)
		if err := d.Do(rd); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r, w) {
			t.Fatalf("round %d: read back differs", round)
		}
	}
}
