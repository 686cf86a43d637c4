package dataplane_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/slab"
	"github.com/pocketstore/pocket/dataplane/tiertest"
	"github.com/pocketstore/pocket/nvme"
)

// nvmeDir returns a directory whose file system accepts O_DIRECT
// ($POCKET_NVME_TESTDIR, else t.TempDir()); the test is skipped, with the
// reason, when it does not.
func nvmeDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if d := os.Getenv("POCKET_NVME_TESTDIR"); d != "" {
		dir = d
	}
	if err := nvme.ProbeDirectIO(dir); err != nil {
		t.Skipf("NVMe tier test skipped: %s: %v (set POCKET_NVME_TESTDIR to a disk-backed dir)", dir, err)
	}
	d, err := os.MkdirTemp(dir, "nvme-tier-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// newNVMe opens a file-backed device of capacity bytes and a tier on it;
// both close with the test.
func newNVMe(t testing.TB, capacity int64, opts nvme.Options, topts dataplane.NVMeOptions) *dataplane.NVMe {
	t.Helper()
	opts.Size = capacity
	if opts.BufferPool == 0 {
		opts.BufferPool = 3 * capacity
	}
	dev, err := nvme.Open(filepath.Join(nvmeDir(t), "dev"), opts)
	if err != nil {
		t.Fatal(err)
	}
	tier, err := dataplane.NewNVMe(dev, topts)
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tier.Close()
		dev.Close()
	})
	return tier
}

func engines(t *testing.T) []nvme.Engine {
	out := []nvme.Engine{nvme.EngineSync}
	if err := nvme.ProbeUring(); err != nil {
		t.Logf("io_uring engine skipped: %v", err)
	} else {
		out = append(out, nvme.EngineUring)
	}
	return out
}

func TestNVMeTierSuite(t *testing.T) {
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			tiertest.Run(t, func(t *testing.T, capacity int64) dataplane.Tier {
				return newNVMe(t, capacity, nvme.Options{Engine: eng}, dataplane.NVMeOptions{})
			})
		})
	}
}

// With the node's slab arena as the buffer source, staging and read
// buffers are arena chunks.
func TestNVMeTierSuiteOnArena(t *testing.T) {
	tiertest.Run(t, func(t *testing.T, capacity int64) dataplane.Tier {
		arena, err := slab.New(3*capacity+(8<<20), slab.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { arena.Close() })
		bufs := dataplane.ArenaBuffers(arena)
		return newNVMe(t, capacity, nvme.Options{Buffers: bufs}, dataplane.NVMeOptions{Buffers: bufs})
	})
}

func putValue(tier dataplane.Tier, job, key string, data []byte) error {
	p, err := tier.Create([]byte(job), []byte(key), int64(len(data)), dataplane.Meta{})
	if err != nil {
		return err
	}
	rest := data
	for _, b := range p.Buffers() {
		rest = rest[copy(b, rest):]
	}
	_, err = p.Commit()
	return err
}

func getValue(tier dataplane.Tier, job, key string) ([]byte, error) {
	v, err := tier.Open([]byte(job), []byte(key))
	if err != nil {
		return nil, err
	}
	defer v.Release()
	var out []byte
	for _, s := range v.Segments() {
		out = append(out, s...)
	}
	return out, nil
}

