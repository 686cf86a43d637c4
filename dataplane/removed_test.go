package dataplane

import (
	"slices"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestPrefixDeleteAnswersUndroppedVersions: a prefix delete names the
// manifest versions it removed, and every later prefix delete of the job
// names them again until a drop of the version reaches the node: a client
// whose reply was lost (the node executed the delete) learns them from its
// retry, or from any later prefix delete, and drops their chunks. Before,
// the retry answered nothing and the chunks stayed until the job ended.
func TestPrefixDeleteAnswersUndroppedVersions(t *testing.T) {
	n := startNode(t, 16<<20, nil)
	c := dial(t, n, "j")
	for i, ver := range []uint64{0xa, 0xb} {
		key := []string{"d/x", "d/y"}[i]
		if r := roundTrip(t, c, wire.OpPut, wire.FlagChunk|wire.FlagLease, chunkReq(key, ver, 1), []byte("chunk")); r.Err() != nil {
			t.Fatal(r.Err())
		}
		if r := roundTrip(t, c, wire.OpConfirm, 0, &wire.Request{Job: []byte("j"), Version: ver}, nil); r.Err() != nil {
			t.Fatal(r.Err())
		}
		man := &wire.Request{Job: []byte("j"), Key: []byte(key), Version: ver, ObjectSize: 5}
		if r := roundTrip(t, c, wire.OpPut, wire.FlagManifest, man, wire.AppendManifest(nil, wire.Manifest{Version: ver, Size: 5, Chunk: 5, Count: 1})); r.Err() != nil {
			t.Fatal(r.Err())
		}
	}
	del := func(prefix string) []uint64 {
		t.Helper()
		r := roundTrip(t, c, wire.OpDelete, wire.FlagPrefix, &wire.Request{Job: []byte("j"), Key: []byte(prefix)}, nil)
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
		vs := meta(t, r.Meta).Versions
		slices.Sort(vs)
		return vs
	}
	if vs := del("d/"); !slices.Equal(vs, []uint64{0xa, 0xb}) {
		t.Fatalf("prefix delete: versions %x, want a, b", vs)
	}
	// The reply is taken for lost: the same delete again, and one of a
	// prefix that covers it (the whole job's), name both versions again.
	// Another prefix's delete does not while their remover may still be
	// dropping them (keptAlone): every concurrent RemoveAll of the job had
	// dropped them again on every node (a review: 25,344 drops instead of
	// 1,536 for 32 clients of 16 objects); after it, it does.
	if vs := del("d/"); !slices.Equal(vs, []uint64{0xa, 0xb}) {
		t.Fatalf("prefix delete sent again: versions %x, want a, b (not dropped yet)", vs)
	}
	if vs := del(""); !slices.Equal(vs, []uint64{0xa, 0xb}) {
		t.Fatalf("the whole job's prefix delete: versions %x, want a, b (not dropped yet)", vs)
	}
	if vs := del("other/"); len(vs) != 0 {
		t.Fatalf("another prefix's delete at once: versions %x, want none", vs)
	}
	n.vers.mu.Lock()
	n.vers.keptAlone = 0
	n.vers.mu.Unlock()
	if vs := del("other/"); !slices.Equal(vs, []uint64{0xa, 0xb}) {
		t.Fatalf("another prefix's delete after keptAlone: versions %x, want a, b (not dropped yet)", vs)
	}
	r := roundTrip(t, c, wire.OpDropVersion, 0, &wire.Request{Job: []byte("j"), Version: 0xa}, nil)
	if m := meta(t, r.Meta); r.Err() != nil || m.Count != 1 {
		t.Fatalf("drop of a: %+v, %v", m, r.Err())
	}
	if vs := del("d/"); !slices.Equal(vs, []uint64{0xb}) {
		t.Fatalf("prefix delete after a's drop: versions %x, want b", vs)
	}
	n.DropJob([]byte("j"), false)
	if vs := del("d/"); len(vs) != 0 {
		t.Fatalf("prefix delete after the job's drop: versions %x, want none", vs)
	}
}
