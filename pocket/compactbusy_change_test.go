package pocket

import (
	"bytes"
	"context"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/dataplane/dramtest"
)

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
				dramtest.Fragment(mk.tiers[i].(*dataplane.DRAM))
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
