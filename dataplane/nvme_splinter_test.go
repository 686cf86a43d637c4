package dataplane

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pocketstore/pocket/nvme"
)

// TestNVMeSplinteredSpaceTakesLargeValues: a tier whose free half is all
// one-block holes still takes values of 65 and 256 blocks, scattered over
// as many pieces, reads them back whole, and counts their extents in the
// key index until they go. Before, a value took at most 64 pieces: a
// hostile trial's tier of 65,536 values of 100 bytes, every other one
// deleted, refused 20 of 20 puts of 266,240 bytes and of 1 MiB at 50 %
// free ("the free space is split in pieces too small").
func TestNVMeSplinteredSpaceTakesLargeValues(t *testing.T) {
	dir := t.TempDir()
	if d := os.Getenv("POCKET_NVME_TESTDIR"); d != "" {
		dir = d
	}
	if err := nvme.ProbeDirectIO(dir); err != nil {
		t.Skipf("NVMe tier test skipped: %s: %v", dir, err)
	}
	dev, err := nvme.Open(filepath.Join(dir, fmt.Sprintf("splinter-%d", os.Getpid())), nvme.Options{Size: 16 << 20, BufferPool: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close(); os.Remove(dev.Path()) })
	tier, err := NewNVMe(dev, NVMeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	put := func(key string, data []byte) error {
		p, err := tier.Create([]byte("j"), []byte(key), int64(len(data)), Meta{})
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
	get := func(key string) []byte {
		v, err := tier.Open([]byte("j"), []byte(key))
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		defer v.Release()
		var out []byte
		for _, s := range v.Segments() {
			out = append(out, s...)
		}
		return out
	}
	small := bytes.Repeat([]byte{7}, 100)
	blocks := int(tier.alloc.Capacity() / tier.alloc.Block())
	for i := range blocks {
		if err := put(fmt.Sprintf("s%05d", i), small); err != nil {
			t.Fatalf("small value %d of %d: %v", i, blocks, err)
		}
	}
	for i := 0; i < blocks; i += 2 {
		if _, err := tier.Delete([]byte("j"), []byte(fmt.Sprintf("s%05d", i))); err != nil {
			t.Fatal(err)
		}
	}
	indexBefore := tier.index
	var big []string
	for i, size := range []int{266240, 266240, 1 << 20, 1 << 20} {
		key := fmt.Sprintf("big%d", i)
		data := bytes.Repeat([]byte{byte(i + 1), byte(i * 3)}, size/2)
		if err := put(key, data); err != nil {
			t.Fatalf("a %d-byte put at 50 %% free in one-block holes: %v", size, err)
		}
		if got := get(key); !bytes.Equal(got, data) {
			t.Fatalf("%s read back wrong", key)
		}
		big = append(big, key)
	}
	// Their extents count: 64 + 64 + 255 + 255 beyond the first, 16 bytes each.
	if want := indexBefore + 4*(indexCost("big0")) + (64+64+255+255)*nvmeExtentCost; tier.index != want {
		t.Errorf("index %d after the scattered values, want %d", tier.index, want)
	}
	if err := put("big0", small); err != nil { // a replacement: one block, no extent beyond it
		t.Fatal(err)
	}
	for _, key := range big[1:] {
		if _, err := tier.Delete([]byte("j"), []byte(key)); err != nil {
			t.Fatal(err)
		}
	}
	if want := indexBefore + indexCost("big0"); tier.index != want {
		t.Errorf("index %d after the scattered values went, want %d", tier.index, want)
	}
	for i := 1; i < blocks; i += 2 {
		if got := get(fmt.Sprintf("s%05d", i)); !bytes.Equal(got, small) {
			t.Fatalf("small value %d damaged", i)
		}
	}
}
