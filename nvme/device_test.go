package nvme

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestDeviceReadWrite(t *testing.T) {
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			d := openTestFile(t, eng, 8<<20, Options{})
			if d.Align() <= 0 || d.MemAlign() <= 0 || d.Size() != 8<<20 {
				t.Fatalf("align %d mem %d size %d", d.Align(), d.MemAlign(), d.Size())
			}
			t.Logf("%s: align %d, mem align %d", d.Path(), d.Align(), d.MemAlign())
			rng := rand.New(rand.NewPCG(1, 2))
			a := int64(d.Align())
			for range 50 {
				n := (1 + rng.IntN(64)) * d.Align()
				off := rng.Int64N((d.Size()-int64(n))/a+1) * a
				roundTrip(t, d, rng, off, n)
			}
			roundTrip(t, d, rng, d.Size()-1<<20, 1<<20)
		})
	}
}

func TestDeviceConcurrent(t *testing.T) {
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			d := openTestFile(t, eng, 16<<20, Options{QueueDepth: 8})
			var wg sync.WaitGroup
			const workers = 16
			region := d.Size() / workers
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 9))
					for range 20 {
						n := (1 + rng.IntN(16)) * d.Align()
						off := int64(w)*region + rng.Int64N((region-int64(n))/int64(d.Align())+1)*int64(d.Align())
						roundTrip(t, d, rng, off, n)
					}
				}()
			}
			wg.Wait()
		})
	}
}

// A batch larger than the queue depth must flow through the bounded slots.
func TestDeviceBatchBeyondDepth(t *testing.T) {
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			d := openTestFile(t, eng, 4<<20, Options{QueueDepth: 4})
			blk := d.Align()
			buf, err := d.AllocBuffer(100 * blk)
			if err != nil {
				t.Fatal(err)
			}
			defer d.FreeBuffer(buf)
			fill(rand.New(rand.NewPCG(3, 4)), buf)
			ios := make([]IO, 100)
			for i := range ios {
				ios[i] = IO{Write: true, Buf: buf[i*blk : (i+1)*blk], Off: int64(99-i) * int64(blk)}
			}
			if err := d.Do(ios); err != nil {
				t.Fatal(err)
			}
			back, err := d.AllocBuffer(100 * blk)
			if err != nil {
				t.Fatal(err)
			}
			defer d.FreeBuffer(back)
			if _, err := d.ReadAt(back, 0); err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				if !bytes.Equal(back[(99-i)*blk:(100-i)*blk], buf[i*blk:(i+1)*blk]) {
					t.Fatalf("block %d misplaced", i)
				}
			}
		})
	}
}

func TestDeviceRejectsMisalignedAndOutOfRange(t *testing.T) {
	d := openTestFile(t, EngineAuto, 1<<20, Options{})
	buf, err := d.AllocBuffer(2 * d.Align())
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeBuffer(buf)
	cases := []struct {
		name string
		buf  []byte
		off  int64
		want error
	}{
		{"offset", buf[:d.Align()], 1, ErrAlign},
		{"length", buf[:d.Align()-1], 0, ErrAlign},
		{"address", buf[1 : d.Align()+1], 0, ErrAlign},
		{"past end", buf[:d.Align()], d.Size(), ErrRange},
		{"straddles end", buf, d.Size() - int64(d.Align()), ErrRange},
		{"negative", buf[:d.Align()], -int64(d.Align()), ErrAlign},
	}
	for _, c := range cases {
		if _, err := d.ReadAt(c.buf, c.off); !errors.Is(err, c.want) {
			t.Errorf("%s: ReadAt err %v, want %v", c.name, err, c.want)
		}
		if _, err := d.WriteAt(c.buf, c.off); !errors.Is(err, c.want) {
			t.Errorf("%s: WriteAt err %v, want %v", c.name, err, c.want)
		}
	}
}

// A Go heap buffer (aligned by slicing) works too: it is pinned for the
// transfer.
func TestDeviceHeapBuffer(t *testing.T) {
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			d := openTestFile(t, eng, 1<<20, Options{})
			a := max(d.Align(), d.MemAlign())
			raw := make([]byte, 8*a)
			skip := (a - int(uintptr(unsafe.Pointer(&raw[0]))%uintptr(a))) % a
			w := raw[skip : skip+4*a]
			fill(rand.New(rand.NewPCG(5, 6)), w)
			if _, err := d.WriteAt(w, int64(a)); err != nil {
				t.Fatal(err)
			}
			r := make([]byte, 8*a)
			skip = (a - int(uintptr(unsafe.Pointer(&r[0]))%uintptr(a))) % a
			if _, err := d.ReadAt(r[skip:skip+4*a], int64(a)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(w, r[skip:skip+4*a]) {
				t.Fatal("heap buffer round trip differs")
			}
		})
	}
}

