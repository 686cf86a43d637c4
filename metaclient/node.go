package metaclient

import (
	"context"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// NodeLoop is what a storage node gives RunNode.
type NodeLoop struct {
	// Register is the node's registration (address, tiers, cores). The
	// proof is filled in from Options.Secret.
	Register wire.NodeRegister
	// Report fills in a heartbeat's telemetry (tiers' used bytes, rx/tx,
	// CPU, metrics) and the revision of the node's job table (Since,
	// SnapRev, SnapAfter); Addr and Proof are set by RunNode. Nil sends
	// bare heartbeats.
	Report func(hb *wire.Heartbeat)
	// OnAck receives every ack: the node's state and its job-table
	// changes. Called from RunNode's goroutine; may be nil.
	OnAck func(ack *wire.NodeAck)
	// Interval is the heartbeat period until the controller names one
	// (1 s). Registration is retried at the same period.
	Interval time.Duration
}

// RunNode registers the node and heartbeats until ctx ends, then returns
// ctx's error. It never gives up: when the controller is unreachable it
// keeps retrying every interval (logging each change between working and
// failing once, not every attempt), and when the controller answers that
// it does not know the node (it restarted without its state) it registers
// again at once; a controller restarted on its state knows the node and
// its heartbeats simply resume. An
// ack with More (a registration, a page of the job table) is followed by
// the next heartbeat at once. The node keeps serving meanwhile; nothing
// here can stop it.
func (c *Client) RunNode(ctx context.Context, loop NodeLoop) error {
	interval := loop.Interval
	if interval <= 0 {
		interval = time.Second
	}
	registered := false
	lastErr := ""
	failed := func(err error) {
		if msg := err.Error(); msg != lastErr {
			if registered {
				c.opt.Logger.Warn("metaclient: controller unreachable; the node keeps serving and retries", "controller", c.addr, "err", err)
			} else {
				c.opt.Logger.Warn("metaclient: node not registered", "controller", c.addr, "err", err)
			}
			lastErr = msg
		}
	}
	worked := func() {
		switch {
		case lastErr != "":
			c.opt.Logger.Info("metaclient: controller reached again", "controller", c.addr)
		case !registered:
			c.opt.Logger.Info("metaclient: node registered", "controller", c.addr)
		}
		lastErr, registered = "", true
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		next := interval
		ack, err := c.beat(ctx, &loop, registered, interval)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed(err)
		case !ack.Known:
			registered, next = false, 0 // the controller forgot us: register now
		default:
			worked()
			if ack.Heartbeat > 0 {
				interval, next = ack.Heartbeat, ack.Heartbeat
			}
			if loop.OnAck != nil {
				loop.OnAck(ack)
			}
			if ack.More {
				next = 0
			}
		}
		t.Reset(next)
	}
}

// beat sends a registration or a heartbeat, bounded by one interval (at
// least 3 s); while the controller is away it is retried at least every
// interval.
func (c *Client) beat(ctx context.Context, loop *NodeLoop, registered bool, interval time.Duration) (*wire.NodeAck, error) {
	ctx, cancel := context.WithTimeout(withRetryCap(ctx, interval), max(interval, 3*time.Second))
	defer cancel()
	if !registered {
		return c.RegisterNode(ctx, loop.Register)
	}
	hb := wire.Heartbeat{}
	if loop.Report != nil {
		loop.Report(&hb)
	}
	hb.Addr, hb.Proof = loop.Register.Addr, nil
	return c.Heartbeat(ctx, hb)
}
