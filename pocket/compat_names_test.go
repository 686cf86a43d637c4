package pocket

import (
	"context"
	"testing"
)

// TestCompatNamesDropLeadingSlashes: Pocket named a value /jobid/name, so
// "x" and "/x" were one file. The Python layer drops leading slashes; the
// Go Handle kept them, so a value put as "/p" through one layer was not
// found by the same name through the other (a new user's trial: Go
// PutBuffer "/p", Python get_buffer "/p" answered -1). Every Handle call
// now names the key without them.
func TestCompatNamesDropLeadingSlashes(t *testing.T) {
	h, id := compatJob(t, newSteadyCluster(t, 1).addr, "compat-names", 1)
	if h.PutBuffer([]byte("abc"), 3, "/p", id, false) != 0 {
		t.Fatalf("put /p: %v", h.Err())
	}
	j, err := h.job(id)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := j.Exists(ctx, "p"); !ok || err != nil {
		t.Fatalf("the value put as /p is not the key p (the Python layer's name for it): %v %v", ok, err)
	}
	if ok, _ := j.Exists(ctx, "/p"); ok {
		t.Fatal("the value put as /p is stored under /p")
	}
	buf := make([]byte, 3)
	for _, name := range []string{"p", "/p", "//p"} {
		if h.GetBuffer(name, buf, 3, id, false) != 0 || string(buf) != "abc" {
			t.Errorf("get_buffer %q: %v %q", name, h.Err(), buf)
		}
		if h.Lookup(name, id) != 0 {
			t.Errorf("lookup %q: %v", name, h.Err())
		}
	}
	if h.CreateDir("/d", id) != 0 || h.Lookup("d", id) != 0 {
		t.Errorf("create_dir /d, lookup d: %v", h.Err())
	}
	if n := h.CountFiles("/", id); n != 2 {
		t.Errorf("count_files / = %d (%v), want 2 (p and d)", n, h.Err())
	}
	for _, jobid := range []string{"/" + id, id + "/", "/" + id + "/"} {
		if h.GetBuffer("p", buf, 3, jobid, false) != 0 || string(buf) != "abc" {
			t.Errorf("get_buffer p of job %q: %v %q", jobid, h.Err(), buf)
		}
	}
	if h.Delete("/p", id) != 0 || h.Lookup("p", id) != -1 {
		t.Errorf("delete /p left p: %v", h.Err())
	}
}

// compatJob points the compat layer at the controller at addr (plain
// TCP, no credential), registers a job of name and lambdas through it and
// returns a Handle, closed when the test ends, and the job's id.
func compatJob(t *testing.T, addr, name string, lambdas int) (*Handle, string) {
	t.Helper()
	t.Setenv("POCKET_CONTROLLER", addr)
	t.Setenv("POCKET_TLS_DIR", "")
	t.Setenv("POCKET_CREDENTIAL", "")
	id, err := RegisterJob(name, lambdas, 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Connect("", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, id
}
