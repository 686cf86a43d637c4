package pocket

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestPutInChangeLeavesNoOlderValue: a put of a key whose owner changes
// (a node joins the map, or the key's owner drains) deletes what the old
// owner holds of the key once the new owner has stored it, chunks of a
// replaced object included. So if the new owner is then lost, the key
// answers "lost", not the value the acknowledged put replaced. Found by a
// hostile trial: a joining node killed during a grow brought back 566 to
// 5,600 older values of 150,000 keys (and 1,645 of 200,000 across a
// shrink), for good. Static nodes and a map set by hand: no mover,
// deterministic.
func TestPutInChangeLeavesNoOlderValue(t *testing.T) {
	overwriteInChange(t, 16<<10, func(t *testing.T, mk *ownerChange, v1, v2 []byte) {
		j, key, ctx := mk.j, mk.key, context.Background()
		r := j.route([]byte(key), 0)
		for i, a := range mk.addrs {
			if a != r.old {
				continue
			}
			if _, err := mk.tiers[i].Stat([]byte(j.ID()), []byte(key)); !errors.Is(err, wire.ErrNotFound) {
				t.Fatalf("the old owner %s still holds the key after the put at %s: %v", a, r.addr, err)
			}
		}
		if got, err := j.Get(ctx, key); err != nil || !bytes.Equal(got, v2) {
			t.Fatalf("get after the put: %d bytes (the new value: %v), %v", len(got), bytes.Equal(got, v2), err)
		}
		if !mk.join {
			return
		}
		// The joining node is lost: the map goes back to the other two
		// and lists it as lost.
		m := j.Map()
		m.Nodes = []Node{{Addr: mk.addrs[0], Weight: 1}, {Addr: mk.addrs[1], Weight: 1}}
		m.Joining = nil
		m.Lost = []LostNode{{Addr: mk.addrs[2], Weight: 1, Epoch: m.Epoch}}
		j.setMap(m)
		got, err := j.Get(ctx, key)
		if !errors.Is(err, ErrLost) {
			t.Fatalf("get once the new owner was lost: %d bytes (the older value: %v), %v; want ErrLost",
				len(got), bytes.Equal(got, v1), err)
		}
	})
}
