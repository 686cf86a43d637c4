package dataplane

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"testing"
)

// TestMoveNeverUndoesADeleteOverwriteOrDrop: a compaction's move of a
// value races a delete, an overwrite and a drop of its job. The move is
// published only in place of the record it moves, so whatever the order
// the key ends deleted, overwritten or dropped. The record at arena
// offset 0 (the first one ever put) is moved too: before, moving 0 meant
// "not a move", and that move became a plain put that brought deleted
// and dropped values back (a hostile review: 61 and 87 of 200 races) and
// undid an overwrite (1 of 200). Fails on that code.
func TestMoveNeverUndoesADeleteOverwriteOrDrop(t *testing.T) {
	const size = 3 << 20
	old, newer := bytes.Repeat([]byte{'o'}, size), bytes.Repeat([]byte{'n'}, size)
	for _, first := range []bool{true, false} { // the record at offset 0, and elsewhere
		bad := 0
		for it := 0; it < 150; it++ {
			d, err := NewDRAM(16<<20, DRAMOptions{PageSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if !first {
				store(t, d, "pad", "pad", make([]byte, 100), 0)
			}
			store(t, d, "j", "a", old, 0)
			off, _, err := d.lookup([]byte("j"), []byte("a"), false)
			if err != nil || (off == 0) != first {
				t.Fatalf("record at %d (%v)", off, err)
			}
			mode := it % 3
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.Gosched()
				switch mode {
				case 0:
					_, _ = d.Delete([]byte("j"), []byte("a"))
				case 1:
					if p, err := d.Create([]byte("j"), []byte("a"), size, Meta{}); err != nil {
						t.Error(err)
					} else {
						copyInto(p.Buffers(), [][]byte{newer})
						if _, err := p.Commit(); err != nil {
							t.Error(err)
						}
					}
				case 2:
					d.DropJob([]byte("j"), false)
				}
			}()
			d.move([]byte("j"), []byte("a"), off)
			wg.Wait()
			v, err := d.Open([]byte("j"), []byte("a"))
			var got []byte
			if err == nil {
				got = bytes.Join(v.Segments(), nil)
				v.Release()
			} else if !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			if mode == 1 && !bytes.Equal(got, newer) || mode != 1 && err == nil {
				bad++
			}
			d.Close()
		}
		if bad > 0 {
			t.Errorf("record at offset 0: %v: %d of 150 moves undid a delete, an overwrite or a job drop", first, bad)
		}
	}
}
