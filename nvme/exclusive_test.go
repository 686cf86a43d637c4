package nvme

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenIsExclusive: a second Open of a file an open Device holds is
// refused with ErrInUse, naming the path, and the file is left as it was;
// once the first is closed the path opens again. flock locks belong to
// the open file description, so two Opens in one process conflict as two
// nodes do. Before, a hostile trial ran two nodes on one device and a
// control job read 87 of its 100 values back with wrong bytes.
func TestOpenIsExclusive(t *testing.T) {
	path := filepath.Join(testDir(t), "tier")
	d, err := Open(path, Options{Size: 1 << 20, Engine: EngineSync, BufferPool: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := d.AllocBuffer(d.Align())
	if err != nil {
		t.Fatal(err)
	}
	buf[0] = 'x'
	if _, err := d.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{0, 1 << 20, 2 << 20} {
		d2, err := Open(path, Options{Size: size, Engine: EngineSync, BufferPool: 1 << 20})
		if err == nil {
			d2.Close()
			t.Fatalf("a second Open (size %d) of %s, held by an open Device, succeeded", size, path)
		}
		if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), path) {
			t.Fatalf("second Open (size %d): %v; want ErrInUse naming %s", size, err, path)
		}
	}
	if d.Size() != 1<<20 {
		t.Fatalf("size %d after the refused Opens", d.Size())
	}
	clear(buf)
	if _, err := d.ReadAt(buf, 0); err != nil || buf[0] != 'x' {
		t.Fatalf("read back after the refused Opens: %q, %v", buf[:1], err)
	}
	d.FreeBuffer(buf)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = Open(path, Options{Engine: EngineSync, BufferPool: 1 << 20})
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	d.Close()
}

// TestLoopDeviceAndItsFileAreOneDevice: a loop device and the file behind
// it, or two loop devices over one file, are one device: while one is
// open the others are refused with ErrInUse, whichever is opened first.
// Before (O_EXCL on the device, flock on the file, which do not see each
// other), a hostile re-check ran one node on /dev/loopN and one on its
// file, and a control job read 96 of 100 values back with wrong bytes.
func TestLoopDeviceAndItsFileAreOneDevice(t *testing.T) {
	backing := loopBacking(t)
	dev1, dev2 := attachLoop(t, backing), attachLoop(t, backing)
	for _, c := range []struct{ first, second string }{{dev1, backing}, {backing, dev1}, {dev1, dev2}} {
		d, err := Open(c.first, Options{Engine: EngineSync, BufferPool: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Open(c.second, Options{Engine: EngineSync, BufferPool: 1 << 20})
		if err == nil {
			d2.Close()
			d.Close()
			t.Fatalf("%s opened while %s, the same storage, was held", c.second, c.first)
		}
		if !errors.Is(err, ErrInUse) {
			d.Close()
			t.Fatalf("%s while %s was held: %v; want ErrInUse", c.second, c.first, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Open(dev2, Options{Engine: EngineSync, BufferPool: 1 << 20})
	if err != nil {
		t.Fatalf("the second loop device once the others were closed: %v", err)
	}
	d.Close()
}
