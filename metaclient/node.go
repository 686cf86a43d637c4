package metaclient

import (
	"context"
	"errors"
	"fmt"
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
	// bare heartbeats. hb.Early is set on an early heartbeat (Wake): the
	// controller keeps its rates out of the node's figures, so Report
	// should not start a new rate interval on it.
	Report func(hb *wire.Heartbeat)
	// OnAck receives every ack: the node's state and its job-table
	// changes. Called from RunNode's goroutine; may be nil.
	OnAck func(ack *wire.NodeAck)
	// Renew, when not nil, receives every ack's lease (wire.NodeAck.Lease)
	// with the time the heartbeat or registration it answers was first
	// sent (before any retry), from which the lease counts; called from
	// RunNode's goroutine before OnAck.
	Renew func(sent time.Time, lease time.Duration)
	// Interval is the heartbeat period until the controller names one
	// (1 s). Registration is retried at the same period.
	Interval time.Duration
	// Wake, when not nil, asks for a heartbeat before the interval is up
	// (dataplane.Node.SyncWanted: a request showed the node's job table
	// behind). The early heartbeat (wire.Heartbeat.Early) goes at once,
	// or WakeGap after the node's previous heartbeat, whichever is later;
	// wake-ups meanwhile are one. The regular heartbeats keep their
	// schedule. An unregistered node ignores Wake: it registers on its
	// own schedule.
	Wake <-chan struct{}
	// WakeGap is the least time between an early heartbeat and the
	// heartbeat before it (0: DefaultWakeGap), which bounds what wake-ups
	// cost the controller, whatever clients send: at most one early
	// heartbeat per WakeGap.
	WakeGap time.Duration
}

// DefaultWakeGap is NodeLoop.WakeGap's default: at most 20 early
// heartbeats a second, each a few hundred bytes and a table delta.
const DefaultWakeGap = 50 * time.Millisecond

// Registration refusals after which a node must stop, which RunNode
// returns (wrapping the controller's *wire.Error, which names the address
// and incarnations).
var (
	// ErrRetired: the controller drained and retired the node (its
	// registration, sent after a heartbeat it did not know, was refused
	// with wire.CodeDraining). The node's data has moved to the jobs'
	// other nodes and no map names it: the process has nothing left to
	// serve and should exit.
	ErrRetired = errors.New("metaclient: the controller drained and retired this node")
	// ErrAddressInUse: the controller confirmed that another node process
	// (another incarnation) serves at the address this node advertises,
	// and refused the registration (wire.CodeExists). Retrying cannot
	// help: the node needs its own address.
	ErrAddressInUse = errors.New("metaclient: another node serves at the address this node advertises")
)

