package nvme

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// testDir returns a directory on a file system that accepts O_DIRECT:
// $POCKET_NVME_TESTDIR when set, else t.TempDir(), else a scratch directory
// beside the package (on the root file system when the temp dir is a tmpfs
// that refuses O_DIRECT). It skips the test, saying why, when none does.
func testDir(t testing.TB) string {
	t.Helper()
	var tried []string
	try := func(dir string) bool {
		err := ProbeDirectIO(dir)
		if err == nil {
			return true
		}
		tried = append(tried, dir+": "+err.Error())
		return false
	}
	if d := os.Getenv("POCKET_NVME_TESTDIR"); d != "" {
		d, err := os.MkdirTemp(d, "nvme-test-*")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		if try(d) {
			return d
		}
	}
	if d := t.TempDir(); try(d) {
		return d
	}
	if wd, err := os.Getwd(); err == nil {
		d, err := os.MkdirTemp(wd, ".nvme-test-*")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			if try(d) {
				return d
			}
		}
	}
	t.Skipf("no directory accepts O_DIRECT: %v", tried)
	return ""
}

// engines lists the engines this machine can run; io_uring is logged as
// skipped when its probe fails.
func engines(t testing.TB) []Engine {
	out := []Engine{EngineSync}
	if err := ProbeUring(); err != nil {
		t.Logf("io_uring engine skipped: %v", err)
	} else {
		out = append(out, EngineUring)
	}
	return out
}

func openTestFile(t testing.TB, eng Engine, size int64, opts Options) *Device {
	t.Helper()
	opts.Size, opts.Engine = size, eng
	d, err := Open(filepath.Join(testDir(t), "dev"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if eng != EngineAuto && d.Engine() != eng {
		t.Fatalf("engine %v, want %v", d.Engine(), eng)
	}
	return d
}

func fill(rng *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
}

// roundTrip writes random bytes at off and reads them back.
func roundTrip(t testing.TB, d *Device, rng *rand.Rand, off int64, n int) {
	t.Helper()
	w, err := d.AllocBuffer(n)
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeBuffer(w)
	r, err := d.AllocBuffer(n)
	if err != nil {
		t.Fatal(err)
	}
	defer d.FreeBuffer(r)
	fill(rng, w)
	if got, err := d.WriteAt(w, off); err != nil || got != len(w) {
		t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", len(w), off, got, err)
	}
	if got, err := d.ReadAt(r, off); err != nil || got != len(r) {
		t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", len(r), off, got, err)
	}
	if !bytes.Equal(w, r) {
		t.Fatalf("read back differs at %d (%d bytes)", off, n)
	}
}
