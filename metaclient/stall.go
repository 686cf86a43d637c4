package metaclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire"
)

// ErrUnresponsive is the transport error of a call whose controller
// answered nothing while it waited, not even a new connection (stallAfter,
// stallWait), nor finished a TLS handshake within stallAfter+stallWait: a
// controller process that is stopped (SIGSTOP, a stall of its host), cut
// off, or out of descriptors (its kernel completes the handshakes its
// accept cannot take). The kernel of a stopped process still accepts
// connections and their bytes, so without it a call waited for its whole
// context on such a controller, and Controllers never moved on to the one
// elected in its place. It moves a call on like any transport error. Only
// waits that are safe to cut are cut (cuttable): a request that is not
// idempotent and was written waits on, except a node's heartbeat or
// registration, which the node loop sends again anyway; cut after it was
// written, such a request's error is an *OutcomeUnknownError, and
// Controllers tries another controller first on the next call.
var ErrUnresponsive = errors.New("the controller answered nothing, not even a new connection: presumed stopped (or cut off, or its process is out of descriptors and accepts no connection)")

// A call that has waited stallAfter for its reply probes the controller
// with a new connection to the same address (probe: a challenge,
// wire.OpChallenge, after the TLS handshake if any, which any running
// controller answers at once, leader or not, without its lock), and again
// every stallEvery while the wait goes on; a probe that meets silence for
// stallWait, or a refusal (nothing listens there any more), ends the wait
// with ErrUnresponsive (a controller that closes or resets the probe has
// answered). A
// controller holding a call (a map fetch held for its nodes, a
// registration waiting for nodes to start) answers the probes, so such
// calls wait on. stallWait is wide for a loaded controller: a hostile
// review's 500 clients at once under -race took more than 1 s for a
// handshake and a challenge.
const (
	stallAfter = 500 * time.Millisecond
	stallEvery = time.Second
	stallWait  = 2 * time.Second
)

// cuttable reports whether a wait for op's reply may be cut by a probe
// (ErrUnresponsive): op is not yet written (c.wrote false: a challenge or
// hello before it), idempotent, or a node's heartbeat or registration,
// whose unknown outcome the node loop mends by sending the next one.
// A job's registration or deregistration, or a drain, once written waits
// for its context: cut, its outcome would be unknown on a controller that
// may only be slow.
func cuttable(op wire.Op) bool {
	switch op {
	case wire.OpChallenge, wire.OpNodeHello, wire.OpHeartbeat, wire.OpRegisterNode:
		return true
	}
	return idempotent(op)
}

// watch is a probe of the controller that runs while a call waits for its
// reply.
type watch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	stopped bool
	stalled bool
}

// watch starts probing the controller at conn's remote address while a
// reply is awaited on conn (until stop, or ctx ends). A probe that meets
// silence cuts the wait short by moving conn's deadline to the past.
func (c *Client) watch(ctx context.Context, conn net.Conn) *watch {
	ctx, cancel := context.WithCancel(ctx)
	w := &watch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTimer(stallAfter)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			err := c.probe(ctx, conn.RemoteAddr().String())
			if silent(err) && ctx.Err() == nil {
				if ownStall(time.Since(start)) {
					t.Reset(0) // the client's own stall, not the controller's silence: probe again
					continue
				}
				w.mu.Lock()
				if !w.stopped {
					w.stalled = true
					conn.SetDeadline(time.Unix(1, 0))
				}
				w.mu.Unlock()
				return
			}
			t.Reset(stallEvery)
		}
	}()
	return w
}

// stop ends the probing and reports whether a probe met silence (the wait
// was cut short). Once it returns, the probe no longer touches the
// connection. A nil watch (no probing) reports false.
func (w *watch) stop() bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	w.stopped = true
	stalled := w.stalled
	w.mu.Unlock()
	w.cancel()
	<-w.done
	return stalled
}

// ownStall reports whether a probe that met silence took so much longer
// than its bound (stallWait) that the client itself did not run meanwhile
// (a stop, a stall of its host): the probe's deadline then passed with the
// controller's answer unread, perhaps in the socket. Such a probe is made
// again at once. A controller that is silent ends a probe at stallWait,
// give or take the client's scheduling, well within stallWait/2.
func ownStall(took time.Duration) bool { return took > stallWait+stallWait/2 }

// silent reports whether err, a probe's, is silence: a timeout, or a
// refusal (nothing listens: the process is gone). An end of the
// connection or a reset is an answer (a controller at a connection limit
// closes a new one unanswered; a stopped one closes nothing).
func silent(err error) bool {
	return err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH))
}

// probe opens a new connection to the controller at addr (the address the
// call's connection reached: no name is resolved again) and returns nil
// once it answers a challenge on it within stallWait (after the TLS
// handshake, with Options.TLS).
func (c *Client) probe(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, stallWait)
	defer cancel()
	conn, err := c.dialRaw(ctx, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if tc, ok := conn.(*tls.Conn); ok {
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
	}
	req := (&wire.Challenge{}).Encode(flatbuffers.NewBuilder(64))
	if _, err := conn.Write(wire.AppendControlFrame(nil, wire.OpChallenge, 1, wire.CodeOK, req)); err != nil {
		return err
	}
	if probeWritten != nil {
		probeWritten()
	}
	// The whole reply is read (and over TLS the session tickets before
	// it), so the close sends no reset: the controller logged each probe
	// closed with its reply unread as a warning (an HA trial: 97 in 8
	// minutes).
	lim := wire.ControlLimits()
	_, _, err = wire.ReadControlFrame(bufio.NewReader(conn), &lim, nil)
	var we *wire.Error
	if errors.As(err, &we) {
		return nil // a reply that is not a challenge's: an answer still
	}
	return err
}

// probeWritten, when not nil, runs between a probe's challenge and the
// read of its answer (a test's stall of the client).
var probeWritten func()

// dialRaw connects to addr (c's controller, or the address a connection
// to it reached), over TLS with Options.TLS (verified as c's address's
// host), without the TLS handshake (the caller makes it, bounded).
func (c *Client) dialRaw(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: c.opt.DialTimeout}
	if c.opt.LocalIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.opt.LocalIP)}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil || c.opt.TLS == nil {
		return conn, err
	}
	cfg := c.opt.TLS
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(c.addr)
		if err != nil {
			conn.Close()
			return nil, err
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	return tls.Client(conn, cfg), nil
}

// handshake makes conn's TLS handshake (if it is a TLS connection), bounded
// by ctx and by stallAfter+stallWait: a controller that has not finished it
// by then returns ErrUnresponsive.
func handshake(ctx context.Context, conn net.Conn) error {
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return nil
	}
	hctx, cancel := context.WithTimeout(ctx, stallAfter+stallWait)
	defer cancel()
	err := tc.HandshakeContext(hctx)
	if err != nil && ctx.Err() == nil && hctx.Err() != nil {
		return fmt.Errorf("%w (no TLS handshake within %v: %v)", ErrUnresponsive, stallAfter+stallWait, err)
	}
	return err
}
