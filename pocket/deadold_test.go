package pocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// stop closes the proxy's listener and every connection it carries: its
// node cannot be reached, and still holds what it held.
func (p *holdProxy) stop() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.open {
		c.Close()
	}
}

// TestOldOwnerNotAskedIsNotAbsence (hostile trial): while a key's owner
// changes (a node joins the map, or the key's owner drains), its value is
// at its old owner only. When the old owner cannot be reached, a get, a
// stat, a get that deletes and a delete must not answer "not found": the
// value is there, and reads back once the node answers again; when the
// map marks it dead, they answer that its keys are unavailable, sent
// nowhere, and a put still goes to the live owner and reads back. Before,
// every one answered "not found" (an unreachable old owner was taken for
// one without the key, a dead one was skipped), and the deletes deleted
// nothing at it. Static nodes behind proxies and a map set by hand.
func TestOldOwnerNotAskedIsNotAbsence(t *testing.T) {
	for _, join := range []bool{true, false} {
		t.Run(fmt.Sprintf("join=%v", join), func(t *testing.T) {
			nodes, tiers := histCluster(t, 3, 4<<20, histLease)
			var addrs []string
			proxies := map[string]*holdProxy{}
			for _, a := range nodes {
				p := newHoldProxy(t, a)
				addrs = append(addrs, p.addr)
				proxies[p.addr] = p
			}
			before := addrs
			if join {
				before = addrs[:2]
			}
			j := staticJob(t, Config{}, before)
			whole := placement.NewSet(placementNodes([]Node{{Addr: addrs[0], Weight: 1}, {Addr: addrs[1], Weight: 1}, {Addr: addrs[2], Weight: 1}}))
			var key string
			for i := 0; key == ""; i++ {
				if k := fmt.Sprintf("k-%d", i); whole.Node(whole.Pick([]byte(k), 0)).ID == addrs[2] {
					key = k
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			v1 := randBytes(100, 1)
			if err := j.Put(ctx, key, v1); err != nil {
				t.Fatal(err)
			}
			m := j.Map()
			m.Nodes = []Node{{Addr: addrs[0], Weight: 1}, {Addr: addrs[1], Weight: 1}, {Addr: addrs[2], Weight: 1}}
			if join {
				m.Joining = map[string]bool{addrs[2]: true}
			} else {
				m.Draining = map[string]bool{addrs[2]: true}
			}
			j.setMap(m)
			old := j.route([]byte(key), 0).old
			if old == "" {
				t.Fatalf("key %q: its owner does not change", key)
			}
			oldTier := tiers[indexOf(addrs, old)]
			proxies[old].stop()

			reads := map[string]func() error{
				"get":            func() error { _, err := j.Get(ctx, key); return err },
				"stat":           func() error { _, err := j.Stat(ctx, key); return err },
				"get and delete": func() error { _, err := j.Get(ctx, key, DeleteAfterRead()); return err },
				"delete":         func() error { return j.Delete(ctx, key) },
			}
			for name, call := range reads {
				if err := call(); err == nil || errors.Is(err, wire.ErrNotFound) {
					t.Errorf("%s with the old owner unreachable: %v; want its failure, not absence", name, err)
				}
			}
			if v, err := oldTier.Open([]byte(j.ID()), []byte(key)); err != nil {
				t.Fatalf("the old owner lost the value: %v", err)
			} else {
				v.Release()
			}

			m.Dead = map[string]bool{old: true}
			j.setMap(m)
			for name, call := range reads {
				if err := call(); !errors.Is(err, wire.ErrUnavailable) || !strings.Contains(err.Error(), "is dead") {
					t.Errorf("%s with the old owner dead: %v; want its keys unavailable", name, err)
				}
			}
			v2 := randBytes(100, 2)
			if err := j.Put(ctx, key, v2); err != nil {
				t.Fatalf("put with the old owner dead: %v", err)
			}
			if got, err := j.Get(ctx, key); err != nil || !bytes.Equal(got, v2) {
				t.Fatalf("get after the put: %d bytes (the new value: %v), %v", len(got), bytes.Equal(got, v2), err)
			}
		})
	}
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}
