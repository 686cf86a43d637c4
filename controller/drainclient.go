package controller

import (
	"context"
	"fmt"
	"strings"
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
//
// A node that keeps persist-after-job values of ended jobs is not drained
// (wire.CodeConflict, naming them): RequestDrainWith with
// DrainOptions.DiscardPersisted goes ahead and destroys them.
func RequestDrain(ctx context.Context, ctlAddr, nodeAddr string, deadline time.Duration, secret []byte, opt ...metaclient.Options) (time.Duration, error) {
	return RequestDrainWith(ctx, ctlAddr, nodeAddr, DrainOptions{Deadline: deadline}, secret, opt...)
}

// RequestDrainWith is RequestDrain with the drain's options.
func RequestDrainWith(ctx context.Context, ctlAddr, nodeAddr string, do DrainOptions, secret []byte, opt ...metaclient.Options) (time.Duration, error) {
	var o metaclient.Options
	if len(opt) > 0 {
		o = opt[0]
	}
	o.Secret = secret
	mc := metaclient.New(ctlAddr, o)
	defer mc.Close()
	d, err := mc.DrainOrder(ctx, nodeAddr, do.Deadline, do.flags())
	if err != nil && !strings.Contains(err.Error(), nodeAddr) {
		// The controller's refusals name the node ("node ADDR is dead
		// ..."); a prefix would say it twice.
		return 0, fmt.Errorf("drain %s: %w", nodeAddr, err)
	}
	if err != nil {
		return 0, err
	}
	return d, nil
}
