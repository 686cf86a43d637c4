package dataplane

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// TestIncarnationAnswer: a node answers which process it is
// (wire.OpIncarnation) before any job or sync, with its incarnation and,
// guarded by the cluster secret, the proof over the asker's nonce; a
// nonce out of bounds is refused; a node without the secret answers no
// proof.
func TestIncarnationAnswer(t *testing.T) {
	ctx := context.Background()
	cl := client.New(client.Options{})
	defer cl.Close()
	n := tokenNode(t)
	n.AwaitSync() // a node registering has not synced yet
	nonce := []byte("controller-nonce")
	inc, proof, err := cl.Incarnation(ctx, n.Addr().String(), nonce)
	if err != nil || inc != n.Incarnation() || inc == 0 {
		t.Fatalf("incarnation %d, %v; want the node's %d", inc, err, n.Incarnation())
	}
	if !token.VerifyIncarnationProof(jtSecret, nonce, inc, proof) {
		t.Fatalf("proof %x does not prove incarnation %d for the nonce", proof, inc)
	}
	for _, bad := range [][]byte{nil, []byte("short"), bytes.Repeat([]byte("n"), 65)} {
		if _, _, err := cl.Incarnation(ctx, n.Addr().String(), bad); !errors.Is(err, wire.ErrBadKey) {
			t.Fatalf("nonce of %d bytes: %v; want bad key", len(bad), err)
		}
	}
	open := startNode(t, 1<<20, nil)
	inc, proof, err = cl.Incarnation(ctx, open.Addr().String(), nonce)
	if err != nil || inc != open.Incarnation() || len(proof) != 0 {
		t.Fatalf("node without a guard: %d %x %v; want its incarnation and no proof", inc, proof, err)
	}
	if other := startNode(t, 1<<20, nil); other.Incarnation() == open.Incarnation() {
		t.Fatalf("two nodes drew incarnation %d", open.Incarnation())
	}
}
