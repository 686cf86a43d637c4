package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// TestCredentialFollowsTheJob: the data commands open POCKET_CREDENTIAL
// as the SDKs' OpenCredential does. A credential taken while the job's map
// is at one epoch still reads after the map changed (the job grew onto
// the other node): the controller says the job is live and gives its
// current map. On the old code, which opened the credential with its own
// map and no controller, ls and get answered "stale map epoch" on every
// call. After the job is deregistered the credential reads its persisted
// value (the controller does not know the job), and with the controller
// gone too, after a note on stderr (the credential's own map).
func TestCredentialFollowsTheJob(t *testing.T) {
	ctx, r := newDataJob(t, "cred")
	bin, ctl, addr, m, s, j := r.bin, r.ctl, r.addr, r.m, r.s, r.j
	if err := j.Put(ctx, "k", []byte("live value")); err != nil {
		t.Fatal(err)
	}
	if err := j.Put(ctx, "keep", []byte("persisted value"), pocket.Persist()); err != nil {
		t.Fatal(err)
	}
	cred := j.Credential()
	if err := ctl.GrowJob(m.Job, ""); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		cur, err := ctl.GetMap(m.Job, m.Token)
		if err == nil && cur.Epoch > m.Epoch && len(cur.Nodes) == 2 && cur.Nodes[0].State == wire.NodeActive && cur.Nodes[1].State == wire.NodeActive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job's map did not grow: %+v %v", cur, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	env := cleanEnv("POCKET_CONTROLLER="+addr, "POCKET_CREDENTIAL="+cred)
	run := func(args ...string) (string, string) {
		t.Helper()
		out, errOut, code := pocketRun(t, bin, env, "", append([]string{args[0], "--insecure"}, args[1:]...)...)
		if code != 0 {
			t.Fatalf("pocket %s with a credential: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
		return out, errOut
	}
	if out, errOut := run("ls", m.Job); out != "k\nkeep\n" || errOut != "" {
		t.Errorf("ls of the live job after its map changed: %q, stderr %q; want k and keep", out, errOut)
	}
	if out, _ := run("get", m.Job, "k"); out != "live value" {
		t.Errorf("get k of the live job after its map changed: %q", out)
	}

	// The credential deregistration prints (pocket job deregister) is of
	// the map at that time, where the persisted value may have moved.
	j2, err := s.OpenJob(ctx, m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	env = cleanEnv("POCKET_CONTROLLER="+addr, "POCKET_CREDENTIAL="+j2.Credential())
	if _, err := ctl.DeregisterJob(ctx, m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	if out, errOut := run("ls", m.Job); out != "keep\n" || errOut != "" {
		t.Errorf("ls of the deregistered job: %q, stderr %q; want keep only", out, errOut)
	}
	// An empty listing of an ended job says why (a new user's trial read
	// it as a job that never had values).
	if out, errOut := run("ls", m.Job, "nothing-under"); out != "" ||
		!strings.Contains(errOut, "note: job "+m.Job+" has ended: only its persist-after-job values remain, and none is listed") {
		t.Errorf("empty ls of the deregistered job: %q, stderr %q; want a note", out, errOut)
	}
	ctl.Close()
	start := time.Now()
	out, errOut := run("get", m.Job, "keep")
	if out != "persisted value" || !strings.Contains(errOut, "note: the controller did not say whether job "+m.Job+" is live") {
		t.Errorf("get keep with the controller gone: %q, stderr %q; want the value and a note", out, errOut)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("get with the controller gone took %v", d)
	}
}

// TestGetOfAnEndedJobsTemporaryValueSaysWhy: after a job of one node ends,
// a get of its temporary value, from the node that keeps its persisted
// one, is not found with a note saying why. On the old code it printed a
// bare "key not found" (a new user's trial); a node keeping none of the
// job's values said why already.
func TestGetOfAnEndedJobsTemporaryValueSaysWhy(t *testing.T) {
	ctx, r := newDataJob(t, "endednote")
	if len(r.m.Nodes) != 1 {
		t.Fatalf("the job's map has %d nodes, want 1", len(r.m.Nodes))
	}
	if err := r.j.Put(ctx, "k", []byte("temporary")); err != nil {
		t.Fatal(err)
	}
	if err := r.j.Put(ctx, "keep", []byte("persisted"), pocket.Persist()); err != nil {
		t.Fatal(err)
	}
	cred := r.j.Credential()
	if _, err := r.ctl.DeregisterJob(ctx, r.m.Job, r.m.Token); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv("POCKET_CONTROLLER="+r.addr, "POCKET_CREDENTIAL="+cred)
	out, errOut, code := pocketRun(t, r.bin, env, "", "get", "--insecure", r.m.Job, "k")
	if code != 1 || out != "" ||
		!strings.Contains(errOut, "note: job "+r.m.Job+" has ended: only its persist-after-job values remain, and \"k\" is not one of them") {
		t.Errorf("get k of the ended job: exit %d, %q, stderr %q; want exit 1 and a note", code, out, errOut)
	}
	if out, _, code := pocketRun(t, r.bin, env, "", "get", "--insecure", r.m.Job, "keep"); code != 0 || out != "persisted" {
		t.Errorf("get keep of the ended job: exit %d, %q", code, out)
	}
}
