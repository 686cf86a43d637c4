package main

import (
	"encoding/hex"
	"testing"
)

// TestLsQuotesKeysThatWouldMislead: ls prints a key holding a newline as
// one quoted line, not as two keys; before, a key "a\nb" listed as keys a
// and b, beside a real key b. Names that need no quoting print as they
// are, and a name that looks quoted is quoted, so the two cannot be
// confused.
func TestLsQuotesKeysThatWouldMislead(t *testing.T) {
	ctx, r := newDataJob(t, "quoted")
	for _, k := range []string{"a\nb", "b", "plain/key"} {
		if err := r.j.Put(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	env := cleanEnv("POCKET_CONTROLLER="+r.addr, "POCKET_TOKEN="+hex.EncodeToString(r.m.Token))
	out, errOut, code := pocketRun(t, r.bin, env, "", "ls", "--insecure", r.m.Job)
	if want := "\"a\\nb\"\nb\nplain/key\n"; code != 0 || out != want {
		t.Fatalf("ls: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
	}
	for name, want := range map[string]string{
		"x\ty":      `"x\ty"`,
		"\xff":      `"\xff"`,
		`"a\nb"`:    `"\"a\\nb\""`,
		"caf\u00e9": "caf\u00e9",
	} {
		if got := lsName(name); got != want {
			t.Errorf("lsName(%q) = %s, want %s", name, got, want)
		}
	}
}