func TestDeviceFaults(t *testing.T) {
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			var mode atomic.Int32 // 0 pass, 1 EIO, 2 ENOSPC, 3 half once, 4 nothing
			var halved atomic.Bool
			fault := func(op Op, off int64, n int) (int, error) {
				switch mode.Load() {
				case 1:
					return 0, syscall.EIO
				case 2:
					return 0, syscall.ENOSPC
				case 3:
					if !halved.Swap(true) {
						return n / 2, nil
					}
				case 4:
					return 0, nil
				}
				return n, nil
			}
			d := openTestFile(t, eng, 1<<20, Options{Fault: fault})
			rng := rand.New(rand.NewPCG(7, 8))
			buf, err := d.AllocBuffer(4 * d.Align())
			if err != nil {
				t.Fatal(err)
			}
			defer d.FreeBuffer(buf)
			for m, want := range map[int32]error{1: syscall.EIO, 2: syscall.ENOSPC, 4: ErrShortTransfer} {
				mode.Store(m)
				if _, err := d.WriteAt(buf, 0); !errors.Is(err, want) {
					t.Errorf("mode %d: write err %v, want %v", m, err, want)
				}
				if _, err := d.ReadAt(buf, 0); !errors.Is(err, want) {
					t.Errorf("mode %d: read err %v, want %v", m, err, want)
				}
			}
			mode.Store(3)
			roundTrip(t, d, rng, 0, 4*d.Align())
			if !halved.Load() {
				t.Fatal("the short-transfer fault never fired")
			}
		})
	}
}

func TestDeviceClosed(t *testing.T) {
	for _, eng := range engines(t) {
		d := openTestFile(t, eng, 1<<20, Options{})
		buf := make([]byte, 0)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.ReadAt(buf, 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("%v: read after close: %v", eng, err)
		}
		if err := d.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	}
}

func TestOpenSizes(t *testing.T) {
	dir := testDir(t)
	path := filepath.Join(dir, "f")
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("opening a missing file without a size succeeded")
	}
	d, err := Open(path, Options{Size: 3<<20 + 100})
	if err != nil {
		t.Fatal(err)
	}
	if d.Size()%int64(d.Align()) != 0 || d.Size() > 3<<20+100 || d.Size() < 3<<20 {
		t.Fatalf("size %d not rounded down to alignment %d", d.Size(), d.Align())
	}
	d.Close()
	d, err = Open(path, Options{}) // existing size
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() < 3<<20 {
		t.Fatalf("reopened size %d", d.Size())
	}
}

func TestClassifyOpenErr(t *testing.T) {
	if err := classifyOpenErr("x", syscall.EINVAL); !errors.Is(err, ErrNotSupported) || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("EINVAL at open: %v", err)
	}
	if err := classifyOpenErr("x", syscall.ENOENT); errors.Is(err, ErrNotSupported) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ENOENT at open: %v", err)
	}
}

func TestProbeDirectIOCached(t *testing.T) {
	dir := testDir(t)
	if err := ProbeDirectIO(dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("probe left %s behind", e.Name())
	}
}

// TestLoopDevice runs the round trip on a real block device: a loop device
// over a file, when running as root with loop devices available.
func TestLoopDevice(t *testing.T) {
	backing := loopBacking(t)
	dev := attachLoop(t, backing)
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			d, err := Open(dev, Options{Engine: eng})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if !d.IsBlockDevice() || d.Size() != 8<<20 {
				t.Fatalf("%s: block %v size %d", dev, d.IsBlockDevice(), d.Size())
			}
			t.Logf("%s: align %d, mem align %d", dev, d.Align(), d.MemAlign())
			rng := rand.New(rand.NewPCG(11, 12))
			for i := range 20 {
				roundTrip(t, d, rng, int64(i)*int64(d.Align())*7, (1+i)*d.Align())
			}
			// Held: a second opener (a second node on the device) is
			// refused, O_EXCL or flock.
			if d2, err := Open(dev, Options{Engine: eng}); !errors.Is(err, ErrInUse) {
				if err == nil {
					d2.Close()
				}
				t.Fatalf("second Open of %s while held: %v; want ErrInUse", dev, err)
			}
			d.Close()
			// An O_EXCL holder that takes no flock (mkfs, a mount) is
			// seen too.
			fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if d2, err := Open(dev, Options{Engine: eng}); !errors.Is(err, ErrInUse) {
				if err == nil {
					d2.Close()
				}
				t.Fatalf("Open of %s held O_EXCL: %v; want ErrInUse", dev, err)
			}
			unix.Close(fd)
			if _, err := Open(dev, Options{Size: 16 << 20, Engine: eng}); !errors.Is(err, ErrRange) {
				t.Fatalf("size past the device: %v", err)
			}
		})
	}
}

