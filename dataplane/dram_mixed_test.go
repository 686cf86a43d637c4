package dataplane

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"
)

// TestMixedSizesFillTheTier: a 256 MiB tier taking values of many sizes
// (1 B-64 KiB under 1,500 keys, and 2-6 MiB objects as 1 MiB chunks under
// 25, all overwritten at random, a shuffle's pattern) must not answer "no
// space" while most of it is free. With 2 MiB slab pages (the default
// before dramPageSize) every size class in use stranded a partly
// empty page, and the first no-space came at 51-53 % of the arena used (a
// new user's 256 MiB node refused puts at half full, so the autoscaler's
// 80 % capacity test never fired).
func TestMixedSizesFillTheTier(t *testing.T) {
	d, err := NewDRAM(256<<20, DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := rand.New(rand.NewSource(1))
	put := func(k string, n int64) {
		t.Helper()
		p, err := d.Create([]byte("j"), []byte(k), n, Meta{})
		if err == nil {
			_, err = p.Commit()
		}
		if u := d.Usage(); errors.Is(err, ErrNoSpace) && u.Used < u.Capacity*6/10 {
			t.Fatalf("no space for a %d-byte value at %d of %d bytes used (%.0f%%)", n, u.Used, u.Capacity, 100*float64(u.Used)/float64(u.Capacity))
		} else if err != nil && !errors.Is(err, ErrNoSpace) {
			t.Fatal(err)
		}
	}
	for range 6000 {
		if r.Float64() < 0.8 {
			put(fmt.Sprintf("s/%d", r.Intn(1500)), 1+int64(r.Intn(64<<10)))
			continue
		}
		size, obj := int64(2<<20+r.Intn(4<<20)), r.Intn(25)
		for c := int64(0); c*(1<<20) < size; c++ {
			put(fmt.Sprintf("l/%d/%d", obj, c), min(1<<20, size-c*(1<<20)))
		}
	}
}
