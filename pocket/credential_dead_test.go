package pocket

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestCredentialDeadMarkOfAReturnedNode: a node the controller took for
// dead (its heartbeats stopped: a partition, a stalled agent) while it
// kept serving is named dead by a deregistration, and the credential
// marks it so. The node then heartbeats again within the dead-node grace,
// with the job's persisted values: the controller's final map of the
// ended job names it active, and the job's token opens the job on that
// map and reads them. A credential opened through the same controller
// should read them too. On the code under test OpenCredential keeps the
// credential's own map when the controller's final map is not newer (the
// same epoch here), dead mark included, so the value reads as lost
// ("recompute it") through the credential while it is there: the
// deregistration's dead mark, a moment's view, outlives the node's
// return, and a credential's marks (whoever wrote them) hide live values
// from every reader trusting it over the controller.
func TestCredentialDeadMarkOfAReturnedNode(t *testing.T) {
	r := newDeregRig(t, "returns")
	ctx := context.Background()
	x := r.nodes[0]
	cn := r.takeForDead(t, x) // its agent stops heartbeating; the node serves on
	if err := r.j.Deregister(ctx); err != nil {
		t.Fatalf("deregister with %s taken for dead: %v", x, err)
	}
	if res, _ := r.j.Deregistration(); !slices.Equal(res.Dead, []string{x}) {
		t.Fatalf("deregistration %+v: want %s named dead", res, x)
	}
	cred := r.j.Credential()

	// The node heartbeats again, with what it held; once the controller
	// has had it drop the job's other values, the job's token reads the
	// persisted ones there.
	r.c.nodes = slices.DeleteFunc(r.c.nodes, func(n *clusterNode) bool { return n == cn })
	r.c.runAgent(cn.node, cn.tier, x)
	r.c.awaitActive(3)

	keys := r.keysOn("p", x)
	if len(keys) == 0 {
		t.Fatalf("no persisted key on %s", x)
	}
	k, want := keys[0], "kept "+keys[0]
	s := r.c.store()
	byToken, err := s.OpenJob(ctx, r.j.ID(), r.j.Token())
	if err != nil || !byToken.Ended() {
		t.Fatalf("open the ended job by its token: %v", err)
	}
	start := time.Now()
	for {
		got, err := byToken.Get(ctx, k)
		if err == nil && string(got) == want {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s on the returned node %s through the job's token: %q %v; want %q", k, x, got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	byCred, err := s.OpenCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	got, err := byCred.Get(ctx, k)
	if errors.Is(err, wire.ErrLost) {
		t.Fatalf("%s on the returned node %s through the credential: %v; the value is there (the token reads it) "+
			"and the controller's final map names the node active", k, x, err)
	}
	if err != nil || string(got) != want {
		t.Fatalf("%s through the credential: %q %v; want %q", k, got, err, want)
	}
}