func TestRingNop(t *testing.T) {
	if err := ProbeUring(); err != nil {
		t.Skipf("io_uring: %v", err)
	}
	r, err := newRing(8)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if r.entries != 8 || r.sqSpace() != 8 {
		t.Fatalf("entries %d space %d", r.entries, r.sqSpace())
	}
	for i := range 5 {
		r.push(opNop, -1, nil, 0, 0, 0, uint64(100+i))
	}
	if err := r.submit(5); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int32{}
	for len(got) < 5 {
		if r.reap(func(ud uint64, res int32) { got[ud] = res }) == 0 {
			if err := r.wait(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 5 {
		if res, ok := got[uint64(100+i)]; !ok || res != 0 {
			t.Fatalf("nop %d: %v %d", i, ok, res)
		}
	}
}

// The private MmapBuffers region is registered, so transfers from it take
// the fixed-buffer path.
func TestUringFixedBuffers(t *testing.T) {
	if err := ProbeUring(); err != nil {
		t.Skipf("io_uring: %v", err)
	}
	d := openTestFile(t, EngineUring, 1<<20, Options{})
	e := d.eng.(*uringEngine)
	if len(e.fixed) == 0 {
		t.Skip("buffer registration refused (memlock limit?); fixed path untested")
	}
	buf, err := d.AllocBuffer(d.Align())
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeBuffer(buf)
	if e.fixedIndex(buf) != 0 {
		t.Fatalf("buffer not found in registered region")
	}
	if e.fixedIndex(make([]byte, 10)) != -1 {
		t.Fatalf("heap buffer matched a registered region")
	}
	roundTrip(t, d, rand.New(rand.NewPCG(1, 1)), 0, 4*d.Align())
}

func ExampleDevice() {
	dir, _ := os.MkdirTemp("", "nvme-example")
	defer os.RemoveAll(dir)
	d, err := Open(filepath.Join(dir, "dev"), Options{Size: 1 << 20})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	buf, _ := d.AllocBuffer(d.Align())
	defer d.FreeBuffer(buf)
	copy(buf, "hello")
	d.WriteAt(buf, 0)
	clear(buf)
	d.ReadAt(buf, 0)
	fmt.Println(string(buf[:5]))
	// Prints "hello" where the temp dir accepts O_DIRECT.
}

// Many goroutines, batches of mixed sizes and a tiny queue depth: slots run
// out constantly, the reaper role changes hands, and entries are submitted
// by other goroutines' system calls. Every transfer must still complete.
func TestDeviceStress(t *testing.T) {
	for _, eng := range engines(t) {
		t.Run(eng.String(), func(t *testing.T) {
			d := openTestFile(t, eng, 4<<20, Options{QueueDepth: 2})
			blk := d.Align()
			var wg sync.WaitGroup
			for w := range 24 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 77))
					buf, err := d.AllocBuffer(5 * blk)
					if err != nil {
						t.Error(err)
						return
					}
					defer d.FreeBuffer(buf)
					for range 150 {
						ios := make([]IO, 1+rng.IntN(5))
						for i := range ios {
							ios[i] = IO{Write: rng.IntN(2) == 0, Buf: buf[i*blk : (i+1)*blk], Off: int64(w*5+i) * int64(blk)}
						}
						if err := d.Do(ios); err != nil {
							t.Error(err)
							return
						}
						for _, io := range ios {
							if io.N != blk {
								t.Errorf("transfer moved %d of %d", io.N, blk)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// TestDeviceDoEmpty: a batch of no transfers (a zero-length value) returns
// at once instead of waiting for completions that will never come.
func TestDeviceDoEmpty(t *testing.T) {
	for _, eng := range engines(t) {
		dev := openTestFile(t, eng, 1<<20, Options{})
		done := make(chan error, 1)
		go func() { done <- dev.Do(nil) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%v: Do(nil) = %v", eng, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v: Do(nil) did not return", eng)
		}
	}
}

// loopBacking is an 8 MiB file for loop devices (attachLoop), or skips
// the test when loop devices cannot be made here (not root, no
// /dev/loop-control).
func loopBacking(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop device test skipped: not root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("loop device test skipped: %v", err)
	}
	backing := filepath.Join(testDir(t), "backing")
	if err := os.WriteFile(backing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, 8<<20); err != nil {
		t.Fatal(err)
	}
	return backing
}

// attachLoop attaches a loop device over backing, detached when the test
// ends, and returns its path; it skips the test when losetup cannot.
func attachLoop(t *testing.T, backing string) string {
	t.Helper()
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		t.Skipf("loop device test skipped: %v", err)
	}
	out, err := exec.Command(losetup, "--find", "--show", backing).Output()
	if err != nil {
		t.Skipf("loop device test skipped: losetup: %v", err)
	}
	dev := string(bytes.TrimSpace(out))
	t.Cleanup(func() {
		if err := exec.Command(losetup, "--detach", dev).Run(); err != nil {
			t.Errorf("losetup --detach %s: %v", dev, err)
		}
	})
	return dev
}
