package dataplane

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pocketstore/pocket/nvme"
)

// TestNVMeKeyMapShrinks (hostile trial, 2026-12-07): a job's NVMe key map
// is copied to one of its size once it holds under 1/8 of the most keys it
// held, after deletes and after a revoked drop that kept its persisted
// values. Before, a Go map kept the buckets of its most keys: jobs of
// 120,000 keys, ended keeping 10 persisted, held 8-12 MB of a node's
// memory each.
func TestNVMeKeyMapShrinks(t *testing.T) {
	dir := t.TempDir()
	if err := nvme.ProbeDirectIO(dir); err != nil {
		t.Skipf("NVMe tier test skipped: %s: %v", dir, err)
	}
	dev, err := nvme.Open(filepath.Join(dir, fmt.Sprintf("compact-%d", os.Getpid())), nvme.Options{Size: 64 << 20, BufferPool: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	tier, err := NewNVMe(dev, NVMeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	put := func(job, key string, flags PutFlags) {
		t.Helper()
		p, err := tier.Create([]byte(job), []byte(key), 1, Meta{Flags: flags})
		if err != nil {
			t.Fatal(err)
		}
		p.Buffers()[0][0] = 'x'
		if _, err := p.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	keyMap := func(job string) (int, int) {
		tier.mu.RLock()
		defer tier.mu.RUnlock()
		j := tier.jobs[job]
		return len(j.keys), j.peak
	}
	const n, kept = 4 * nvmeCompactMin, 8
	for i := range n {
		put("del", fmt.Sprint("k", i), 0)
	}
	for i := kept; i < n; i++ {
		if _, err := tier.Delete([]byte("del"), []byte(fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
	}
	if keys, peak := keyMap("del"); keys != kept || peak >= n/8 {
		t.Errorf("after deleting %d of %d keys: %d keys, the map sized for %d; want %d, copied smaller", n-kept, n, keys, peak, kept)
	}
	for i := range n {
		put("drop", fmt.Sprint("tmp", i), 0)
	}
	for i := range kept {
		put("drop", fmt.Sprint("kept", i), Persist)
	}
	tier.DropJob([]byte("drop"), true)
	if keys, peak := keyMap("drop"); keys != kept || peak >= n/8 {
		t.Errorf("after a drop keeping %d persisted keys: %d keys, the map sized for %d; want it copied smaller", kept, keys, peak)
	}
	for i := range kept {
		if _, err := tier.Stat([]byte("drop"), []byte(fmt.Sprint("kept", i))); err != nil {
			t.Fatalf("a kept key after the map was copied: %v", err)
		}
	}
}
