package pocket

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestRetiredJobListsItsPersistedValues: after deregistration a job on
// several nodes lists, counts and recursively deletes its persisted
// values, through its own handle and through its credential, though a
// node that kept none of them answers revoked; another handle of the job
// (its token revoked under it) still reports the revocation. Before, the
// retired job's listing failed with the revoked node's answer (a new user's
// pocket ls with POCKET_CREDENTIAL, 3 of 3 runs).
func TestRetiredJobListsItsPersistedValues(t *testing.T) {
	c := newTestCluster(t, 3, 64<<20)
	ctx := context.Background()
	s := c.store()
	j, err := s.RegisterJob(ctx, "retire", Hints{Lambdas: 40})
	if err != nil || len(j.Map().Nodes) != 3 {
		t.Fatalf("job on %d node(s): %v", len(j.Map().Nodes), err)
	}
	if err := j.Put(ctx, "keep/one", []byte("stays"), Persist()); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"keep/gone", "other"} {
		if err := j.Put(ctx, k, []byte("goes")); err != nil {
			t.Fatal(err)
		}
	}
	live := openJob(t, c.addr, j)
	cred := j.Credential()
	if err := j.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := c.store().OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	for name, jb := range map[string]*Job{"job": j, "credential": left} {
		ents, err := jb.List(ctx, "")
		if err != nil || !slices.ContainsFunc(ents, func(e Entry) bool { return e.Name == "keep/one" }) || len(ents) != 1 {
			t.Fatalf("%s: listing of the retired job: %+v, %v; want keep/one alone", name, ents, err)
		}
		if n, err := jb.CountFiles(ctx, "keep"); err != nil || n != 1 {
			t.Fatalf("%s: count of keep/: %d, %v; want 1", name, n, err)
		}
	}
	if _, err := live.List(ctx, ""); !errors.Is(err, wire.ErrRevoked) {
		t.Fatalf("listing through a live handle of the deregistered job: %v, want revoked", err)
	}
	if err := left.RemoveAll(ctx, "keep"); err != nil {
		t.Fatalf("recursive delete of the persisted values: %v", err)
	}
	if ents, err := j.List(ctx, ""); err != nil || len(ents) != 0 {
		t.Fatalf("after the recursive delete: %+v, %v", ents, err)
	}
}

// TestCompatDeletesPersistedAfterDeregister: Pocket's calls go on reading
// and deleting a job's persisted values after DeregisterJob through a
// handle that opened the job before (pocket.delete is recursive, so it
// asks every node, and those that kept none of the values answer
// revoked). Before, the handle's job was a live one and the delete failed
// with that answer (-1).
func TestCompatDeletesPersistedAfterDeregister(t *testing.T) {
	c := newTestCluster(t, 3, 64<<20)
	h, id := compatJob(t, c.addr, "compat-persist", 40)
	if h.PutBuffer([]byte("kept"), 4, "out", id, true) != 0 || h.PutBuffer([]byte("gone"), 4, "tmp", id, false) != 0 {
		t.Fatalf("puts: %v", h.Err())
	}
	if DeregisterJob(id) != 0 {
		t.Fatal("deregister failed")
	}
	buf := make([]byte, 4)
	if h.GetBuffer("out", buf, 4, id, false) != 0 || string(buf) != "kept" {
		t.Fatalf("persisted value after deregister: %q, %v", buf, h.Err())
	}
	if h.Delete("out", id) != 0 {
		t.Fatalf("delete of the persisted value after deregister: %v", h.Err())
	}
	if h.Lookup("out", id) == 0 {
		t.Fatal("the deleted value still looks present")
	}
}