func value(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// faultSwitch is a device fault hook armed by the test.
type faultSwitch struct {
	mode atomic.Int32 // faultNone, ...
	half atomic.Bool  // consumed by faultHalfOnce
}

const (
	faultNone int32 = iota
	faultEIO
	faultENOSPC
	faultZero     // the device moves nothing: a short transfer that never ends
	faultHalfOnce // one transfer moves half its bytes, then all is well
)

func (f *faultSwitch) hook(op nvme.Op, off int64, n int) (int, error) {
	switch f.mode.Load() {
	case faultEIO:
		return 0, syscall.EIO
	case faultENOSPC:
		return 0, syscall.ENOSPC
	case faultZero:
		return 0, nil
	case faultHalfOnce:
		if !f.half.Swap(true) {
			return n / 2 &^ 4095, nil
		}
	}
	return n, nil
}

// Device errors reach the client as ErrIO or ErrNoSpace, and nothing else
// stored is lost or changed.
func TestNVMeFaults(t *testing.T) {
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			var f faultSwitch
			tier := newNVMe(t, 8<<20, nvme.Options{Engine: eng, Fault: f.hook}, dataplane.NVMeOptions{})
			kept := map[string][]byte{}
			for i := range 8 {
				k := fmt.Sprintf("k%d", i)
				kept[k] = value(10000*i+1, byte(i))
				if err := putValue(tier, "j", k, kept[k]); err != nil {
					t.Fatal(err)
				}
			}
			before := tier.Usage()
			writes := []struct {
				mode int32
				want error
			}{{faultEIO, dataplane.ErrIO}, {faultENOSPC, dataplane.ErrNoSpace}, {faultZero, dataplane.ErrIO}}
			for _, w := range writes {
				f.mode.Store(w.mode)
				err := putValue(tier, "j", "k3", value(50000, 99)) // overwrite attempt
				if !errors.Is(err, w.want) {
					t.Errorf("write fault %d: %v, want %v", w.mode, err, w.want)
				}
				if err := putValue(tier, "j", "new", value(3000, 1)); !errors.Is(err, w.want) {
					t.Errorf("write fault %d (new key): %v", w.mode, err)
				}
				f.mode.Store(faultNone)
				if u := tier.Usage(); u != before {
					t.Errorf("write fault %d: usage %+v, was %+v", w.mode, u, before)
				}
				if _, err := tier.Stat([]byte("j"), []byte("new")); !errors.Is(err, dataplane.ErrNotFound) {
					t.Errorf("failed put became visible: %v", err)
				}
			}
			for _, mode := range []int32{faultEIO, faultZero} {
				f.mode.Store(mode)
				if _, err := getValue(tier, "j", "k5"); !errors.Is(err, dataplane.ErrIO) {
					t.Errorf("read fault %d: %v, want ErrIO", mode, err)
				}
			}
			f.mode.Store(faultHalfOnce)
			if err := putValue(tier, "j", "k7", kept["k7"]); err != nil {
				t.Fatalf("a short transfer that recovers: %v", err)
			}
			if !f.half.Load() {
				t.Fatal("short-transfer fault never fired")
			}
			f.mode.Store(faultNone)
			for k, want := range kept {
				got, err := getValue(tier, "j", k)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s after faults: err %v, equal %v", k, err, bytes.Equal(got, want))
				}
			}
		})
	}
}

