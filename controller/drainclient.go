package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/pocketstore/pocket/metaclient"
)

// RequestDrain asks the controller at ctlAddr to drain the node at
// nodeAddr within deadline (0: the controller's default) and returns the
// deadline it applied. The order is proved with the cluster secret over a
// challenge the controller gives the connection (token.DrainProof): only
// an operator holding the secret can take nodes away, and neither a node's
// proof nor a recorded order passes. It is `pocket node drain`'s client
// side, over metaclient.Client.Drain; opt (its Secret replaced by secret)
// may carry TLS settings.
func RequestDrain(ctx context.Context, ctlAddr, nodeAddr string, deadline time.Duration, secret []byte, opt ...metaclient.Options) (time.Duration, error) {
	var o metaclient.Options
	if len(opt) > 0 {
		o = opt[0]
	}
	o.Secret = secret
	mc := metaclient.New(ctlAddr, o)
	defer mc.Close()
	d, err := mc.Drain(ctx, nodeAddr, deadline)
	if err != nil {
		return 0, fmt.Errorf("drain %s: %w", nodeAddr, err)
	}
	return d, nil
}
