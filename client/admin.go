package client

import (
	"context"
	"fmt"

	"github.com/pocketstore/pocket/wire"
)

// DropJob asks the node at addr to drop every value of job except those
// put with wire.FlagPersist, and to refuse the job's token from then on
// (one data-plane wire.OpDropJob request). admin is the controller's admin
// token for the job (token.SignAdmin over the job id with the cluster
// secret); a node with a guard refuses any other with wire.ErrBadToken.
// It returns the number of values the node removed and the bytes it freed.
// Errors are those of Do, prefixed with the operation and the node.
func (c *Client) DropJob(ctx context.Context, addr, job string, admin []byte) (values uint64, bytes int64, err error) {
	r, err := c.Do(ctx, addr, wire.OpDropJob, 0, &wire.Request{Job: []byte(job), Token: admin}, nil, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("drop job %s at %s: %w", job, addr, err)
	}
	return r.Meta.Count, r.Meta.Size, nil
}

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
