package dataplane

import (
	"testing"
	"time"
)

// TestDeletesAndMarkExclude: a delete's check for keys moving and the
// mover's mark exclude each other (beginPrefixDelete, beginKeyDelete,
// markWaiting): a key marked first makes the delete wait (refused,
// CodeBusy on the wire); a mover marking a key under a delete that began
// first waits for it to end before it reads the key, and only for a
// delete that covers the key.
func TestDeletesAndMarkExclude(t *testing.T) {
	v := newVersionTable()
	job := []byte("j")
	unmark := v.markWaiting(KindDRAM, job, []byte("dir/a"))
	if _, ok := v.beginPrefixDelete(KindDRAM, job, []byte("dir/")); ok {
		t.Fatal("a prefix delete began while a key under it was marked moving")
	}
	if _, ok := v.beginKeyDelete(KindDRAM, job, []byte("dir/a")); ok {
		t.Fatal("a delete of a key marked moving began")
	}
	if end, ok := v.beginPrefixDelete(KindDRAM, job, []byte("other/")); !ok {
		t.Fatal("a prefix delete of another prefix was refused")
	} else {
		end()
	}
	unmark()
	for i, begin := range []func() func(){
		func() func() { end, _ := v.beginPrefixDelete(KindDRAM, job, []byte("dir/")); return end },
		// Begun while nothing is marked: unregistered, waited for by
		// every mark (they are not told apart).
		func() func() { d, _ := v.beginKeyDelete(KindDRAM, job, []byte("dir/b")); return d.end },
	} {
		end := begin()
		for _, c := range []struct {
			tier Kind
			job  string
			key  string
		}{{KindDRAM, "j", "other/b"}, {KindDRAM, "k", "dir/b"}, {KindNVMe, "j", "dir/b"}} {
			if i == 0 {
				v.markWaiting(c.tier, []byte(c.job), []byte(c.key))() // not covered: no wait
			}
		}
		marked := make(chan func())
		go func() { marked <- v.markWaiting(KindDRAM, job, []byte("dir/b")) }()
		select {
		case <-marked:
			t.Fatal("the mover went on with a key a running delete covers")
		case <-time.After(50 * time.Millisecond):
		}
		end()
		select {
		case u := <-marked:
			u()
		case <-time.After(5 * time.Second):
			t.Fatal("the mover still waits after the delete ended")
		}
	}
	// A key delete begun while a key is marked registers, and holds up
	// only a mark of its own key.
	unmark = v.markWaiting(KindDRAM, job, []byte("dir/a"))
	d, ok := v.beginKeyDelete(KindDRAM, job, []byte("dir/c"))
	if !ok || !d.registered {
		t.Fatalf("a delete of another key beside a mark: began %v, registered %v", ok, d.registered)
	}
	v.markWaiting(KindDRAM, job, []byte("dir/d"))()
	marked := make(chan func())
	go func() { marked <- v.markWaiting(KindDRAM, job, []byte("dir/c")) }()
	select {
	case <-marked:
		t.Fatal("the mover went on with a key whose registered delete runs")
	case <-time.After(50 * time.Millisecond):
	}
	d.end()
	(<-marked)()
	unmark()
	if v.anyMoving() || len(v.deleting) != 0 || len(v.deletingKeys) != 0 || v.unregistered.Load() != 0 {
		t.Fatalf("left: %d moving, %d deleting, %d keys deleting, %d unregistered",
			v.marked.Load(), len(v.deleting), len(v.deletingKeys), v.unregistered.Load())
	}
}
