package dataplane

import (
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestListDirCursorFF: keys with a 0xFF byte right after a directory
// prefix; paging a delimited listing one entry a page with the SDK's
// cursor for a directory (the directory and 0xFF) must not list the
// directory twice.
func TestListDirCursorFF(t *testing.T) {
	n := startNode(t, 64<<20, nil)
	c := dial(t, n, "j")
	for _, k := range []string{"a/x", "a/\xffb", "b"} {
		if r := roundTrip(t, c, wire.OpPut, 0, &wire.Request{Job: []byte("j"), Key: []byte(k)}, []byte("v")); r.Code != 0 {
			t.Fatal(r.Err())
		}
	}
	var got []string
	var after []byte
	for range 10 {
		r := roundTrip(t, c, wire.OpList, 0, &wire.Request{Job: []byte("j"), Limit: 1, Delimiter: '/', After: after}, nil)
		var resp wire.Response
		if err := wire.DecodeResponse(r.Meta, &resp); err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.Entries {
			got = append(got, string(e.Key))
			after = append([]byte(nil), e.Key...)
			if e.Dir {
				after = append(after, 0xFF)
			}
		}
		if !resp.More {
			break
		}
	}
	t.Logf("entries: %q", got)
	if len(got) != 2 {
		t.Fatalf("listing of a/x, a/\\xffb, b with delimiter /: %q, want [a/ b]", got)
	}
}
