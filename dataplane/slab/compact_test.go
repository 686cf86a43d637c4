package slab

import (
	"errors"
	"testing"
)

// TestFenceKeepsAllocOffAPage: Sparsest names the page with the fewest
// chunks whose chunks fit in its class's other pages; once fenced, Alloc
// hands out none of its chunks; Chunks lists what is in it; freeing them
// all puts the page back in the pool, where another class can take it,
// and Unfence of a page that still holds chunks puts it back in use.
func TestFenceKeepsAllocOffAPage(t *testing.T) {
	a := newArena(t, 4*MinPageSize, Options{PageSize: MinPageSize})
	const n = 100
	var chunks [][]byte
	for {
		b, err := a.Alloc(n)
		if errors.Is(err, ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, b)
	}
	if _, err := a.Alloc(4096); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a full arena gave a chunk of another class: %v", err)
	}
	perPage := len(chunks) / 4
	// Keep two chunks of page 3 and half of the others'.
	var kept [][]byte
	for i, b := range chunks {
		page := i / perPage
		if page == 3 && i%perPage < 2 || page < 3 && i%2 == 0 {
			kept = append(kept, b)
			continue
		}
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
	p, used, ok := a.Sparsest()
	if !ok || used != 2 {
		t.Fatalf("Sparsest: page %d with %d chunks, %v; want the page holding 2", p, used, ok)
	}
	if !a.Fence(p) || a.Fence(p) {
		t.Fatal("Fence: want true, then false for a page fenced already")
	}
	in := a.Chunks(p)
	if len(in) != 2 {
		t.Fatalf("Chunks of the fenced page: %d, want 2", len(in))
	}
	for range perPage {
		b, err := a.Alloc(n)
		if err != nil {
			break
		}
		if off := a.Offset(b); off>>a.pageShift == int64(p) {
			t.Fatal("Alloc handed out a chunk of a fenced page")
		}
		kept = append(kept, b)
	}
	freed := map[int64]bool{}
	for _, off := range in {
		if err := a.Free(a.At(off, 1)[:1:1]); err != nil {
			t.Fatal(err)
		}
		freed[off] = true
	}
	left := kept[:0]
	for _, b := range kept {
		if !freed[a.Offset(b)] {
			left = append(left, b)
		}
	}
	kept = left
	if !a.InPool(p) {
		t.Fatal("a fenced page whose chunks were all freed is not back in the pool")
	}
	a.Unfence(p) // a no-op for a page in the pool
	big, err := a.Alloc(4096)
	if err != nil {
		t.Fatalf("a page back in the pool, then Alloc of another class: %v", err)
	}
	kept = append(kept, big)
	// A fenced page that keeps chunks goes back in use at Unfence.
	if err := a.Free(kept[0]); err != nil { // a page with a free chunk and others in use
		t.Fatal(err)
	}
	q := int32(a.Offset(kept[1]) >> a.pageShift)
	kept = kept[1:]
	if !a.Fence(q) {
		t.Fatal("Fence of a page in use failed")
	}
	a.Unfence(q)
	if !a.Fence(q) {
		t.Fatal("Unfence did not put the page back")
	}
	a.Unfence(q)
	for _, b := range kept {
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
	if a.Used() != 0 || a.Stats().PagesUsed != 0 {
		t.Fatalf("used %d, pages %d after freeing everything", a.Used(), a.Stats().PagesUsed)
	}
}
