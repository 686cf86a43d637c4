package controller

import (
	"context"
	"errors"
	"strings"
	"testing"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire"
)

// TestOperatorEndsAJobWithoutItsToken: a job whose client lost its token
// held its allotment until the token expired, or for good without a
// lifetime; an operator could not deregister it (a new user's trial: a
// Python job registered with lambdas=1000 showed the cluster
// "OVERSUBSCRIBED 25.7x" until it stopped). The operator now ends it
// with a proof of the cluster secret over the connection's challenge;
// a client's or a node's certificate, or the wrong secret, ends nothing.
func TestOperatorEndsAJobWithoutItsToken(t *testing.T) {
	dir := testPKI(t)
	addr := tlsController(t, dir)
	ctx := context.Background()
	client := tlsClient(t, dir, addr, "client", testSecret)
	m, err := client.RegisterJob(ctx, "lost-token", wire.JobHints{PeakMbps: 5000})
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"client", "node"} {
		if _, err := tlsClient(t, dir, addr, who, testSecret).EndJob(ctx, m.Job); !errors.Is(err, wire.ErrForbidden) || !strings.Contains(err.Error(), "operator") {
			t.Fatalf("a %s's certificate with the secret ends the job: %v", who, err)
		}
	}
	wrong := tlsClient(t, dir, addr, "operator", []byte("another-cluster-secret-0123456789"))
	if _, err := wrong.EndJob(ctx, m.Job); !errors.Is(err, wire.ErrBadToken) || !strings.Contains(err.Error(), "proof does not match") {
		t.Fatalf("an operator with the wrong secret ends the job: %v", err)
	}
	if _, err := client.GetMap(ctx, m.Job, m.Token); err != nil {
		t.Fatalf("the job ended on a refused order: %v", err)
	}

	op := tlsClient(t, dir, addr, "operator", testSecret)
	st, err := op.Status(ctx)
	if err != nil || len(st.Jobs) != 1 {
		t.Fatalf("status before: %+v %v", st, err)
	}
	if _, err := op.EndJob(ctx, m.Job); err != nil {
		t.Fatalf("the operator ends the job: %v", err)
	}
	if _, err := client.GetMap(ctx, m.Job, m.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Fatalf("the ended job's token still gets its map: %v", err)
	}
	if st, err := op.Status(ctx); err != nil || len(st.Jobs) != 0 {
		t.Fatalf("the ended job still holds its allotment: %+v %v", st, err)
	}
	if _, err := op.EndJob(ctx, m.Job); !errors.Is(err, wire.ErrUnknownJob) || !strings.Contains(err.Error(), "ended already") {
		t.Fatalf("ending it again: %v", err)
	}
	if _, err := op.EndJob(ctx, "never-1"); !errors.Is(err, wire.ErrUnknownJob) || !strings.Contains(err.Error(), "no job never-1 is registered") {
		t.Fatalf("ending a job never registered: %v", err)
	}
}

// TestDeregisterWithTokenAndProofIsTheClients: a deregistration that
// carries the job's token is the client's, whatever proof it also holds
// (a hostile trial's token plus a stray proof was refused as an
// operator's end without the role).
func TestDeregisterWithTokenAndProofIsTheClients(t *testing.T) {
	c := newTest(t, Config{})
	mustRegister(t, c, dramNode("127.0.0.1:7001", 1<<30, 8000))
	m, err := c.RegisterJob("both", wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	meta := (&wire.JobRef{Job: m.Job, Token: m.Token, Proof: []byte("stray")}).Encode(flatbuffers.NewBuilder(0))
	if _, err := c.dispatchJobs(&session{roles: RoleClient}, wire.OpDeregisterJob, meta); err != nil {
		t.Fatalf("deregister with the token and a stray proof: %v", err)
	}
	if _, err := c.GetMap(m.Job, m.Token); !errors.Is(err, wire.ErrUnknownJob) {
		t.Fatalf("the job is still live: %v", err)
	}
}

// TestRegistrationNotesAnOverAllotment: a registration whose allotment
// takes its nodes' allotments past their bandwidth says so in its note,
// which every client shows (the Python client as a RegistrationNote
// warning); one within them has none. Before, only pocket job register
// warned, by a check that needs the operator's certificate (a new user's
// Python job asked 600,000 Mb/s of a 24,000 Mb/s cluster unwarned).
func TestRegistrationNotesAnOverAllotment(t *testing.T) {
	c := newTest(t, Config{})
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002"} {
		mustRegister(t, c, dramNode(a, 1<<30, 8000))
	}
	m, err := c.RegisterJob("fits", wire.JobHints{PeakMbps: 4000})
	if err != nil || m.Note != "" {
		t.Fatalf("a job within its nodes' bandwidth: note %q, %v", m.Note, err)
	}
	m, err = c.RegisterJob("huge", wire.JobHints{Lambdas: 1000})
	if err != nil || !strings.Contains(m.Note, "of their 16000 Mb/s") || !strings.Contains(m.Note, "may get less than allotted") {
		t.Fatalf("a job of 1,000 lambdas on 16,000 Mb/s: note %q, %v", m.Note, err)
	}
	if !strings.Contains(m.Note, "a hint is reserved as asked") {
		t.Errorf("a hinted job's note %q: want it to say its hint is reserved as asked", m.Note)
	}
	// A job sized without hints, on the same nodes: its note blames no
	// hint (before, it blamed one: a new user's trial) and names where
	// its size came from: Pocket's default, for a name without a profile
	// (it said "learned (its profile, else the default)" of either), or
	// the name's profile.
	m, err = c.RegisterJob("learned", wire.JobHints{})
	if err != nil || !strings.Contains(m.Note, "may get less than allotted") || strings.Contains(m.Note, "reserved as asked") ||
		!strings.Contains(m.Note, "sized by Pocket's default (no hints, no profile of its name)") {
		t.Fatalf("a job without hints or profile on over-allotted nodes: note %q, %v", m.Note, err)
	}
	if err := endJobReporting(t, c, "prof", "127.0.0.1:7001", 10, wire.JobLoad{RxMbps: 1000, Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	m, err = c.RegisterJob("prof", wire.JobHints{})
	if err != nil || m.Sized != wire.SizedProfile || !strings.Contains(m.Note, "the job's size was learned from its name's profile") {
		t.Fatalf("a job sized from its profile on over-allotted nodes: sized %v, note %q, %v", m.Sized, m.Note, err)
	}
}
