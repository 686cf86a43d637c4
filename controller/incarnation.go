package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	dataclient "github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// A registration proves only that its sender holds the cluster secret, not
// that it serves at the address it names. So before the controller takes a
// known address registering with another incarnation for a restart (which
// makes every job that has the node lose it: restartedLocked), it asks the
// node serving at that address which process it is (wire.OpIncarnation,
// over the data plane, answered with the node's proof of the secret over
// the controller's nonce):
//
//   - the new incarnation: the node restarted; the registration stands.
//   - the old one: a second node (misconfigured with the same advertised
//     address, or anyone holding the secret) is registering; it is refused
//     with wire.CodeExists and the jobs keep the node.
//   - another one, or no valid proof: refused likewise.
//   - no answer within ProbeTimeout: refused with wire.CodeUnavailable. A
//     connection closed without an answer is tried again after
//     probeRetryGap while ProbeTimeout lasts: a node whose connection
//     slots are all taken answers on its reserve (dataplane's
//     reserve.go), which a burst of clients from the controller's own
//     address (one machine) may hold for a round trip. A
//     real restarted node listens before it registers (dataplane.NewNode
//     binds before agent.Run starts), so a registrant the controller cannot
//     reach is not serving where it says; the node's agent retries its
//     registration every heartbeat interval, so a restart behind a passing
//     fault is taken once the controller reaches it.
//
// The question is asked with no lock held, bounded by ProbeTimeout, and at
// most maxProbes at once (more are refused with wire.CodeBusy and retried
// by their agents). A node refused with wire.CodeExists stops
// (metaclient.ErrAddressInUse); one refused with CodeUnavailable or
// CodeBusy retries every heartbeat interval. The controller logs at most
// one warning per address every probeWarnGap (refusalWarnings), saying
// how many refusals it kept quiet since the last.

// DefaultProbeTimeout bounds the question to a node whose registration
// says it restarted (Config.ProbeTimeout): well inside the metaclient's
// least registration attempt (3 s).
const DefaultProbeTimeout = time.Second

// maxProbes bounds the incarnation questions in flight at once.
const maxProbes = 16

// probeWarnGap is the least time between two warnings about refused
// registrations at one address.
const probeWarnGap = 10 * time.Second

// maxWarnAddrs bounds the addresses refusalWarnings remembers; past it,
// warnings about further addresses are logged unthrottled (they are
// bounded by the registrations maxProbes lets through).
const maxWarnAddrs = 256

// refusalWarnings throttles the warnings about refused registrations to
// one per address every probeWarnGap. Safe for concurrent use.
type refusalWarnings struct {
	mu   sync.Mutex
	last map[string]*warnMark
}

// warnMark is one address's last warning and the warnings kept quiet since.
type warnMark struct {
	at    time.Time
	quiet int
}

// allow reports whether a warning about addr may be logged at now, and
// how many were kept quiet since the previous one.
func (w *refusalWarnings) allow(addr string, now time.Time) (bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m, ok := w.last[addr]; ok {
		if now.Sub(m.at) < probeWarnGap {
			m.quiet++
			return false, 0
		}
		quiet := m.quiet
		*m = warnMark{at: now}
		return true, quiet
	}
	if w.last == nil {
		w.last = map[string]*warnMark{}
	}
	if len(w.last) >= maxWarnAddrs {
		for a, m := range w.last {
			if now.Sub(m.at) >= probeWarnGap {
				delete(w.last, a)
			}
		}
	}
	if len(w.last) < maxWarnAddrs {
		w.last[addr] = &warnMark{at: now}
	}
	return true, 0
}

// warnRefused logs a refused registration's warning unless one about the
// same address was logged less than probeWarnGap ago.
func (c *Controller) warnRefused(log *slog.Logger, addr, msg string, args ...any) {
	ok, quiet := c.refusals.allow(addr, time.Now())
	if !ok {
		return
	}
	if quiet > 0 {
		args = append(args, "refusals_not_logged", quiet)
	}
	log.Warn(msg, args...)
}

// probeNonceLen is the nonce's length in bytes (the node takes 8 to 64).
const probeNonceLen = 16

// probeRetryGap is the pause before the question is asked again on a new
// connection after the node's address refused or dropped one.
const probeRetryGap = 50 * time.Millisecond

