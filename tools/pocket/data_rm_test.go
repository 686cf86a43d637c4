package main

import (
	"encoding/hex"
	"strings"
	"testing"
)

// TestRmSaysWhatItDeleted: pocket rm prints what its recursive delete
// took (KEY and the keys under KEY/, not other keys starting with KEY),
// and exits 1 saying nothing was deleted when KEY held nothing, as rm of a
// missing file and the SDK's Delete (not found). On the old code rm
// printed nothing and exited 0 for a missing key.
func TestRmSaysWhatItDeleted(t *testing.T) {
	ctx, r := newDataJob(t, "rmcount")
	for _, k := range []string{"a", "a/b", "a/b/c", "ab"} {
		if err := r.j.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	env := cleanEnv("POCKET_CONTROLLER="+r.addr, "POCKET_TOKEN="+hex.EncodeToString(r.m.Token))
	job := r.m.Job
	out, errOut, code := pocketRun(t, r.bin, env, "", "rm", "--insecure", job, "a")
	if code != 0 || out != "deleted 3 key(s): a and 2 under a/\n" || errOut != "" {
		t.Errorf("rm a: exit %d, stdout %q, stderr %q; want exit 0, \"deleted 3 key(s): a and 2 under a/\"", code, out, errOut)
	}
	out, errOut, code = pocketRun(t, r.bin, env, "", "rm", "--insecure", job, "a")
	if code != 1 || out != "" || !strings.Contains(errOut, "nothing deleted: job "+job+` has no key "a" and none under "a/"`) ||
		!strings.Contains(errOut, "pocket ls "+job+" a") {
		t.Errorf("rm a again: exit %d, stdout %q, stderr %q; want exit 1 saying nothing was deleted, and that ls lists by string prefix", code, out, errOut)
	}
	out, errOut, code = pocketRun(t, r.bin, env, "", "ls", "--insecure", job, "a")
	if code != 0 || out != "ab\n" {
		t.Errorf("ls a: exit %d, stdout %q, stderr %q; want ab (ls matches a string prefix)", code, out, errOut)
	}
	out, errOut, code = pocketRun(t, r.bin, env, "", "rm", "--insecure", job, "ab")
	if code != 0 || out != "deleted 1 key(s): ab\n" {
		t.Errorf("rm ab: exit %d, stdout %q, stderr %q; want \"deleted 1 key(s): ab\"", code, out, errOut)
	}
	// The whole job without --all is a usage error (exit 2), KEY empty
	// or left out; with --all the KEY may be left out (a new user's trial:
	// "rm --all JOB" was refused for its argument count, and "rm JOB \"\""
	// exited 1).
	for _, args := range [][]string{{job, ""}, {job, "/"}, {job}} {
		out, errOut, code = pocketRun(t, r.bin, env, "", append([]string{"rm", "--insecure"}, args...)...)
		if code != 2 || out != "" || !strings.Contains(errOut, "--all") {
			t.Errorf("rm %q: exit %d, stdout %q, stderr %q; want exit 2 naming --all", args, code, out, errOut)
		}
	}
	// --all with a KEY is a usage error: it deleted the KEY alone (a new
	// user's trial, 2026-12-02).
	out, errOut, code = pocketRun(t, r.bin, env, "", "rm", "--insecure", "--all", job, "ab")
	if code != 2 || out != "" || !strings.Contains(errOut, `--all deletes every key of `+job+`, and "ab" names one`) {
		t.Errorf("rm --all JOB ab: exit %d, stdout %q, stderr %q; want exit 2", code, out, errOut)
	}
	for _, args := range [][]string{{job, ""}, {job}} {
		out, errOut, code = pocketRun(t, r.bin, env, "", append([]string{"rm", "--insecure", "--all"}, args...)...)
		if code != 0 || out != "deleted 0 keys: job "+job+" held none\n" {
			t.Errorf("rm --all %q of the emptied job: exit %d, stdout %q, stderr %q; want exit 0, held none", args, code, out, errOut)
		}
	}
}
