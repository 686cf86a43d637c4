package pocket

import (
	"context"
	"errors"
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
	// A name that is empty or only slashes names the whole job: refused,
	// nothing deleted (it had emptied the job: a new user's trial, an
	// empty prefix variable). DeleteAll deletes every value.
	for _, name := range []string{"", "/", "//"} {
		if res, err := j.RemoveAllCount(ctx, name); !errors.Is(err, ErrBadName) || res.Count() != 0 ||
			!strings.Contains(err.Error(), "names the whole job; DeleteAll deletes every value") {
			t.Errorf("RemoveAllCount(%q) = %+v, %v; want ErrBadName naming DeleteAll", name, res, err)
		}
		if err := j.RemoveAll(ctx, name); !errors.Is(err, ErrBadName) {
			t.Errorf("RemoveAll(%q) = %v; want ErrBadName", name, err)
		}
	}
	if ents, err := j.List(ctx, ""); err != nil || len(ents) != 1 {
		t.Fatalf("left after the refused whole-job deletes: %v, %v; want ab", ents, err)
	}
	if res, err := j.DeleteAll(ctx); err != nil || res != (Removed{Under: 1}) {
		t.Errorf("DeleteAll = %+v, %v; want ab, 1 name", res, err)
	}
}

// TestCompatDeleteRefusesTheWholeJob: Pocket's delete of a name that is
// empty or only slashes fails (-1, ErrBadName) and deletes nothing; it
// had emptied the job.
func TestCompatDeleteRefusesTheWholeJob(t *testing.T) {
	h, id := compatJob(t, newSteadyCluster(t, 1).addr, "compat-rm", 1)
	if h.PutBuffer([]byte("kept"), 4, "k", id, false) != 0 {
		t.Fatalf("put: %v", h.Err())
	}
	for _, name := range []string{"", "/"} {
		if rc := h.Delete(name, id); rc != -1 || !errors.Is(h.Err(), ErrBadName) {
			t.Errorf("Delete(%q) = %d, %v; want -1, ErrBadName", name, rc, h.Err())
		}
	}
	if h.Lookup("k", id) != 0 {
		t.Errorf("k is gone after the refused deletes: %v", h.Err())
	}
}
