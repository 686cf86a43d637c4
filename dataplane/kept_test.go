package dataplane

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// keptKeysOf returns n keys of each kind over keep: ones its first node
// wins (kept) and ones it does not (moving).
func keptKeysOf(keep []wire.MapNode, n int) (kept, moving []string) {
	ns := make([]placement.Node, len(keep))
	for i, k := range keep {
		ns[i] = placement.Node{ID: k.Addr, Weight: k.Weight}
	}
	set := placement.NewSet(ns)
	for i := 0; len(kept) < n || len(moving) < n; i++ {
		k := fmt.Sprintf("key-%d", i)
		if set.Pick([]byte(k), 0) == 0 {
			kept = append(kept, k)
		} else {
			moving = append(moving, k)
		}
	}
	return kept[:n], moving[:n]
}

// TestKeptKeysServeTheMapBefore: a node whose entry brings the map before
// (wire.JobEpoch.KeepEpoch, Keep) takes that map's requests for one key
// it wins over Keep, and refuses as before the keys it does not win,
// requests of many keys (listings, usage, prefix deletes), older epochs,
// and everything once its entry moves on without them. The old node
// refused every request at the older epoch: while the controller held a
// map back for a silent node, a job's clients could reach no key at all.
func TestKeptKeysServeTheMapBefore(t *testing.T) {
	n := tokenNode(t)
	tok := jobTok("j-1", 90)
	keep := []wire.MapNode{{Addr: "self:1", Weight: 1}, {Addr: "a:1", Weight: 1}, {Addr: "b:1", Weight: 1}}
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "j-1", Gen: 90, Epoch: 5, KeepEpoch: 4, Keep: keep}))
	kept, moving := keptKeysOf(keep, 8)
	op := func(op wire.Op, key string, epoch uint64, flags uint16) error {
		return jobOp(t, n, op, "j-1", key, tok, epoch, flags)
	}
	stale := func(what string, err error) {
		t.Helper()
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 5 {
			t.Fatalf("%s: %v, want stale naming epoch 5", what, err)
		}
	}
	for _, k := range kept {
		for _, o := range []struct {
			op    wire.Op
			flags uint16
		}{{wire.OpPut, 0}, {wire.OpGet, 0}, {wire.OpStat, 0}, {wire.OpGet, wire.FlagDeleteAfterRead}, {wire.OpPut, 0}, {wire.OpDelete, 0}} {
			if err := op(o.op, k, 4, o.flags); err != nil {
				t.Fatalf("%v (flags %#x) of kept key %s at the map before: %v", o.op, o.flags, k, err)
			}
		}
		stale("put of a kept key two maps back", op(wire.OpPut, k, 3, 0))
	}
	for _, k := range moving {
		stale("put of a moving key at the map before", op(wire.OpPut, k, 4, 0))
		stale("get of a moving key at the map before", op(wire.OpGet, k, 4, 0))
		stale("delete of a moving key at the map before", op(wire.OpDelete, k, 4, 0))
	}
	// A version's drop goes to every node of the writer's map; one that
	// moved on refuses it, so the SDK fetches the newer map and reaches
	// the nodes a move may have taken chunks to.
	stale("confirm at the map before", op(wire.OpConfirm, kept[0], 4, 0))
	stale("drop-version at the map before", op(wire.OpDropVersion, kept[0], 4, 0))
	stale("listing at the map before", op(wire.OpList, "", 4, 0))
	stale("usage at the map before", op(wire.OpUsage, "", 4, 0))
	stale("prefix delete at the map before", op(wire.OpDelete, kept[0], 4, wire.FlagPrefix))
	// A chunk is placed by its chunk number, as the SDKs place it.
	for i := 1; ; i++ {
		ck := string(wire.AppendChunkKey(nil, []byte("obj"), 7, i))
		ns := []placement.Node{{ID: "self:1", Weight: 1}, {ID: "a:1", Weight: 1}, {ID: "b:1", Weight: 1}}
		if placement.Pick(ns, []byte(ck), uint32(i)) == 0 && placement.Pick(ns, []byte(ck), 0) != 0 {
			if err := jobOp(t, n, wire.OpGet, "j-1", ck, tok, 4, 0); !errors.Is(err, wire.ErrNotFound) {
				t.Fatalf("get of kept chunk %d at the map before: %v, want not found", i, err)
			}
			break
		}
	}
	if err := op(wire.OpPut, kept[0], 5, 0); err != nil {
		t.Fatalf("put at the entry's epoch: %v", err)
	}
	// The same epoch again without them (the map was handed out since):
	// the older map's clients keep what they had.
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 101, Jobs: []wire.JobEpoch{{Job: "j-1", Gen: 90, Epoch: 5}}})
	if err := op(wire.OpGet, kept[0], 4, 0); err != nil {
		t.Fatalf("get of a kept key after an entry at the same epoch without keep: %v", err)
	}
	// A newer epoch without them: nothing of the older maps.
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 102, Jobs: []wire.JobEpoch{{Job: "j-1", Gen: 90, Epoch: 6}}})
	var we *wire.Error
	for _, epoch := range []uint64{4, 5} {
		if err := op(wire.OpGet, kept[0], epoch, 0); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 6 {
			t.Fatalf("get of a kept key at %d after the entry moved to 6: %v, want stale", epoch, err)
		}
	}
	// Out of the map: its own keys are no longer its own.
	n.ApplyAck(&wire.NodeAck{Known: true, Rev: 103, Jobs: []wire.JobEpoch{{Job: "j-1", Gen: 90, Epoch: 7, Out: true, KeepEpoch: 6, Keep: keep}}})
	if err := op(wire.OpGet, kept[0], 6, 0); !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch {
		t.Fatalf("get at the map before on a node out of the map: %v, want stale", err)
	}
}

