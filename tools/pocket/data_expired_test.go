package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestExpiredJobSaysItsTokenExpired (new user's trial): job register shows
// the expiry the controller granted (--json: expires), and once it passed,
// get of a value the expiry dropped and put both say the job's token
// expired at that time. On the old code the expiry appeared nowhere, get
// answered `"a": key not found` and put `token revoked: the job was
// deregistered`, which it was not.
func TestExpiredJobSaysItsTokenExpired(t *testing.T) {
	bin := buildPocketBinary(t)
	_, addr := startHintCluster(t)
	env := cleanEnv("POCKET_CONTROLLER=" + addr)
	start := time.Now()
	out, errOut, code := pocketRun(t, bin, env, "", "job", "register", "--insecure", "--json", "--ttl", "3s", "short")
	if code != 0 {
		t.Fatalf("job register --ttl 3s: exit %d: %s %s", code, out, errOut)
	}
	var reg jobMapJSON
	if err := json.Unmarshal([]byte(out), &reg); err != nil {
		t.Fatal(err)
	}
	exp, err := time.Parse(time.RFC3339, reg.Expires)
	if err != nil || exp.Before(start.Add(time.Second)) || exp.After(start.Add(5*time.Second)) {
		t.Fatalf("job register --json expires %q (%v); want about 3 s from now", reg.Expires, err)
	}
	env = append(env, envToken+"="+reg.Token)
	if out, errOut, code := pocketRun(t, bin, env, "keep", "put", "--insecure", "--persist", reg.JobID, "p", "-"); code != 0 {
		t.Fatalf("put p: exit %d: %s %s", code, out, errOut)
	}
	if out, errOut, code := pocketRun(t, bin, env, "drop", "put", "--insecure", reg.JobID, "a", "-"); code != 0 {
		t.Fatalf("put a: exit %d: %s %s", code, out, errOut)
	}
	time.Sleep(time.Until(exp) + time.Second) // the controller ends the job at its next sweep (100 ms)
	want := "token expired at " + reg.Expires
	for _, args := range [][]string{{"get", "--insecure", reg.JobID, "a"}, {"put", "--insecure", reg.JobID, "b", "-"}} {
		out, errOut, code := pocketRun(t, bin, env, "x", args...)
		if code != 1 || !strings.Contains(errOut, want) || strings.Contains(errOut, "deregistered") {
			t.Errorf("pocket %s after the job's expiry: exit %d, stdout %q, stderr %q; want exit 1 saying %q",
				strings.Join(args, " "), code, out, errOut, want)
		}
	}
	if out, errOut, code := pocketRun(t, bin, env, "", "get", "--insecure", reg.JobID, "p"); code != 0 || out != "keep" {
		t.Errorf("get p, persisted, after the job's expiry: exit %d, stdout %q, stderr %q; want its value", code, out, errOut)
	}

	out, _, code = pocketRun(t, bin, cleanEnv("POCKET_CONTROLLER="+addr), "", "job", "register", "--insecure", "--ttl", "1h", "long")
	if code != 0 || !strings.Contains(out, "token expires at ") || !strings.Contains(out, "(in 1h0m0s)") {
		t.Errorf("job register --ttl 1h: exit %d, stdout %q; want the granted expiry, in 1h0m0s", code, out)
	}
}
