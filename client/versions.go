package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// VersionsAt asks the node at addr, whose incarnation is incarnation, which
// object versions of the ended job it holds (wire.OpVersions, the
// controller's order proved as DropJobAt's is, with key the job's order
// key): with manifests, the versions its manifests name, else those of its
// confirmed chunks; every page, in ascending order. Each page must carry
// the node's proof of it (token.VersionsReplyProof over the order's nonce):
// one without is refused (errUnprovedReply), since the caller drops
// chunks by what it says. Errors are those of Do, prefixed with the
// operation and the node: a job still live there answers
// wire.ErrConflict, one whose data is being dropped wire.ErrBusy.
func (c *Client) VersionsAt(ctx context.Context, addr, job string, key []byte, incarnation uint64, manifests bool) ([]uint64, error) {
	var flags uint16
	what := "chunk versions"
	if manifests {
		flags, what = wire.FlagManifest, "manifest versions"
	}
	var all, cursor []uint64
	for {
		r, nonce, err := c.order(ctx, addr, job, key, incarnation, wire.OpVersions, flags, wire.PackVersions(nil, cursor...))
		if err != nil {
			return nil, fmt.Errorf("%s of job %s at %s: %w", what, job, addr, err)
		}
		vs := r.Meta.Versions
		if !token.VerifyVersionsReply(key, nonce, vs, r.Meta.More, r.Meta.Proof) {
			return nil, fmt.Errorf("%s of job %s at %s: %w", what, job, addr, errUnprovedReply)
		}
		if err := versionsProgress(vs, cursor, r.Meta.More); err != nil {
			return nil, fmt.Errorf("%s of job %s at %s: %w", what, job, addr, err)
		}
		all = append(all, vs...)
		if !r.Meta.More {
			return all, nil
		}
		cursor = vs[len(vs)-1:]
	}
}

// versionsProgress checks that a page of versions, asked for after cursor
// (none: the first page), moves on: ascending, each past the one before
// and past the cursor, and one that says more names at least one. A node
// answering more with the same versions (or none) on every page kept the
// loop asking for ever; as listings and prefix deletes did (a hostile
// trial: 402,319 listing requests in 10 s).
func versionsProgress(vs, cursor []uint64, more bool) error {
	if more && len(vs) == 0 {
		return wire.Errorf(wire.CodeMalformed, "a page says more and names no version")
	}
	prev := cursor
	for i, v := range vs {
		if len(prev) > 0 && v <= prev[0] {
			return wire.Errorf(wire.CodeMalformed, "version %016x is not past %016x before it", v, prev[0])
		}
		prev = vs[i : i+1]
	}
	return nil
}

// DropVersionsAt orders the node at addr to delete the chunks of the
// ended job's confirmed versions vs (wire.OpDropVersions, in orders of
// wire.MaxDropVersions at most, each proof binding its versions), and
// returns the chunks deleted (Values) and the bytes freed (Freed). Errors
// are those of Do, prefixed with the operation and the node; with an
// error, the Dropped counts the orders taken before it.
func (c *Client) DropVersionsAt(ctx context.Context, addr, job string, key []byte, incarnation uint64, vs []uint64) (Dropped, error) {
	var d Dropped
	for len(vs) > 0 {
		n := min(len(vs), wire.MaxDropVersions)
		r, _, err := c.order(ctx, addr, job, key, incarnation, wire.OpDropVersions, 0, wire.PackVersions(nil, vs[:n]...))
		if err != nil {
			return d, fmt.Errorf("drop %d version(s) of job %s at %s: %w", n, job, addr, err)
		}
		d.Values += r.Meta.Count
		d.Freed += r.Meta.Size
		vs = vs[n:]
	}
	return d, nil
}

// order sends the controller's order op about job to the node at addr:
// a fresh nonce as the request's key (returned), carried in its After,
// proved with key (token.OrderProof) for addr, incarnation, op, flags, the
// nonce and carried, valid for token.OrderLife.
func (c *Client) order(ctx context.Context, addr, job string, key []byte, incarnation uint64, op wire.Op, flags uint16, carried []byte) (Reply, []byte, error) {
	nonce, err := token.NewNonce(orderNonceLen)
	if err != nil {
		return Reply{}, nil, err
	}
	o := token.Order{Addr: addr, Incarnation: incarnation, Op: byte(op), Flags: flags, Nonce: nonce,
		ExpiresMs: time.Now().Add(token.OrderLife).UnixMilli(), Carried: carried}
	r, err := c.Do(ctx, addr, op, flags, &wire.Request{Job: []byte(job), Key: nonce, After: carried, Token: token.OrderProof(key, &o)}, nil, nil)
	return r, nonce, err
}

// errUnprovedReply is VersionsAt's error for an answer without the node's
// proof of it (token.VersionsReplyProof): changed on the way, or from a
// node without the cluster secret. The controller drops chunks by what
// the answer says, so it is not believed.
var errUnprovedReply = errors.New("the node's answer does not carry its proof of the cluster secret over it (changed on the way, or a node without the secret); not believed")