// incarnationAsker asks the node serving at addr for its proven
// incarnation (askIncarnation; tests put a stand-in).
type incarnationAsker func(ctx context.Context, addr string) (uint64, error)

// restartClaim is registerNode's answer when reg names a known address
// with another incarnation than the registry's (old) and no confirmation
// came with it.
type restartClaim struct{ old uint64 }

func (*restartClaim) Error() string { return "restart not confirmed" }

// confirmRestart asks the node serving at reg.Addr which process it is and
// returns nil when it is reg's (a restart of the node whose incarnation was
// old), else the error that refuses reg.
func (c *Controller) confirmRestart(reg *wire.NodeRegister, old uint64) error {
	select {
	case c.probes <- struct{}{}:
		defer func() { <-c.probes }()
	default:
		return wire.Errorf(wire.CodeBusy, "node %s: %d restart checks are under way; retry", reg.Addr, maxProbes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ProbeTimeout)
	defer cancel()
	got, err := c.askInc(ctx, reg.Addr)
	log := c.cfg.Logger.With("node", reg.Addr, "incarnation", reg.Incarnation, "known_incarnation", old)
	switch {
	case err != nil:
		c.warnRefused(log, reg.Addr, "controller: cannot confirm a node's restart; registration refused", "err", err)
		return wire.Errorf(wire.CodeUnavailable, "node %s registers with incarnation %d, a restart of the node with incarnation %d, "+
			"but the controller cannot confirm it: %v; registration refused (a restarted node serves before it registers): retry once it serves there",
			reg.Addr, reg.Incarnation, old, err)
	case got == reg.Incarnation:
		return nil
	case got == old:
		c.warnRefused(log, reg.Addr, "controller: a second node registers at a live node's address; refused")
		return wire.Errorf(wire.CodeExists, "another node with incarnation %d is serving at %s; refusing a second node at the same address "+
			"(this one has incarnation %d: give it its own address, --advertise)", old, reg.Addr, reg.Incarnation)
	default:
		c.warnRefused(log, reg.Addr, "controller: a registration names an address another node serves; refused", "serving_incarnation", got)
		return wire.Errorf(wire.CodeExists, "the node serving at %s has incarnation %d, not this registration's %d; refusing a node that does not serve at its address",
			reg.Addr, got, reg.Incarnation)
	}
}

// askIncarnation asks the node serving at addr for its incarnation over
// the data plane (dataclient.Client.Incarnation) and checks its proof of
// the cluster secret over a fresh nonce. A connection refused or closed
// without an answer (wire.ErrUnavailable) is retried every probeRetryGap
// until ctx ends.
func (c *Controller) askIncarnation(ctx context.Context, addr string) (uint64, error) {
	cl := dataclient.New(dataclient.Options{ConnsPerNode: 1, DialTimeout: c.cfg.ProbeTimeout})
	defer cl.Close()
	inc, err := c.askIncarnationOnce(ctx, cl, addr)
	for errors.Is(err, wire.ErrUnavailable) && sleepCtx(ctx, probeRetryGap) {
		inc, err = c.askIncarnationOnce(ctx, cl, addr)
	}
	return inc, err
}

// askIncarnationOnce asks the node serving at addr once, through cl, for
// its incarnation over a fresh nonce and checks its proof of the secret.
func (c *Controller) askIncarnationOnce(ctx context.Context, cl *dataclient.Client, addr string) (uint64, error) {
	nonce, err := token.NewNonce(probeNonceLen)
	if err != nil {
		return 0, err
	}
	inc, proof, err := cl.Incarnation(ctx, addr, nonce)
	if err != nil {
		return 0, err
	}
	if !token.VerifyIncarnationProof(c.cfg.Secret, nonce, inc, proof) {
		return 0, fmt.Errorf("the node at %s answered incarnation %d without a valid proof of the cluster secret", addr, inc)
	}
	return inc, nil
}

// registerChecked runs registerNode, and once more after confirmRestart
// when the registration says a known node restarted.
func (c *Controller) registerChecked(reg *wire.NodeRegister) (*wire.NodeAck, error) {
	ack, err := c.registerNode(reg, false)
	var claim *restartClaim
	if !errors.As(err, &claim) {
		return ack, err
	}
	if err := c.confirmRestart(reg, claim.old); err != nil {
		return nil, err
	}
	return c.registerNode(reg, true)
}