// TestKeptKeysLeaveManifestsAlone: a request of the map before that would
// write a manifest at a kept key, or replace or remove one, is refused as
// stale: the SDK drops a replaced version's chunks by a request every node
// that moved on refuses at that epoch, and with the newer map held back it
// gave up, leaving the chunks for good (a review: 24 chunks of 11 objects).
// Reads of the manifest, and writes of plain values, pass.
func TestKeptKeysLeaveManifestsAlone(t *testing.T) {
	n := tokenNode(t)
	tok := jobTok("j-1", 90)
	keep := []wire.MapNode{{Addr: "self:1", Weight: 1}, {Addr: "a:1", Weight: 1}}
	n.ApplyAck(syncAck(100, wire.JobEpoch{Job: "j-1", Gen: 90, Epoch: 5, KeepEpoch: 4, Keep: keep}))
	kept, _ := keptKeysOf(keep, 2)
	obj, plain := kept[0], kept[1]
	c := dial(t, n, "j-1")
	send := func(op wire.Op, flags uint16, key string, epoch, ver uint64, payload []byte) error {
		r := roundTrip(t, c, op, flags, &wire.Request{Job: []byte("j-1"), Key: []byte(key), Token: tok, Epoch: epoch,
			Version: ver, ObjectSize: 10}, payload)
		return r.Err()
	}
	man := func(ver uint64) []byte {
		return wire.AppendManifest(nil, wire.Manifest{Version: ver, Size: 10, Chunk: 10, Count: 1})
	}
	if err := send(wire.OpPut, wire.FlagManifest, obj, 5, 77, man(77)); err != nil {
		t.Fatalf("manifest put at the entry's epoch: %v", err)
	}
	stale := func(what string, err error) {
		t.Helper()
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeStaleEpoch || we.Epoch != 5 {
			t.Fatalf("%s at the map before: %v, want stale naming epoch 5", what, err)
		}
	}
	stale("put over a manifest", send(wire.OpPut, 0, obj, 4, 0, []byte("v")))
	stale("delete of a manifest", send(wire.OpDelete, 0, obj, 4, 0, nil))
	stale("delete-after-read of a manifest", send(wire.OpGet, wire.FlagDeleteAfterRead, obj, 4, 0, nil))
	stale("manifest put", send(wire.OpPut, wire.FlagManifest, plain, 4, 78, man(78)))
	for _, op := range []wire.Op{wire.OpGet, wire.OpStat} {
		if err := send(op, 0, obj, 4, 0, nil); err != nil {
			t.Fatalf("%v of a manifest at the map before: %v", op, err)
		}
	}
	if err := send(wire.OpPut, 0, plain, 4, 0, []byte("v")); err != nil {
		t.Fatalf("put of a plain value at the map before: %v", err)
	}
	if err := send(wire.OpGet, wire.FlagDeleteAfterRead, plain, 4, 0, nil); err != nil {
		t.Fatalf("delete-after-read of a plain value at the map before: %v", err)
	}
	if err := send(wire.OpDelete, 0, obj, 5, 0, nil); err != nil {
		t.Fatalf("delete of the manifest at the entry's epoch: %v", err)
	}
}
