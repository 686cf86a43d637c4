package dataplane

import (
	"fmt"
	"testing"
)

// TestCompactsWithOneFreePage: a tier of sparse pages (small values,
// 7 in 8 deleted) with exactly one free page. A 300 KiB value is two
// pieces of different classes, so it needs two new pages: compaction can
// free the second (the sparse pages' values fit in far fewer pages), and
// the put must succeed.
func TestCompactsWithOneFreePage(t *testing.T) {
	d, err := NewDRAM(32<<20, DRAMOptions{PageSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	put := func(job, key string, n int64) error {
		p, err := d.Create([]byte(job), []byte(key), n, Meta{})
		if err != nil {
			return err
		}
		_, err = p.Commit()
		return err
	}
	k := 0
	for ; put("h", fmt.Sprint(k), 100) == nil; k++ {
	}
	for i := 0; i < k; i++ {
		if i%8 != 0 {
			d.Delete([]byte("h"), []byte(fmt.Sprint(i)))
		}
	}
	// Exactly one free page, the rest sparse: 1 MiB values take free
	// pages (compacting when there is none) until one is left.
	for i := 0; d.Arena().FreePages() != 1; i++ {
		if err := put("x", fmt.Sprint(i), 1<<20); err != nil {
			t.Fatalf("setting up one free page: %v", err)
		}
	}
	u := d.Usage()
	t.Logf("%d small values, %d kept; used %d of %d, free pages %d", k, k/8, u.Used, u.Capacity, d.Arena().FreePages())
	if err := put("v", "two-pieces", 300<<10); err != nil {
		moved, pages := d.Compacted()
		t.Fatalf("a 300 KiB put (two pieces of different classes) with one free page: %v (compaction moved %d values, freed %d pages in all)", err, moved, pages)
	}
}
