package pocket

import (
	"context"
	"strings"
	"testing"
)

// TestRemoveAllCountSaysWhatWent: RemoveAllCount deletes a name and
// everything under name/ (not other names that start with it, which List
// of the same string lists) and counts them, a chunked object once; a name
// that holds nothing deletes nothing and counts 0, with no error (as
// RemoveAll). On the old code nothing said what a recursive delete took:
// RemoveAll returned only an error, nil for a name that held nothing.
func TestRemoveAllCountSaysWhatWent(t *testing.T) {
	addrs, _ := cluster(t, 3, 64<<20)
	j := staticJob(t, Config{ChunkSize: 1024}, addrs)
	ctx := context.Background()
	for _, k := range []string{"a", "a/b", "a/b/c", "ab"} {
		if err := j.Put(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Put(ctx, "a/big", []byte(strings.Repeat("x", 5000))); err != nil { // 5 chunks, one name
		t.Fatal(err)
	}
	if err := j.CreateDir(ctx, "a/d"); err != nil {
		t.Fatal(err)
	}
	ents, err := j.List(ctx, "a")
	if err != nil || len(ents) != 6 {
		t.Fatalf("List(a) = %v, %v; want a, a/b, a/b/c, a/big, a/d/ and ab (a string prefix)", ents, err)
	}
	res, err := j.RemoveAllCount(ctx, "a")
	if err != nil || res != (Removed{Name: true, Under: 4}) || res.Count() != 5 {
		t.Fatalf("RemoveAllCount(a) = %+v (count %d), %v; want a and 4 under a/ (a/b, a/b/c, a/big, a/d/)", res, res.Count(), err)
	}
	if ents, err := j.List(ctx, ""); err != nil || len(ents) != 1 || ents[0].Name != "ab" {
		t.Fatalf("left after RemoveAllCount(a): %v, %v; want ab only", ents, err)
	}
	if res, err := j.RemoveAllCount(ctx, "a"); err != nil || res.Count() != 0 {
		t.Errorf("RemoveAllCount(a) again = %+v, %v; want nothing deleted, no error", res, err)
	}
	if res, err := j.RemoveAllCount(ctx, ""); err != nil || res != (Removed{Under: 1}) {
		t.Errorf("RemoveAllCount of the whole job = %+v, %v; want ab, 1 name", res, err)
	}
}