// RunNode registers the node and heartbeats until ctx ends, then returns
// ctx's error, or until the controller refuses the registration for good:
// ErrRetired (the node was drained and retired) or ErrAddressInUse
// (another node serves at its address). Any other failure is retried:
// when the controller is unreachable, busy or cannot confirm the node's
// restart yet (wire.CodeUnavailable, CodeBusy) RunNode keeps trying every
// interval (logging each change between working and failing once, not
// every attempt), and when the controller answers that it does not know
// the node (it restarted without its state, or retired the node) it
// registers again at once; a controller restarted on its state knows the
// node and its heartbeats simply resume. An ack with More (a
// registration, a page of the job table) is followed by the next
// heartbeat at once. The node keeps serving meanwhile, and after RunNode
// returns: stopping it is the caller's choice.
//
// The registration and heartbeats go over a connection of their own, not
// the one c's other calls share: a call of the node's on c (a drain's or a
// move's map fetch) never holds a heartbeat back. That matters most after
// a controller restart, when the controller holds a restored job's map
// back until the job's nodes have heartbeated (confirmed its epoch): on a
// shared connection the fetch waited for the very heartbeat it held back.
//
// RunNode makes c a node's client (as loop.Register.Addr; the first
// RunNode's address stays): from then on each of c's connections proves
// the node role (wire.OpNodeHello) before its first call, as the
// heartbeat connection does by registering, so the controller serves the
// node's other calls (its drainer's and mover's map fetches) as a node's
// too: outside MaxConns, never evicted for idleness, and served when a
// flood of busy connections fills MaxConns. It returns ErrClosed when c
// is closed before it starts.
func (c *Client) RunNode(ctx context.Context, loop NodeLoop) error {
	beats, err := c.beatClient()
	if err != nil {
		return err
	}
	c.opt.node.claim(loop.Register.Addr)
	defer c.endBeats(beats)
	interval := loop.Interval
	if interval <= 0 {
		interval = time.Second
	}
	registered := false
	lastErr := ""
	failed := func(err error) {
		if msg := err.Error(); msg != lastErr {
			if registered {
				c.opt.Logger.Warn("metaclient: controller unreachable; the node serves its jobs within its lease (then refuses them: agent logs \"lease lapsed\") and retries", "controller", c.addr, "err", err)
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
	t := time.NewTimer(0) // the regular heartbeat
	defer t.Stop()
	w := newWaker(loop.Wake, loop.WakeGap)
	defer w.stop()
	for {
		early := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-w.wake:
			w.arm(registered)
			continue
		case <-w.due():
			w.fired()
			early = registered
			if !early {
				continue
			}
		}
		next := interval
		sent := time.Now()
		ack, err := beats.beat(ctx, &loop, registered, early, interval)
		w.beat()
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if final := refusal(err, registered); final != nil {
				return final
			}
			failed(err)
		case !ack.Known:
			registered, next = false, 0 // the controller forgot us: register now
		default:
			worked()
			if ack.Heartbeat > 0 {
				interval, next = ack.Heartbeat, ack.Heartbeat
			}
			if loop.Renew != nil {
				loop.Renew(sent, ack.Lease)
			}
			if loop.OnAck != nil {
				loop.OnAck(ack)
			}
			if ack.More {
				next = 0
			}
		}
		if !early || next == 0 {
			t.Reset(next) // an early heartbeat leaves the schedule be
		}
	}
}

// refusal returns the error RunNode ends with when err, the answer to a
// registration (not registered) or a heartbeat, refuses the node for good
// (ErrRetired, ErrAddressInUse), else nil. Only a registration is ever
// refused so: a heartbeat's errors are the transport's.
func refusal(err error, registered bool) error {
	if registered {
		return nil
	}
	switch {
	case errors.Is(err, wire.ErrDraining):
		return fmt.Errorf("%w: %w", ErrRetired, err)
	case errors.Is(err, wire.ErrExists):
		return fmt.Errorf("%w: %w", ErrAddressInUse, err)
	}
	return nil
}

// beatClient returns a new client of c's controller (or controllers) with
// c's options, for one RunNode loop; c's Close closes it too. It shares
// c's node role, so each of its connections proves the role
// (wire.OpNodeHello, a small frame) before its registration or first
// heartbeat: a heartbeat listing many jobs is a large frame, and the
// controller holds a connection's large frames against a share that
// peers without the secret can fill until it has proved the role
// (controller.admitLarge; a hostile trial's heartbeats were refused so,
// and three of four nodes declared dead).
func (c *Client) beatClient() (*Client, error) {
	c.lock()
	defer c.unlock()
	if c.closed {
		return nil, ErrClosed
	}
	b := New(c.addr, c.opt)
	if c.beats == nil {
		c.beats = make(map[*Client]struct{})
	}
	c.beats[b] = struct{}{}
	return b, nil
}

// endBeats closes a RunNode loop's client and forgets it.
func (c *Client) endBeats(b *Client) {
	b.Close()
	c.lock()
	delete(c.beats, b)
	c.unlock()
}

// waker turns NodeLoop.Wake into early heartbeats, at most one per gap
// after the previous heartbeat.
type waker struct {
	src   <-chan struct{}
	wake  <-chan struct{} // src, or nil while an early heartbeat is armed
	gap   time.Duration
	t     *time.Timer
	armed bool
	last  time.Time // the previous heartbeat (or registration)
}

func newWaker(src <-chan struct{}, gap time.Duration) *waker {
	if gap <= 0 {
		gap = DefaultWakeGap
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waker{src: src, wake: src, gap: gap, t: t}
}

// arm schedules the early heartbeat a wake-up asked for (a registered node
// only), and stops listening until it goes.
func (w *waker) arm(registered bool) {
	if !registered {
		return
	}
	w.wake, w.armed = nil, true
	w.t.Reset(max(0, time.Until(w.last.Add(w.gap))))
}

// due fires when the armed early heartbeat is due.
func (w *waker) due() <-chan time.Time {
	if !w.armed {
		return nil
	}
	return w.t.C
}

// fired listens for wake-ups again.
func (w *waker) fired() { w.wake, w.armed = w.src, false }

// beat records a heartbeat: an armed early one is not needed any more.
func (w *waker) beat() {
	w.last = time.Now()
	if w.armed {
		w.t.Stop()
		w.fired()
	}
}

func (w *waker) stop() { w.t.Stop() }

// beat sends a registration or a heartbeat (early: an early one), bounded by one interval (at
// least 3 s); while the controller is away it is retried at least every
// interval.
func (c *Client) beat(ctx context.Context, loop *NodeLoop, registered, early bool, interval time.Duration) (*wire.NodeAck, error) {
	ctx, cancel := context.WithTimeout(withRetryCap(ctx, interval), max(interval, 3*time.Second))
	defer cancel()
	if !registered {
		return c.RegisterNode(ctx, loop.Register)
	}
	hb := wire.Heartbeat{Early: early}
	if loop.Report != nil {
		loop.Report(&hb)
	}
	hb.Addr, hb.Proof, hb.Early = loop.Register.Addr, nil, early
	return c.Heartbeat(ctx, hb)
}
