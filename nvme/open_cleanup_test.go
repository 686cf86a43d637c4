package nvme

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestFailedOpenRemovesTheFileItMade: an Open that creates its file and
// then fails (the file system refuses the size, or the buffers cannot be
// had) removes that file; one that fails on a file it did not make leaves
// it. Before, `pocket node --nvme PATH:100TiB` failed with "ftruncate:
// file too large" and left an empty PATH behind.
func TestFailedOpenRemovesTheFileItMade(t *testing.T) {
	dir := testDir(t)
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"size past the file system's largest file", Options{Size: math.MaxInt64 &^ (1<<20 - 1), Engine: EngineSync}},
		{"buffers that cannot be mapped", Options{Size: 1 << 20, BufferPool: 1 << 62, Engine: EngineSync}},
	} {
		path := filepath.Join(dir, "tier")
		d, err := Open(path, c.opts)
		if err == nil {
			d.Close()
			os.Remove(path)
			t.Logf("%s: this file system took it; nothing to check", c.name)
			continue
		}
		if _, serr := os.Lstat(path); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%s: Open failed (%v) and left the file it made: %v", c.name, err, serr)
			os.Remove(path)
		}
	}

	kept := filepath.Join(dir, "kept")
	if err := os.WriteFile(kept, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(kept, Options{Size: 1 << 20, BufferPool: 1 << 62, Engine: EngineSync}); err == nil {
		t.Fatal("Open with a buffer pool of 4 EiB succeeded")
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("a failed Open removed a file it did not make: %v", err)
	}
}
