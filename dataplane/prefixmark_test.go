package dataplane

import "testing"

// TestPrefixDeleteAndMarkExclude: a prefix delete's check for keys
// moving and the mover's mark exclude each other in one step
// (beginPrefixDelete, tryMark): a key marked first makes the delete wait
// (refused, CodeBusy on the wire); a delete registered first makes the
// mover leave the keys under its prefix, and only those, until it ends.
func TestPrefixDeleteAndMarkExclude(t *testing.T) {
	v := newVersionTable()
	job := []byte("j")
	unmark, ok := v.tryMark(KindDRAM, job, []byte("dir/a"))
	if !ok {
		t.Fatal("tryMark refused with no prefix delete running")
	}
	if _, ok := v.beginPrefixDelete(KindDRAM, job, []byte("dir/")); ok {
		t.Fatal("a prefix delete began while a key under it was marked moving")
	}
	if end, ok := v.beginPrefixDelete(KindDRAM, job, []byte("other/")); !ok {
		t.Fatal("a prefix delete of another prefix was refused")
	} else {
		end()
	}
	unmark()
	end, ok := v.beginPrefixDelete(KindDRAM, job, []byte("dir/"))
	if !ok {
		t.Fatal("a prefix delete was refused with nothing moving")
	}
	if _, ok := v.tryMark(KindDRAM, job, []byte("dir/b")); ok {
		t.Fatal("the mover marked a key under a running prefix delete")
	}
	for _, c := range []struct {
		tier Kind
		job  string
		key  string
	}{{KindDRAM, "j", "other/b"}, {KindDRAM, "k", "dir/b"}, {KindNVMe, "j", "dir/b"}} {
		u, ok := v.tryMark(c.tier, []byte(c.job), []byte(c.key))
		if !ok {
			t.Fatalf("tryMark of %v %q %q refused: no prefix delete covers it", c.tier, c.job, c.key)
		}
		u()
	}
	end()
	u, ok := v.tryMark(KindDRAM, job, []byte("dir/b"))
	if !ok {
		t.Fatal("tryMark refused after the prefix delete ended")
	}
	u()
	if v.anyMoving() || len(v.deleting) != 0 {
		t.Fatalf("left marked: %d moving, %d deleting", v.marked.Load(), len(v.deleting))
	}
}
