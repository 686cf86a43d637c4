package tiertest

import (
	"bytes"
	"testing"

	"github.com/pocketstore/pocket/dataplane"
)

// testVersions: a put's version and object size come back from Stat,
// List and Open, and Commit and Delete return the Info of the value they
// replaced or removed (the zero Info when there was none).
func testVersions(t *testing.T, newTier NewTier) {
	tier := newTier(t, bigCapacity)
	man := dataplane.Meta{Flags: dataplane.Manifest | dataplane.Persist, Version: 7, ObjectSize: 5 << 30}
	old, err := putMeta(tier, "j", "k", []byte("manifest"), man)
	if err != nil || old != (dataplane.Info{}) {
		t.Fatalf("first put: replaced %+v, %v", old, err)
	}
	want := dataplane.Info{Size: 8, Flags: dataplane.Manifest | dataplane.Persist, Version: 7, ObjectSize: 5 << 30}
	if info, err := tier.Stat([]byte("j"), []byte("k")); err != nil || info != want {
		t.Fatalf("Stat %+v, %v; want %+v", info, err, want)
	}
	var listed []dataplane.Info
	if err := tier.List([]byte("j"), nil, nil, func(_ []byte, info dataplane.Info) bool {
		listed = append(listed, info)
		return true
	}); err != nil || len(listed) != 1 || listed[0] != want {
		t.Fatalf("List %+v, %v", listed, err)
	}
	v, err := tier.Open([]byte("j"), []byte("k"))
	if err != nil || v.Version() != 7 || v.Flags() != want.Flags {
		t.Fatalf("Open: %v", err)
	}
	v.Release()
	replaced, err := putMeta(tier, "j", "k", bytes.Repeat([]byte{1}, 100), dataplane.Meta{Version: 9})
	if err != nil || replaced != want {
		t.Fatalf("overwrite: replaced %+v, %v; want %+v", replaced, err, want)
	}
	plain := dataplane.Info{Size: 100, Version: 9, ObjectSize: 100}
	if info, err := tier.Delete([]byte("j"), []byte("k")); err != nil || info != plain {
		t.Fatalf("Delete returned %+v, %v; want %+v", info, err, plain)
	}
}

// testIfAbsent: a conditional put stores nothing when the key holds a
// value, and frees what it reserved.
func testIfAbsent(t *testing.T, newTier NewTier) {
	tier := newTier(t, bigCapacity)
	cond := dataplane.Meta{Flags: dataplane.IfAbsent, Version: 2}
	if _, err := putMeta(tier, "j", "k", []byte("first"), cond); err != nil {
		t.Fatalf("put if absent on an empty key: %v", err)
	}
	used := tier.Usage().Used
	_, err := putMeta(tier, "j", "k", bytes.Repeat([]byte{2}, 1<<20), cond)
	wantErr(t, "put if absent over a value", err, dataplane.ErrExists)
	if got := readAll(t, tier, "j", "k"); string(got) != "first" {
		t.Fatalf("value after a refused put: %q", got)
	}
	if u := tier.Usage().Used; u != used {
		t.Fatalf("a refused put left %d bytes used, had %d", u, used)
	}
	if info, _ := tier.Stat([]byte("j"), []byte("k")); info.Flags&dataplane.IfAbsent != 0 {
		t.Fatalf("IfAbsent was stored: %+v", info)
	}
}

// testDeleteVersion: a conditional delete removes only the version named.
func testDeleteVersion(t *testing.T, newTier NewTier) {
	tier := newTier(t, bigCapacity)
	if _, err := putMeta(tier, "j", "k", []byte("v5"), dataplane.Meta{Version: 5}); err != nil {
		t.Fatal(err)
	}
	_, err := tier.DeleteVersion([]byte("j"), []byte("k"), 4)
	wantErr(t, "delete of another version", err, dataplane.ErrConflict)
	if got := readAll(t, tier, "j", "k"); string(got) != "v5" {
		t.Fatalf("value after a refused delete: %q", got)
	}
	if info, err := tier.DeleteVersion([]byte("j"), []byte("k"), 5); err != nil || info.Version != 5 {
		t.Fatalf("delete of its version: %+v, %v", info, err)
	}
	_, err = tier.DeleteVersion([]byte("j"), []byte("k"), 5)
	wantErr(t, "second delete", err, dataplane.ErrNotFound)
}

// readAll is the value under (job, key), failing the test if there is none.
func readAll(t *testing.T, tier dataplane.Tier, job, key string) []byte {
	t.Helper()
	b, _, err := get(tier, job, key)
	if err != nil {
		t.Fatalf("get %s/%s: %v", job, key, err)
	}
	return b
}
