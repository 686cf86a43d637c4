package nvme

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenRefusesASizePastTheFreeSpace (hostile trial): Open of a file
// larger than its file system's free space fails with ErrNoSpace and
// leaves the free space as it was. Before, `pocket node --nvme
// PATH:500GiB` with 77 GB free filled the host's disk: the failed
// fallocate kept the blocks it got, and the sparse fallback set the size
// anyway, so Open succeeded. The test runs on a 16 MiB tmpfs it mounts
// (root only), so the old code fills that and nothing else.
func TestOpenRefusesASizePastTheFreeSpace(t *testing.T) {
	dir := smallTmpfs(t)
	free := func() int64 {
		var fs unix.Statfs_t
		if err := unix.Statfs(dir, &fs); err != nil {
			t.Fatal(err)
		}
		return int64(fs.Bavail) * fs.Bsize
	}
	before := free()
	path := filepath.Join(dir, "tier")
	d, err := Open(path, Options{Size: 64 << 20, Engine: EngineSync})
	if err == nil {
		d.Close()
		t.Fatalf("Open of 64 MiB on a 16 MiB file system succeeded (%d bytes free after it, %d before)", free(), before)
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Errorf("Open of 64 MiB on a 16 MiB file system: %v; want ErrNoSpace", err)
	}
	if after := free(); after != before {
		t.Errorf("free space %d after the refused Open, %d before", after, before)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused Open left its file: %v", err)
	}
	// A size that fits is taken, preallocated.
	d, err = Open(path, Options{Size: 8 << 20, Engine: EngineSync})
	if err != nil {
		t.Fatalf("Open of 8 MiB on a 16 MiB file system: %v", err)
	}
	d.Close()
}

// TestOpenPreallocatesASparseFile (hostile trial): a file already long
// enough but sparse (truncate -s) is preallocated like a short one, given
// a size or taken at its own, and refused with ErrNoSpace when its file
// system cannot hold it. Before, it was taken at its length as it was:
// a 64 MiB sparse file on a file system with 37 MiB free served puts until
// the file system filled, and then failed them at the device with ENOSPC.
// Runs on a 16 MiB tmpfs it mounts (root only). Fails on the old code.
func TestOpenPreallocatesASparseFile(t *testing.T) {
	dir := smallTmpfs(t)
	sparse := func(name string, size int64) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err == nil {
			err = f.Truncate(size)
		}
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	allocated := func(p string) int64 {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	big := sparse("big", 64<<20)
	if d, err := Open(big, Options{Size: 64 << 20, Engine: EngineSync}); !errors.Is(err, ErrNoSpace) {
		if err == nil {
			d.Close()
		}
		t.Errorf("Open of a 64 MiB sparse file on a 16 MiB file system: %v; want ErrNoSpace", err)
	}
	if d, err := Open(big, Options{Engine: EngineSync}); !errors.Is(err, ErrNoSpace) {
		if err == nil {
			d.Close()
		}
		t.Errorf("Open of a 64 MiB sparse file at its own size on a 16 MiB file system: %v; want ErrNoSpace", err)
	}
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{4 << 20, 0} { // given, and taken from the file
		p := sparse("fits", 4<<20)
		d, err := Open(p, Options{Size: size, Engine: EngineSync})
		if err != nil {
			t.Fatalf("Open of a 4 MiB sparse file (size %d): %v", size, err)
		}
		d.Close()
		if got := allocated(p); got < 4<<20 {
			t.Errorf("a 4 MiB sparse file opened with size %d: %d bytes allocated; want it preallocated", size, got)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// smallTmpfs mounts a 16 MiB tmpfs for the test (root only; the test is
// skipped otherwise, or where tmpfs refuses O_DIRECT) and returns it.
func smallTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("mount a 16 MiB tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, 0) })
	if err := ProbeDirectIO(dir); err != nil {
		t.Skipf("tmpfs here refuses O_DIRECT: %v", err)
	}
	return dir
}
