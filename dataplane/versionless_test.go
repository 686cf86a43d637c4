package dataplane

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestVersionlessPutsAreToldApart: values put without a version get
// distinct versions from the node, so a delete conditional on the version
// a reader saw (what a get that deletes does between its read and its
// delete) does not remove a newer value put meanwhile. Found by a hostile
// trial: two versionless values were both version 0, and an acknowledged
// put vanished unread when a delete-after-read raced it.
func TestVersionlessPutsAreToldApart(t *testing.T) {
	n := startNode(t, 16<<20, nil)
	c := dial(t, n, "j")
	req := &wire.Request{Job: []byte("j"), Key: []byte("k")}
	if r := roundTrip(t, c, wire.OpPut, 0, req, []byte("v1")); r.Err() != nil {
		t.Fatal(r.Err())
	}
	st := roundTrip(t, c, wire.OpStat, 0, req, nil)
	v1 := meta(t, st.Meta).Version
	if r := roundTrip(t, c, wire.OpPut, 0, req, []byte("v2")); r.Err() != nil {
		t.Fatal(r.Err())
	}
	del := &wire.Request{Job: []byte("j"), Key: []byte("k"), Version: v1}
	if r := roundTrip(t, c, wire.OpDelete, wire.FlagIfVersion, del, nil); !errors.Is(r.Err(), wire.ErrConflict) {
		t.Fatalf("delete if version %#x (v1's) after v2 was put: %v; want a conflict", v1, r.Err())
	}
	if r := roundTrip(t, c, wire.OpGet, 0, req, nil); r.Err() != nil || !bytes.Equal(r.Payload, []byte("v2")) {
		t.Fatalf("get after the conditional delete: %q, %v; want v2", r.Payload, r.Err())
	}
}
