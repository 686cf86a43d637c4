package nvme

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// startWait begins ios with Start and waits for done; it fails the test
// if Start refuses or done is called more than once.
func startWait(t *testing.T, d *Device, ios []IO) error {
	t.Helper()
	res := make(chan error, 2)
	if !d.Start(ios, true, func(err error) { res <- err }) {
		t.Fatal("Start refused a valid batch on an idle io_uring device")
	}
	var err error
	select {
	case err = <-res:
	case <-time.After(30 * time.Second):
		t.Fatal("Start's done never called")
	}
	select {
	case <-res:
		t.Fatal("done called twice")
	case <-time.After(10 * time.Millisecond):
	}
	return err
}

func uringOnly(t *testing.T) {
	t.Helper()
	if err := ProbeUring(); err != nil {
		t.Skipf("io_uring: %v", err)
	}
}

// A batch begun by Start reads what Do wrote, each transfer into its own
// buffer, and calls done once.
func TestStartReads(t *testing.T) {
	uringOnly(t)
	d := openTestFile(t, EngineUring, 8<<20, Options{})
	rng := rand.New(rand.NewPCG(1, 2))
	w, _ := d.AllocBuffer(1 << 20)
	defer d.FreeBuffer(w)
	fill(rng, w)
	if _, err := d.WriteAt(w, 1<<20); err != nil {
		t.Fatal(err)
	}
	a, _ := d.AllocBuffer(256 << 10)
	defer d.FreeBuffer(a)
	b, _ := d.AllocBuffer(768 << 10)
	defer d.FreeBuffer(b)
	ios := []IO{{Buf: b, Off: 1<<20 + 256<<10}, {Buf: a, Off: 1 << 20}}
	if err := startWait(t, d, ios); err != nil {
		t.Fatal(err)
	}
	if ios[0].N != len(b) || ios[1].N != len(a) {
		t.Fatalf("moved %d and %d bytes, want %d and %d", ios[0].N, ios[1].N, len(b), len(a))
	}
	if !bytes.Equal(a, w[:256<<10]) || !bytes.Equal(b, w[256<<10:]) {
		t.Fatal("bytes read differ from those written")
	}
}

// Start refuses, calling nothing, what it cannot begin without waiting or
// what Do would reject; Do then serves or names the error.
func TestStartRefuses(t *testing.T) {
	uringOnly(t)
	called := func(error) { t.Error("done called for a refused batch") }
	buf := func(d *Device) []byte {
		b, err := d.AllocBuffer(4096)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.FreeBuffer(b) })
		return b
	}
	sync := openTestFile(t, EngineSync, 1<<20, Options{})
	if sync.Start([]IO{{Buf: buf(sync)}}, true, called) {
		t.Error("Start began a batch on the sync engine")
	}
	faulty := openTestFile(t, EngineUring, 1<<20, Options{Fault: func(_ Op, _ int64, n int) (int, error) { return n, nil }})
	if faulty.Start([]IO{{Buf: buf(faulty)}}, true, called) {
		t.Error("Start began a batch with a fault hook set")
	}
	d := openTestFile(t, EngineUring, 1<<20, Options{QueueDepth: 4})
	b, err := d.AllocBuffer(4096)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]IO{
		"empty batch":        nil,
		"empty transfer":     {{Buf: b[:0]}},
		"misaligned":         {{Buf: b, Off: 1}},
		"out of range":       {{Buf: b, Off: 1 << 20}},
		"more than maxStart": make([]IO, maxStart+1),
		"more than the slots": {{Buf: b}, {Buf: b, Off: 4096}, {Buf: b, Off: 8192},
			{Buf: b, Off: 12288}, {Buf: b, Off: 16384}},
	}
	for name, ios := range cases {
		for i := range ios {
			if ios[i].Buf == nil {
				ios[i].Buf = b
			}
		}
		if d.Start(ios, true, called) {
			t.Errorf("%s: Start began the batch", name)
		}
	}
	// Refused batches gave back every slot they took.
	ios := []IO{{Buf: b}, {Buf: b, Off: 4096}, {Buf: b, Off: 8192}, {Buf: b, Off: 12288}}
	if err := startWait(t, d, ios); err != nil {
		t.Fatal(err)
	}
	d.FreeBuffer(b)
	d.Close()
	if d.Start([]IO{{Buf: b}}, true, called) {
		t.Error("Start began a batch on a closed device")
	}
}

// A read that the device ends early (here: past the end of a truncated
// file) reaches done as ErrShortTransfer, not as success.
func TestStartShortRead(t *testing.T) {
	uringOnly(t)
	d := openTestFile(t, EngineUring, 1<<20, Options{})
	b, _ := d.AllocBuffer(64 << 10)
	defer d.FreeBuffer(b)
	if err := os.Truncate(d.Path(), 0); err != nil {
		t.Fatal(err)
	}
	err := startWait(t, d, []IO{{Buf: b, Off: 128 << 10}})
	if !errors.Is(err, ErrShortTransfer) {
		t.Fatalf("read past the end: %v, want ErrShortTransfer", err)
	}
}

// Close waits for a started batch: done has run before Close returns.
func TestStartCloseWaits(t *testing.T) {
	uringOnly(t)
	d := openTestFile(t, EngineUring, 4<<20, Options{})
	b, _ := d.AllocBuffer(1 << 20) // unmapped by Close with the private pool
	var ran bool
	if !d.Start([]IO{{Buf: b}}, true, func(error) { time.Sleep(20 * time.Millisecond); ran = true }) {
		t.Fatal("Start refused")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("Close returned before the started batch's done ran")
	}
}

// Batches started unsubmitted wait for Flush, then all complete: nothing
// reaches the kernel before (so no done runs), and one Flush hands over
// every queued batch. They read the new file's zeros into buffers filled
// with other bytes: no synchronous transfer comes first, whose reaper
// hands what is queued to the kernel after reaping it (flushAll), which a
// loaded machine's CI run saw as a batch done before Flush.
func TestStartQueuedUntilFlush(t *testing.T) {
	uringOnly(t)
	d := openTestFile(t, EngineUring, 4<<20, Options{})
	rng := rand.New(rand.NewPCG(3, 4))
	res := make(chan error, 3)
	var bufs [3][]byte
	for i := range bufs {
		bufs[i], _ = d.AllocBuffer(16 << 10)
		defer d.FreeBuffer(bufs[i])
		fill(rng, bufs[i])
		if !d.Start([]IO{{Buf: bufs[i], Off: int64(i) * 16 << 10}}, false, func(err error) { res <- err }) {
			t.Fatal("Start refused")
		}
	}
	select {
	case err := <-res:
		t.Fatalf("a batch completed before Flush (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	d.Flush()
	for range bufs {
		select {
		case err := <-res:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a queued batch never completed after Flush")
		}
	}
	zeros := make([]byte, 16<<10)
	for i, b := range bufs {
		if !bytes.Equal(b, zeros) {
			t.Errorf("batch %d read the wrong bytes", i)
		}
	}
}

// Close hands over a batch still queued, and waits for it.
func TestCloseSubmitsQueued(t *testing.T) {
	uringOnly(t)
	d := openTestFile(t, EngineUring, 4<<20, Options{})
	b, _ := d.AllocBuffer(64 << 10) // unmapped by Close with the private pool
	var got error = errors.New("done not called")
	if !d.Start([]IO{{Buf: b}}, false, func(err error) { got = err }) {
		t.Fatal("Start refused")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got != nil {
		t.Fatalf("queued batch at Close: %v", got)
	}
}
