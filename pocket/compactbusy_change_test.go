package pocket

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
)

// fragment fills a DRAM tier with another job's 100-byte values and
// deletes all but one in 64: a put of another size then finds no page,
// and the node makes room by compacting on a goroutine, answering the put
// busy meanwhile (dataplane/dram_compact.go).
func fragment(t *testing.T, tier dataplane.Tier) {
	t.Helper()
	d := tier.(*dataplane.DRAM)
	k := 0
	for ; ; k++ {
		p, err := d.Create([]byte("other"), []byte("s"+strconv.Itoa(k)), 100, dataplane.Meta{})
		if err != nil {
			break
		}
		p.Commit()
	}
	for i := 0; i < k; i++ {
		if i%64 != 0 {
			d.Delete([]byte("other"), []byte("s"+strconv.Itoa(i)))
		}
	}
}

// TestPutInChangeWaitsOutCompaction: a put of a key whose owner changes
// (a node joins, or the key's old owner drains) goes to its live owner;
// when that node's DRAM tier must compact to take it, the node answers
// busy until it has made room, which the SDK must wait out as it does for
// a key whose owner does not change (keyPatient). The tier is 2 % used.
func TestPutInChangeWaitsOutCompaction(t *testing.T) {
	for _, join := range []bool{true, false} {
		mk := newOwnerChange(t, join, 16<<10)
		j, key, ctx := mk.j, mk.key, context.Background()
		mk.change()
		r := j.route([]byte(key), 0)
		if r.old == "" {
			t.Fatalf("key %q: its owner does not change", key)
		}
		for i, a := range mk.addrs {
			if a == r.addr {
				fragment(t, mk.tiers[i])
			}
		}
		v := randBytes(8<<10, 3)
		if err := j.Put(ctx, key, v); err != nil {
			t.Fatalf("join %v: put of 8 KiB during the change, to a live owner that must compact: %v", join, err)
		}
		if got, err := j.Get(ctx, key); err != nil || !bytes.Equal(got, v) {
			t.Fatalf("get: %d bytes, %v", len(got), err)
		}
	}
}
