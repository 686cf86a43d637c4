package pocket

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// TestLostReceiverWhileNodeDrains: node D drains out of a job's map (a
// shrink), so every write of a key D owns under the whole map goes to
// the key's live owner, and D's mover takes D's values there. A live
// owner R is lost meanwhile (it restarted empty: controller/dead.go
// restartedLocked), while D still drains: the map lists R lost and D
// still draining. A key whose value went to R (put during the drain,
// its older copy at D dropped: dropOld) is gone, and every read or
// delete of it must answer ErrLost. On the old code the placement that
// finds lost nodes (lostSets) held D, which owns the key under the whole
// map, in R's place: Stat, Get, Get with DeleteAfterRead and Delete
// answered "not found" until D left the map (a hostile trial: a node
// restarted while the job shrank, and stat, delete and delete-after-read
// answered not found for acknowledged values). A value still at D reads
// as before. Static nodes, maps set by hand: deterministic.
func TestLostReceiverWhileNodeDrains(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := dropMoveCluster(t, 3)
	d, r, x := ns[0].addr, ns[1].addr, ns[2].addr
	j := staticJob(t, Config{}, []string{d, r, x})
	all := placement.NewSet([]placement.Node{{ID: d, Weight: 1}, {ID: r, Weight: 1}, {ID: x, Weight: 1}})
	live := placement.NewSet([]placement.Node{{ID: r, Weight: 1}, {ID: x, Weight: 1}})
	owner := func(s *placement.Set, k string) string { return s.Node(s.Pick([]byte(k), 0)).ID }

	// Keys D owns under the whole map: onR goes to R once D drains,
	// atD goes to X and is put before the drain (so it is still at D).
	var onR []string
	atD := ""
	for i := 0; len(onR) < 4 || atD == ""; i++ {
		k := fmt.Sprintf("key-%d", i)
		switch {
		case owner(all, k) != d:
		case owner(live, k) == r && len(onR) < 4:
			onR = append(onR, k)
		case owner(live, k) == x && atD == "":
			atD = k
		}
	}
	if err := j.Put(ctx, atD, []byte("put before the shrink, at D")); err != nil {
		t.Fatal(err)
	}

	// Epoch 2: D drains. Puts of D's keys go to their live owner.
	m2 := Map{Job: j.ID(), Tier: TierDRAM, Epoch: 2,
		Nodes:    []Node{{Addr: d, Weight: 1. / 3}, {Addr: r, Weight: 1. / 3}, {Addr: x, Weight: 1. / 3}},
		Draining: map[string]bool{d: true}}
	j.setMap(m2)
	for _, k := range onR {
		if err := j.Put(ctx, k, []byte("put while D drains")); err != nil {
			t.Fatal(err)
		}
		if !holds(ns[1].faulty, j.ID(), []byte(k)) || holds(ns[0].faulty, j.ID(), []byte(k)) {
			t.Fatalf("%s, put while D drains, is not at R alone", k)
		}
	}

	// Epoch 3: R is lost (restarted empty) while D still drains.
	ns[1].node.Close()
	m3 := Map{Job: j.ID(), Tier: TierDRAM, Epoch: 3,
		Nodes:    []Node{{Addr: d, Weight: .5}, {Addr: x, Weight: .5}},
		Draining: map[string]bool{d: true},
		Lost:     []LostNode{{Addr: r, Weight: .5, Epoch: 3}}}
	j.setMap(m3)

	if got, err := j.Get(ctx, atD); err != nil || string(got) != "put before the shrink, at D" {
		t.Fatalf("get %s, still at D: %q, %v", atD, got, err)
	}
	if ls := j.LostOwners(atD); len(ls) != 0 {
		// Not an error of the answers (the value reads), but say so.
		t.Logf("%s, still at D: lost owners %+v", atD, ls)
	}
	ops := []struct {
		name string
		do   func(k string) error
	}{
		{"stat", func(k string) error { _, err := j.Stat(ctx, k); return err }},
		{"get", func(k string) error { _, err := j.Get(ctx, k); return err }},
		{"get with delete-after-read", func(k string) error { _, err := j.Get(ctx, k, DeleteAfterRead()); return err }},
		{"delete", func(k string) error { return j.Delete(ctx, k) }},
	}
	for i, k := range onR {
		op := ops[i%len(ops)]
		err := op.do(k)
		if !errors.Is(err, wire.ErrLost) {
			t.Errorf("%s %s (acknowledged at R, R lost while D drains): %v; want lost (lost owners %+v)",
				op.name, k, err, j.LostOwners(k))
		}
	}
}

// TestLostSetsLeaveOutDrainingNodes: the same over many keys, on the map
// alone. While D drains and R is lost, every key whose live owner was R
// (where its writes went) answers lost on "not found"; a key X owned
// under the whole map, and a key that went from D to X, answer "not
// found" (X is live; what D held is at D or moved to X). The answers are
// those the map gives once D has left (D not in the map).
func TestLostSetsLeaveOutDrainingNodes(t *testing.T) {
	d, r, x := "10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"
	during := Map{Job: "j", Epoch: 3, Nodes: []Node{{Addr: d, Weight: .5}, {Addr: x, Weight: .5}},
		Draining: map[string]bool{d: true}, Lost: []LostNode{{Addr: r, Weight: .5, Epoch: 3}}}
	after := Map{Job: "j", Epoch: 4, Nodes: []Node{{Addr: x, Weight: 1}},
		Lost: []LostNode{{Addr: r, Weight: 1, Epoch: 3}}}
	jd, ja := &Job{}, &Job{}
	jd.setMap(during)
	ja.setMap(after)
	all := placement.NewSet([]placement.Node{{ID: d, Weight: 1}, {ID: r, Weight: 1}, {ID: x, Weight: 1}})
	live := placement.NewSet([]placement.Node{{ID: r, Weight: 1}, {ID: x, Weight: 1}})
	moved := 0
	for i := 0; i < 3000; i++ {
		k := []byte(fmt.Sprintf("key-%d", i))
		wantLost := live.Node(live.Pick(k, 0)).ID == r
		if wantLost && all.Node(all.Pick(k, 0)).ID == d {
			moved++
		}
		err := jd.lostErr(k, 0, wire.ErrNotFound)
		if errors.Is(err, wire.ErrLost) != wantLost {
			t.Fatalf("%s (owner %s, live owner %s) while D drains: %v; want lost %v",
				k, all.Node(all.Pick(k, 0)).ID, live.Node(live.Pick(k, 0)).ID, err, wantLost)
		}
		if errors.Is(ja.lostErr(k, 0, wire.ErrNotFound), wire.ErrLost) != wantLost {
			t.Fatalf("%s once D has left: lost %v, want %v", k, !wantLost, wantLost)
		}
	}
	if moved < 300 {
		t.Fatalf("%d keys went from D to R: the test proves nothing", moved)
	}
}
