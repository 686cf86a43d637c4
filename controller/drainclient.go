package controller

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// RequestDrain asks the controller at ctlAddr to drain the node at
// nodeAddr within deadline (0: the controller's default) and returns the
// deadline it applied. The order is signed with the cluster secret
// (token.SignNode over the node's address): only an operator holding the
// secret can take nodes away. It is the client side of OpDrainNode, used
// by `pocket node drain`; it dials once per call (drains are rare), so it
// lives here rather than in the job client, metaclient.
func RequestDrain(ctx context.Context, ctlAddr, nodeAddr string, deadline time.Duration, secret []byte) (time.Duration, error) {
	req := &wire.DrainNode{Addr: nodeAddr, Deadline: deadline, Proof: token.SignNode(secret, nodeAddr)}
	var resp wire.DrainNode
	if err := controlCall(ctx, ctlAddr, wire.OpDrainNode, req, &resp); err != nil {
		return 0, fmt.Errorf("drain %s: %w", nodeAddr, err)
	}
	return resp.Deadline, nil
}

// controlCall sends one control request on a fresh connection and decodes
// the reply; an error reply comes back as a *wire.Error.
func controlCall(ctx context.Context, addr string, op wire.Op, req, resp wire.ControlMessage) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	if err := conn.SetDeadline(dl); err != nil {
		return err
	}
	const id = 1
	meta := req.Encode(flatbuffers.NewBuilder(256))
	if _, err := conn.Write(wire.AppendControlFrame(nil, op, id, wire.CodeOK, meta)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	lim := wire.ControlLimits()
	h, rmeta, err := wire.ReadControlFrame(bufio.NewReader(conn), &lim, nil)
	if err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	if h.Op != op.Reply() || h.ID != id {
		return wire.Errorf(wire.CodeMalformed, "reply %s id %d to %s id %d", h.Op, h.ID, op, id)
	}
	if err := wire.ReplyError(&h, rmeta); err != nil {
		return err
	}
	return resp.Decode(rmeta)
}
