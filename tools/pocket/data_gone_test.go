package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/nettest"
	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// TestLsNamesGoneNodes: pocket ls and rm through an ended job's credential
// whose map names a node that is gone (nothing listens at its address)
// cover the other nodes and say on stderr which node's values are gone;
// ls exits 3, a partial listing (TestLsSaysWhenANodeIsDeadOrLost).
// Before, the listing left the gone node out without a word (the SDK's
// Job.GoneNodes was read by nobody).
func TestLsNamesGoneNodes(t *testing.T) {
	ctx, r := newDataJob(t, "gone")
	bin, ctl, addr, m, j := r.bin, r.ctl, r.addr, r.m, r.j
	if err := j.Put(ctx, "keep", []byte("persisted value"), pocket.Persist()); err != nil {
		t.Fatal(err)
	}
	cred := withNode(t, j.Credential(), nettest.RefusedAddr(t))
	if _, err := ctl.DeregisterJob(ctx, m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv("POCKET_CONTROLLER="+addr, "POCKET_CREDENTIAL="+cred)
	out, errOut, code := pocketRun(t, bin, env, "", "ls", "--insecure", m.Job)
	if code != exitPartial || out != "keep\n" || !strings.Contains(errOut, "are gone") || !strings.Contains(errOut, "note:") {
		t.Fatalf("ls through a credential naming a gone node: exit %d, stdout %q, stderr %q; want the listing and a note naming it", code, out, errOut)
	}
}

// TestLsSaysWhenEveryNodeIsGone (new user's trial): through a credential
// whose nodes are all gone, ls lists nothing and says the job's values
// are lost; it said "this covers the other nodes only" when there were
// none, and named no node marked dead in the credential.
func TestLsSaysWhenEveryNodeIsGone(t *testing.T) {
	ctx, r := newDataJob(t, "allgone")
	bin, ctl, addr, m, j := r.bin, r.ctl, r.addr, r.m, r.j
	if err := j.Put(ctx, "keep", []byte("persisted value"), pocket.Persist()); err != nil {
		t.Fatal(err)
	}
	gone, dead := nettest.RefusedAddr(t), nettest.RefusedAddr(t)
	cred := editNodes(t, j.Credential(), func([]any) []any {
		return []any{map[string]any{"ID": gone, "Weight": 1}, map[string]any{"ID": dead, "Weight": 1, "dead": true}}
	})
	if _, err := ctl.DeregisterJob(ctx, m.Job, m.Token); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv("POCKET_CONTROLLER="+addr, "POCKET_CREDENTIAL="+cred)
	out, errOut, code := pocketRun(t, bin, env, "", "ls", "--insecure", m.Job)
	if code != exitPartial || out != "" || !strings.Contains(errOut, "every node of the job's map is gone") ||
		!strings.Contains(errOut, gone) || !strings.Contains(errOut, dead) || strings.Contains(errOut, "other nodes") {
		t.Fatalf("ls through a credential whose nodes are all gone: exit %d, stdout %q, stderr %q; want nothing listed and a note that every node (%s, %s) is gone",
			code, out, errOut, gone, dead)
	}
}

// dataJob is a job of one node on a hint cluster (startHintCluster),
// open through a Store, for running the pocket binary's data commands
// against.
type dataJob struct {
	bin  string // the pocket binary
	ctl  *controller.Controller
	addr string // the controller's
	m    *wire.PlacementMap
	s    *pocket.Store // closed when the test ends
	j    *pocket.Job   // the job, opened through s
}

// newDataJob builds the pocket binary, starts a hint cluster, registers a
// job of name on one node (the test fails unless it lands on one) and
// opens it through an insecure Store. The context it returns ends a minute
// after the cluster started, or with the test.
func newDataJob(t *testing.T, name string) (context.Context, *dataJob) {
	t.Helper()
	bin := buildPocketBinary(t)
	ctl, addr := startHintCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	m, err := ctl.RegisterJob(name, wire.JobHints{Lambdas: 1})
	if err != nil || len(m.Nodes) != 1 {
		t.Fatalf("register: %+v %v; want one node", m, err)
	}
	s, err := pocket.Dial(ctx, addr, pocket.Config{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	j, err := s.OpenJob(ctx, m.Job, m.Token)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, &dataJob{bin: bin, ctl: ctl, addr: addr, m: m, s: s, j: j}
}

// withNode returns cred with one more node in its map, at addr, of a
// tiny weight (so that the job's keys stay where they are), at the epoch
// after its own: at the same epoch the SDKs take the controller's final
// map, which names fewer nodes (a node that left with its values moved).
func withNode(t *testing.T, cred, addr string) string {
	t.Helper()
	cred = editNodes(t, cred, func(nodes []any) []any {
		return append(nodes, map[string]any{"ID": addr, "Weight": 1e-9})
	})
	return editCred(t, cred, func(c map[string]any) { c["epoch"] = c["epoch"].(float64) + 1 })
}

// editNodes is cred with its nodes as edit returns them.
func editNodes(t *testing.T, cred string, edit func([]any) []any) string {
	t.Helper()
	return editCred(t, cred, func(c map[string]any) { c["nodes"] = edit(c["nodes"].([]any)) })
}

// editCred is cred with its JSON object as edit leaves it.
func editCred(t *testing.T, cred string, edit func(map[string]any)) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(cred)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	b, err = json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
