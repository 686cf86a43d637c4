package client

import (
	"context"
	"fmt"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// DropJob is DropJobAt for a node of unknown incarnation (0): a node that
// has one (every dataplane.Node) refuses the order. For tools and tests.
func (c *Client) DropJob(ctx context.Context, addr, job string, key []byte) (Dropped, error) {
	return c.DropJobAt(ctx, addr, job, key, 0)
}

// Dropped is a node's answer to a drop order (DropJobAt).
type Dropped struct {
	Values uint64 // values removed
	Freed  int64  // bytes freed
	// Kept is the job's bytes the node keeps: its values put with
	// wire.FlagPersist. A node that keeps none forgets the job
	// wire.RevokeLinger after the order (it refuses it until then).
	Kept int64
	// KeptProved says the node proved Kept with the cluster secret
	// (token.DropReplyProof over the order's nonce): an answer changed on
	// the way, or from a node without the secret, is not.
	KeptProved bool
}

// DropJobAt asks the node at addr, whose incarnation is incarnation
// (dataplane.Node.Incarnation, as the node registered it), to drop every
// value of job except those put with wire.FlagPersist, and to refuse the
// job's token from then on (one data-plane wire.OpDropJob request). key
// is the job's order key (token.OrderKey over the job id with the cluster
// secret); it is not sent: the request carries token.OrderProof keyed
// with it, bound to addr, incarnation, the opcode
// and flags, a fresh nonce (the request's key) and the expiry now +
// token.OrderLife by this process's clock. A node with a guard refuses an
// order made for another node or incarnation, altered, expired or taken
// before with wire.ErrBadToken. It returns the values the node removed,
// the bytes it freed and the bytes it keeps. Errors are those of Do,
// prefixed with the operation and the node.
func (c *Client) DropJobAt(ctx context.Context, addr, job string, key []byte, incarnation uint64) (Dropped, error) {
	return c.dropJobAt(ctx, addr, job, key, incarnation, 0)
}

// DropLostJobAt is DropJobAt for a node the job lost (it left the job's
// map dead, and came back): what it holds of the job is stale, so the
// order drops every value, those put with wire.FlagPersist too (the
// order's wire.FlagPrefix), now and when the node drops the job again at
// the end of its revocation's linger.
func (c *Client) DropLostJobAt(ctx context.Context, addr, job string, key []byte, incarnation uint64) (Dropped, error) {
	return c.dropJobAt(ctx, addr, job, key, incarnation, wire.FlagPrefix)
}

func (c *Client) dropJobAt(ctx context.Context, addr, job string, key []byte, incarnation uint64, flags uint16) (Dropped, error) {
	r, nonce, err := c.order(ctx, addr, job, key, incarnation, wire.OpDropJob, flags, nil)
	if err != nil {
		return Dropped{}, fmt.Errorf("drop job %s at %s: %w", job, addr, err)
	}
	return Dropped{Values: r.Meta.Count, Freed: r.Meta.Size, Kept: r.Meta.Capacity,
		KeptProved: token.VerifyDropReply(key, nonce, r.Meta.Capacity, r.Meta.Proof)}, nil
}

// orderNonceLen is the length of an order's nonce in bytes.
const orderNonceLen = 16

// Incarnation asks the node serving at addr which process it is (one
// data-plane wire.OpIncarnation request): it returns the node's
// incarnation and its proof over nonce (token.IncarnationProof, empty from
// a node without the cluster secret), which the caller checks. nonce is
// 8 to 64 bytes the caller chose at random. Errors are those of Do,
// prefixed with the operation and the node.
func (c *Client) Incarnation(ctx context.Context, addr string, nonce []byte) (incarnation uint64, proof []byte, err error) {
	r, err := c.Do(ctx, addr, wire.OpIncarnation, 0, &wire.Request{Key: nonce}, nil, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("incarnation at %s: %w", addr, err)
	}
	return r.Meta.Incarnation, r.Meta.Proof, nil
}
