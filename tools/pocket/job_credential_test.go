package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestExpiredJobsValuesThroughItsToken (new user's trial): `pocket job
// register --ttl`, a put with --persist, the token expires. Its token
// then lists, gets and deletes the persisted values (ls, get, rm), `pocket
// job credential` prints the credential of the ended job (ended: true),
// which reads and deletes them too, and `pocket job deregister` says the
// job has ended and prints that credential. Another job's token gets
// "bad token", as for a job that never was. A malformed $POCKET_CREDENTIAL is refused by name.
// On the old code every one of these answered "unknown
// job: job ... is not registered", no command printed a credential, and
// `pocket job credential` did not exist.
func TestExpiredJobsValuesThroughItsToken(t *testing.T) {
	bin := buildPocketBinary(t)
	_, addr := startHintCluster(t)
	base := cleanEnv("POCKET_CONTROLLER=" + addr)
	run := func(env []string, stdin string, args ...string) (string, string, int) {
		t.Helper()
		n := 1 // the command's words, then its flags
		if args[0] == "job" {
			n = 2
		}
		return pocketRun(t, bin, env, stdin, append(append(append([]string(nil), args[:n]...), "--insecure"), args[n:]...)...)
	}
	must := func(env []string, stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := run(env, stdin, args...)
		if code != 0 {
			t.Fatalf("pocket %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	register := func(name, ttl string) (string, string) {
		t.Helper()
		var reg struct {
			JobID string `json:"job_id"`
			Token string `json:"token"`
		}
		if err := json.Unmarshal([]byte(must(base, "", "job", "register", name, "--lambdas", "1", "--ttl", ttl, "--json")), &reg); err != nil {
			t.Fatal(err)
		}
		return reg.JobID, reg.Token
	}
	job, tok := register("ttljob", "3s")
	_, otherTok := register("other", "0s")
	env := append(base, "POCKET_TOKEN="+tok)
	must(env, "keepme", "put", "--persist", job, "p/a", "-")
	must(env, "keeptoo", "put", "--persist", job, "p/b", "-")
	must(env, "goes", "put", job, "p/c", "-")

	type credView struct {
		JobID      string `json:"job_id"`
		Ended      bool   `json:"ended"`
		Credential string `json:"credential"`
	}
	var cv credView
	for deadline := time.Now().Add(20 * time.Second); ; {
		out, errOut, code := run(env, "", "job", "credential", job, "--json")
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &cv); err != nil {
				t.Fatal(err)
			}
			if cv.Ended {
				break
			}
		} else if !strings.Contains(errOut, "expired") {
			t.Fatalf("job credential of %s: exit %d, stderr %q", job, code, errOut)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not ended 20 s on: %+v", job, cv)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cv.JobID != job || cv.Credential == "" {
		t.Fatalf("job credential --json: %+v", cv)
	}

	if out := must(env, "", "ls", job); out != "p/a\np/b\n" {
		t.Errorf("ls of the expired job with its token: %q, want p/a and p/b", out)
	}
	if out := must(env, "", "get", job, "p/a"); out != "keepme" {
		t.Errorf("get p/a of the expired job with its token: %q", out)
	}
	if out, errOut, code := run(env, "x", "put", "--persist", job, "p/d", "-"); code == 0 {
		t.Errorf("put to the expired job: exit 0, stdout %q, stderr %q; want refused", out, errOut)
	}
	out, errOut, code := run(env, "", "job", "deregister", job)
	if code != 1 || !strings.Contains(errOut, "has ended already") || !strings.Contains(errOut, `eval "$(pocket job credential --insecure `+job+`)"`) ||
		strings.Contains(errOut+out, cv.Credential) {
		t.Errorf("job deregister of the expired job: exit %d, stdout %q, stderr %q; want exit 1 saying it ended, naming job credential, not the credential (a secret)", code, out, errOut)
	}
	// stdout is the export line alone, so eval "$(pocket job credential
	// JOB)" works; the explanation goes to stderr (a new user's trial: it
	// was on stdout, and eval failed on it).
	plain, plainErr, code := run(env, "", "job", "credential", job)
	if code != 0 || plain != "export POCKET_CREDENTIAL="+cv.Credential+"\n" || !strings.Contains(plainErr, "has ended") {
		t.Errorf("job credential of the expired job: exit %d, stdout %q, stderr %q; want the export line alone on stdout", code, plain, plainErr)
	}
	// A POCKET_CREDENTIAL that is no credential (here the whole export
	// line, captured) is an error naming it, not silently ignored.
	bad := append(append([]string(nil), env...), "POCKET_CREDENTIAL="+strings.TrimSpace(plain))
	if out, errOut, code := run(bad, "", "get", job, "p/a"); code != 1 || !strings.Contains(errOut, "$POCKET_CREDENTIAL is not a job credential") {
		t.Errorf("get with a malformed POCKET_CREDENTIAL: exit %d, stdout %q, stderr %q; want exit 1 naming it", code, out, errOut)
	}
	wrong := append(base, "POCKET_TOKEN="+otherTok)
	for _, args := range [][]string{{"ls", job}, {"get", job, "p/a"}, {"job", "credential", job}} {
		// The answer a job that never was gets (nothing tells which exist).
		if out, errOut, code := run(wrong, "", args...); code != 1 || !strings.Contains(errOut, "bad token") {
			t.Errorf("pocket %s with another job's token: exit %d, stdout %q, stderr %q; want bad token", strings.Join(args, " "), code, out, errOut)
		}
	}

	credEnv := append(base, "POCKET_CREDENTIAL="+cv.Credential)
	if out := must(credEnv, "", "get", job, "p/b"); out != "keeptoo" {
		t.Errorf("get p/b with the printed credential: %q", out)
	}
	must(env, "", "rm", job, "p/a")
	must(credEnv, "", "rm", job, "p/b")
	if out := must(credEnv, "", "ls", job); out != "" {
		t.Errorf("ls after both deletes: %q, want nothing", out)
	}
}