// A value larger than any free extent is scattered over fragments.
func TestNVMeFragmentedSpace(t *testing.T) {
	tier := newNVMe(t, 1<<20, nvme.Options{}, dataplane.NVMeOptions{})
	for i := range 32 { // 32 x 32 KiB fills 1 MiB
		if err := putValue(tier, "j", fmt.Sprintf("k%02d", i), value(32<<10, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := putValue(tier, "j", "more", value(1, 1)); !errors.Is(err, dataplane.ErrNoSpace) {
		t.Fatalf("put into a full tier: %v", err)
	}
	for i := 0; i < 32; i += 2 { // 16 holes of 32 KiB, none adjacent
		if _, err := tier.Delete([]byte("j"), []byte(fmt.Sprintf("k%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	big := value(256<<10, 42)
	if err := putValue(tier, "j", "big", big); err != nil {
		t.Fatalf("scattered put: %v", err)
	}
	got, err := getValue(tier, "j", "big")
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("scattered value: err %v equal %v", err, bytes.Equal(got, big))
	}
	for i := 1; i < 32; i += 2 {
		got, err := getValue(tier, "j", fmt.Sprintf("k%02d", i))
		if err != nil || !bytes.Equal(got, value(32<<10, byte(i))) {
			t.Fatalf("k%02d damaged: %v", i, err)
		}
	}
}

// TestNVMeIndexBounded: the tier's key index is bounded (MaxIndexBytes):
// new keys past it answer ErrIndexFull (ErrNoSpace) while the device has
// room; a key already there is still replaced; deletes and job drops give
// the room back. Before, the index grew with every key: a hostile trial's
// 118,232 keys of 980 bytes with 1-byte values took 164 MB of node memory
// for 481 MiB of a 512 MiB tier.
func TestNVMeIndexBounded(t *testing.T) {
	// Values of 128 KiB: within their share of the index for 900-byte
	// keys (TestNVMeIndexShares), so only the bound stops them. A job's
	// share is at most half the index (TestNVMeIndexShareCapped): two
	// jobs, one key each in turn, fill it.
	const keyLen, bound, size = 900, 64 << 10, 128 << 10
	tier := newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{MaxIndexBytes: bound})
	key := func(i int) string { return fmt.Sprintf("%0*d", keyLen, i) }
	job := func(i int) string { return fmt.Sprintf("j%d", i%2) }
	n := 0
	for ; n < 1000; n++ {
		err := putValue(tier, job(n), key(n), value(size, 1))
		if errors.Is(err, dataplane.ErrIndexFull) && errors.Is(err, dataplane.ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := bound / (keyLen + 256); n < want-1 || n > want {
		t.Fatalf("%d keys of %d bytes indexed under a %d-byte bound, want about %d", n, keyLen, bound, want)
	}
	if err := putValue(tier, job(0), key(0), value(size, 2)); err != nil {
		t.Fatalf("replacing a key at the bound: %v", err)
	}
	if _, err := tier.Delete([]byte(job(1)), []byte(key(1))); err != nil {
		t.Fatal(err)
	}
	if err := putValue(tier, job(1), key(n), value(size, 1)); err != nil {
		t.Fatalf("a new key after a delete: %v", err)
	}
	tier.DropJob([]byte(job(0)), false)
	tier.DropJob([]byte(job(1)), false)
	for i := range n {
		if err := putValue(tier, job(i+1), key(i), value(size, 1)); err != nil {
			t.Fatalf("key %d after the job drop: %v", i, err)
		}
	}
}

// TestNVMeIndexShares: a job's keys whose values are small next to their
// index entries may cost the index a sixteenth of it beyond their share
// (1/64 of their values' bytes), and all jobs' together a quarter; one
// job's tiny values then leave the index to other jobs' keys. Deletes
// give the room back. Before, a hostile trial's tenant filled a 64 KiB
// index with 250 one-byte persisted keys, and another tenant's first key
// was refused for as long as they were kept.
func TestNVMeIndexShares(t *testing.T) {
	const bound = 64 << 10
	tier := newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{MaxIndexBytes: bound})
	fill := func(job string) (int, error) {
		for n := 0; ; n++ {
			if err := putValue(tier, job, fmt.Sprintf("k%04d", n), value(1, 1)); err != nil {
				return n, err
			}
		}
	}
	// The three refusals are all ErrNoSpace (errors.Is matches them by
	// their code), so their text tells them apart.
	is := func(err, want error) bool { return err != nil && err.Error() == want.Error() }
	n, err := fill("a")
	if !is(err, dataplane.ErrJobIndexFull) || !errors.Is(err, dataplane.ErrNoSpace) {
		t.Fatalf("one job's one-byte values: %d keys, then %v; want its share full", n, err)
	}
	// Each key costs 261 bytes against a share of 64 (a 4 KiB block /
	// 64): 197 over, so a sixteenth of 64 KiB holds 20.
	if n != bound/16/(5+256-4096/64) {
		t.Fatalf("one job indexed %d one-byte keys, want %d", n, bound/16/(5+256-4096/64))
	}
	if err := putValue(tier, "b", "first", value(1, 1)); err != nil {
		t.Fatalf("another job's first key beside it: %v", err)
	}
	var slackErr error
	for i := 0; i < 8 && slackErr == nil; i++ {
		_, slackErr = fill(fmt.Sprintf("c%d", i))
		if is(slackErr, dataplane.ErrJobIndexFull) {
			slackErr = nil
		}
	}
	if !is(slackErr, dataplane.ErrIndexSlackFull) {
		t.Fatalf("jobs of one-byte values: %v; want the shared quarter full", slackErr)
	}
	// Values within their share still fill the rest of the index.
	big := value(64<<10, 2)
	for i := 0; i < 40; i++ {
		if err := putValue(tier, "d", fmt.Sprintf("big%02d", i), big); err != nil {
			t.Fatalf("a 64 KiB value beside full slack, key %d: %v", i, err)
		}
	}
	if _, err := tier.Delete([]byte("a"), []byte("k0000")); err != nil {
		t.Fatal(err)
	}
	if err := putValue(tier, "a", "again", value(1, 1)); err != nil {
		t.Fatalf("a key after its job deleted one: %v", err)
	}
}

// TestNVMeIndexShareCapped: a job's share of the index is at most half of
// it, so a job whose large values give it a share past the whole index
// still leaves other jobs room for their keys; and once it deletes those
// values its keys beyond its smaller share refuse its own new keys, not
// every other job's. Before, a hostile trial's job with 12 values of
// 8 MiB filled a 1 MiB index with 3,543 one-byte keys, and a new job's 20
// one-byte puts were refused 20/20, the index full; after the large
// values were deleted they were still refused, the keys beyond their
// shares taking more than the quarter all jobs share.
func TestNVMeIndexShareCapped(t *testing.T) {
	const bound = 64 << 10
	tier := newNVMe(t, 64<<20, nvme.Options{}, dataplane.NVMeOptions{MaxIndexBytes: bound})
	// 6 MiB of values: a share of 96 KiB uncapped, past the 64 KiB index.
	big := value(1<<20, 3)
	for i := range 6 {
		if err := putValue(tier, "hog", fmt.Sprintf("big%d", i), big); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for ; n < 1000; n++ {
		if err := putValue(tier, "hog", fmt.Sprintf("k%04d", n), value(1, 1)); err != nil {
			if err.Error() != dataplane.ErrJobIndexFull.Error() {
				t.Fatalf("the hog's key %d: %v; want its share full", n, err)
			}
			break
		}
	}
	// Half the index plus its slack, at 261 bytes a key (big0..5: 260).
	if most := (bound/2 + bound/16) / 260; n > most {
		t.Fatalf("one job indexed %d one-byte keys beside its large values, want at most %d", n, most)
	}
	// Each of a new job's 20 one-byte keys costs 197 bytes beyond its
	// share: 3,940 of the 4,096 of its slack.
	victim := func(job string) {
		t.Helper()
		for i := range 20 {
			if err := putValue(tier, job, fmt.Sprintf("v%02d", i), value(1, 1)); err != nil {
				t.Fatalf("%s's one-byte key %d beside the hog's %d: %v", job, i, n, err)
			}
		}
	}
	victim("victim1")
	for i := range 6 {
		if _, err := tier.Delete([]byte("hog"), []byte(fmt.Sprintf("big%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	victim("victim2")
	if err := putValue(tier, "hog", "more", value(1, 1)); err == nil || err.Error() != dataplane.ErrJobIndexFull.Error() {
		t.Fatalf("the hog's new key after its large values went: %v; want its share full", err)
	}
	tier.DropJob([]byte("hog"), false)
	if err := putValue(tier, "hog", "again", value(1, 1)); err != nil {
		t.Fatalf("the hog's key after its job was dropped: %v", err)
	}
}

func BenchmarkNVMeTier(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		tier := newNVMe(b, 256<<20, nvme.Options{}, dataplane.NVMeOptions{})
		data := value(size, 1)
		const keys = 64
		for i := range keys {
			if err := putValue(tier, "j", fmt.Sprint(i), data); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("get/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				v, err := tier.Open([]byte("j"), []byte(fmt.Sprint(i%keys)))
				if err != nil {
					b.Fatal(err)
				}
				v.Release()
				i++
			}
		})
		b.Run(fmt.Sprintf("put/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := putValue(tier, "j", fmt.Sprint(i%keys), data); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// A GET of a one-chunk value allocates the open value and nothing else:
// its buffer and segment slices and the read's transfers live in the value
// (before, three more slices per GET). Values of several chunks still
// read back whole.
func TestNVMeOpenAllocations(t *testing.T) {
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			tier := newNVMe(t, 8<<20, nvme.Options{Engine: eng}, dataplane.NVMeOptions{ChunkSize: 64 << 10})
			small := bytes.Repeat([]byte("a4k."), 1024)
			big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 5 chunks
			for key, val := range map[string][]byte{"small": small, "big": big} {
				p, err := tier.Create([]byte("job"), []byte(key), int64(len(val)), dataplane.Meta{})
				if err != nil {
					t.Fatal(err)
				}
				rest := val
				for _, b := range p.Buffers() {
					rest = rest[copy(b, rest):]
				}
				if _, err := p.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			// AllocsPerRun counts the whole process's allocations, the
			// device's reaper goroutine and the runtime's included: on a
			// busy machine a read the reaper completes can cost the
			// runtime a few of its own (CI once saw 2.0). The fewest of
			// five measurements is the get's own count.
			allocs := math.Inf(1)
			for range 5 {
				allocs = min(allocs, testing.AllocsPerRun(50, func() {
					v, err := tier.Open([]byte("job"), []byte("small"))
					if err != nil {
						t.Fatal(err)
					}
					v.Release()
				}))
			}
			// 1 for the value; the race detector's sync.Pool drops
			// items now and then, which may add a fraction.
			if allocs >= 2 {
				t.Errorf("Open+Release of a 4 KiB value: %.1f allocations, want 1", allocs)
			}
			v, err := tier.Open([]byte("job"), []byte("big"))
			if err != nil {
				t.Fatal(err)
			}
			defer v.Release()
			if got := bytes.Join(v.Segments(), nil); !bytes.Equal(got, big) {
				t.Fatalf("big value read back %d bytes, differs", len(got))
			}
		})
	}
}

// openStarted runs OpenStart and waits for its done; it fails the test when
// the read does not start, the size it named is not the value's, or done
// runs twice.
func openStarted(t *testing.T, tier *dataplane.NVMe, job, key string) (dataplane.Value, error) {
	t.Helper()
	type res struct {
		v   dataplane.Value
		err error
	}
	ch := make(chan res, 2)
	size, started, err := tier.OpenStart([]byte(job), []byte(key), true, func(v dataplane.Value, err error) { ch <- res{v, err} })
	if !started || err != nil {
		t.Fatalf("OpenStart(%s) = %v, %v; want started", key, started, err)
	}
	r := <-ch
	if r.err == nil && r.v.Size() != size {
		t.Errorf("OpenStart(%s) named size %d; the value has %d", key, size, r.v.Size())
	}
	select {
	case <-ch:
		t.Fatal("done called twice")
	default:
	}
	return r.v, r.err
}

// OpenStart reads a value without waiting for the device: done gets its
// bytes (one chunk and several), a missing key is refused at once with
// ErrNotFound, and the sync engine declines (the caller opens instead);
// every read buffer goes back on Release.
func TestNVMeOpenStart(t *testing.T) {
	if err := nvme.ProbeUring(); err != nil {
		t.Skipf("io_uring: %v", err)
	}
	tier := newNVMe(t, 8<<20, nvme.Options{Engine: nvme.EngineUring}, dataplane.NVMeOptions{ChunkSize: 64 << 10})
	pool := tier.Device().Buffers().(*nvme.MmapBuffers)
	base := pool.InUse()
	vals := map[string][]byte{"small": value(4096, 1), "big": value(300_000, 2), "odd": value(5000, 3)}
	for key, val := range vals {
		if err := putValue(tier, "job", key, val); err != nil {
			t.Fatal(err)
		}
	}
	for key, val := range vals {
		v, err := openStarted(t, tier, "job", key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if got := bytes.Join(v.Segments(), nil); !bytes.Equal(got, val) {
			t.Errorf("%s: read %d bytes differing from the %d stored", key, len(got), len(val))
		}
		v.Release()
	}
	if got := pool.InUse(); got != base {
		t.Errorf("read buffers in use after release: %d bytes, want %d", got, base)
	}
	noCall := func(dataplane.Value, error) { t.Error("done called for a read that never started") }
	if _, started, err := tier.OpenStart([]byte("job"), []byte("nope"), true, noCall); started || !errors.Is(err, dataplane.ErrNotFound) {
		t.Errorf("missing key: started %v, %v; want ErrNotFound", started, err)
	}
	syncTier := newNVMe(t, 1<<20, nvme.Options{Engine: nvme.EngineSync}, dataplane.NVMeOptions{})
	if err := putValue(syncTier, "job", "k", value(4096, 4)); err != nil {
		t.Fatal(err)
	}
	if _, started, err := syncTier.OpenStart([]byte("job"), []byte("k"), true, noCall); started || err != nil {
		t.Errorf("sync engine: started %v, %v; want declined without error", started, err)
	}
	if _, err := syncTier.Delete([]byte("job"), []byte("k")); err != nil {
		t.Fatal(err)
	}
	if u := syncTier.Usage(); u.Used != 0 {
		t.Errorf("a declined OpenStart kept its reader: %d bytes still allocated after delete", u.Used)
	}
}

// A read the device fails (here: ends early, the file truncated under the
// tier) reaches done as an I/O error with no value; its read buffers go
// back and its reader reference is dropped, so deleting the value frees
// its extents.
func TestNVMeOpenStartReadFails(t *testing.T) {
	if err := nvme.ProbeUring(); err != nil {
		t.Skipf("io_uring: %v", err)
	}
	tier := newNVMe(t, 8<<20, nvme.Options{Engine: nvme.EngineUring}, dataplane.NVMeOptions{ChunkSize: 64 << 10})
	pool := tier.Device().Buffers().(*nvme.MmapBuffers)
	base := pool.InUse()
	if err := putValue(tier, "job", "k", value(200_000, 5)); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(tier.Device().Path(), 0); err != nil {
		t.Fatal(err)
	}
	v, err := openStarted(t, tier, "job", "k")
	if v != nil || !errors.Is(err, dataplane.ErrIO) {
		t.Fatalf("read of a truncated device: %v, %v; want no value and ErrIO", v, err)
	}
	if got := pool.InUse(); got != base {
		t.Errorf("read buffers in use after a failed read: %d bytes, want %d", got, base)
	}
	if _, err := tier.Delete([]byte("job"), []byte("k")); err != nil {
		t.Fatal(err)
	}
	if u := tier.Usage(); u.Used != 0 {
		t.Errorf("%d bytes still allocated after delete: the failed read kept its reader", u.Used)
	}
}

// Reads queued with submit false, on an idle device, wait for Flush;
// ClaimFlush hands the duty of arranging that Flush to one caller until
// the Flush begins. (On a busy device the reaper hands queued reads over
// after each completion it reaps, nvme.Device.FlushSoon: the puts'
// last completion is let pass first. Without that pause the reaper,
// woken by the last put, handed the reads queued meanwhile over before
// Flush, in a fresh-clone CI run under -race.)
func TestNVMeOpenStartQueued(t *testing.T) {
	if err := nvme.ProbeUring(); err != nil {
		t.Skipf("io_uring: %v", err)
	}
	tier := newNVMe(t, 8<<20, nvme.Options{Engine: nvme.EngineUring}, dataplane.NVMeOptions{})
	vals := [][]byte{value(4096, 6), value(8192, 7)}
	res := make(chan []byte, len(vals))
	for i, val := range vals { // all puts first: a put's write submits queued reads too
		if err := putValue(tier, "job", fmt.Sprintf("k%d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the reaper's hand-over after the last put's completion
	for i := range vals {
		key := fmt.Sprintf("k%d", i)
		_, started, err := tier.OpenStart([]byte("job"), []byte(key), false, func(v dataplane.Value, err error) {
			if err != nil {
				t.Error(err)
				res <- nil
				return
			}
			res <- bytes.Join(v.Segments(), nil)
			v.Release()
		})
		if !started || err != nil {
			t.Fatalf("OpenStart(%s) = %v, %v", key, started, err)
		}
	}
	if !tier.ClaimFlush() || tier.ClaimFlush() {
		t.Fatal("ClaimFlush: want true once, then false until Flush")
	}
	select {
	case <-res:
		t.Fatal("a queued read completed before Flush")
	case <-time.After(50 * time.Millisecond):
	}
	tier.Flush()
	got := map[string]bool{}
	for range vals {
		got[string(<-res)] = true
	}
	for i, val := range vals {
		if !got[string(val)] {
			t.Errorf("value %d not read back", i)
		}
	}
	if !tier.ClaimFlush() {
		t.Error("ClaimFlush after Flush: false, want true")
	}
	tier.Flush()
}

// Reader references are counted without the tier's write lock: the last
// Release of an overwritten or deleted version and the overwrite itself
// race, and exactly one of them must free its extents. Readers open and
// release one key while writers overwrite and delete it; every read is
// whole and, at the end, the tier holds the last value's blocks and no
// more (a double free panics in the allocator; a missed one shows in Used).
func TestNVMeReadersRaceRetire(t *testing.T) {
	tier := newNVMe(t, 8<<20, nvme.Options{Engine: nvme.EngineSync}, dataplane.NVMeOptions{ChunkSize: 64 << 10})
	put := func(val []byte) {
		p, err := tier.Create([]byte("job"), []byte("k"), int64(len(val)), dataplane.Meta{})
		if err != nil {
			t.Error(err)
			return
		}
		rest := val
		for _, b := range p.Buffers() {
			rest = rest[copy(b, rest):]
		}
		if _, err := p.Commit(); err != nil {
			t.Error(err)
		}
	}
	vals := [][]byte{bytes.Repeat([]byte{'a'}, 4096), bytes.Repeat([]byte{'b'}, 8192), bytes.Repeat([]byte{'c'}, 100<<10)}
	put(vals[0])
	var stop atomic.Bool
	done := make(chan struct{})
	const readers = 4
	for r := range readers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; !stop.Load(); i++ {
				v, err := tier.Open([]byte("job"), []byte("k"))
				if errors.Is(err, dataplane.ErrNotFound) {
					continue
				}
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				got := bytes.Join(v.Segments(), nil)
				if len(got) == 0 || !bytes.Equal(got, bytes.Repeat(got[:1], len(got))) {
					t.Errorf("reader %d: torn value of %d bytes", r, len(got))
				}
				if i%3 == 0 {
					time.Sleep(time.Microsecond) // hold it across a retire now and then
				}
				v.Release()
			}
		}()
	}
	for i := range 3000 {
		if i%7 == 6 {
			_, _ = tier.Delete([]byte("job"), []byte("k"))
			continue
		}
		put(vals[i%len(vals)])
	}
	stop.Store(true)
	for range readers {
		<-done
	}
	last := vals[2999%len(vals)]
	want := (int64(len(last)) + 4095) / 4096 * 4096
	if u := tier.Usage(); u.Used != want || u.Values != 1 {
		t.Fatalf("after the race: %+v; want Used %d (the last value's blocks), Values 1", u, want)
	}
}
