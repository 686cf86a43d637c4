package dataplane

import (
	"context"
	"testing"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// TestOldAdminTokenDoesNotForgeOrders: the release before f068261 sent
// the job's admin token, token.SignAdmin(secret, job), bare in every drop
// order on the data plane's plain TCP (hostile test 54940b9). The orders
// of this release are keyed with that very token (token.OrderProof(admin,
// o)), which the README calls "the job's admin key, which is derived from
// the cluster secret and never sent". So whoever captured one old order
// about a job that lives across the upgrade (a node that returned to a
// live job's map got one) holds the key of every future order about it:
// with the incarnation any peer may ask (wire.OpIncarnation answers
// without a credential) and a nonce of its own it makes an order, with
// FlagPrefix, that every node of the job takes. The key of order proofs
// must be one that was never on the wire (derived apart from the admin
// token), so that an old captured order is worth nothing.
func TestOldAdminTokenDoesNotForgeOrders(t *testing.T) {
	const job = "sort-31"
	n := tokenNode(t)
	tok := holdValues(t, n, job)
	addr := n.Addr().String()

	// What an old drop order about the job carried as its token.
	captured := token.SignAdmin(jtSecret, []byte(job))

	// Any peer learns the node's incarnation.
	cl := client.New(client.Options{ConnsPerNode: 1})
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	inc, _, err := cl.Incarnation(ctx, addr, []byte("attacker-nonce-01"))
	if err != nil {
		t.Fatal(err)
	}

	o := token.Order{Addr: addr, Incarnation: inc, Op: byte(wire.OpDropJob), Flags: wire.FlagPrefix,
		Nonce: []byte("attacker-nonce-02"), ExpiresMs: time.Now().Add(token.OrderLife).UnixMilli()}
	forged := &wire.Request{Job: []byte(job), Key: o.Nonce, Token: token.OrderProof(captured, &o)}
	h, err := rawExchange(t, n, orderFrame(t, wire.FlagPrefix, forged))
	if err != nil {
		t.Fatal(err)
	}
	if h.Code != wire.CodeBadToken {
		t.Errorf("an order made by a peer from the admin token an old drop order carried (incarnation %d asked at %s, FlagPrefix, its own nonce) was answered %v, want bad token", inc, addr, h.Code)
	}
	if err := jobOp(t, n, wire.OpGet, job, "tmp", tok, 0, 0); err != nil {
		t.Errorf("get %s/tmp after the forged order: %v", job, err)
	}
	if u := n.jobUsage([]byte(job)); u == 0 {
		t.Errorf("the node holds 0 bytes of %s after the forged order: its persist-after-job value kept is gone", job)
	}
}
