package metaclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire"
)

// ErrUnresponsive is the transport error of a call whose controller
// answered nothing while it waited, not even a challenge asked for on a
// new connection (stallAfter, stallWait), nor finished a TLS handshake
// within stallAfter+stallWait: a controller process that is stopped
// (SIGSTOP, a stall of its host) or cut off. The kernel of a stopped
// process still accepts connections and their bytes, so without it a call
// waited for its whole context on such a controller, and Controllers
// never moved on to the one elected in its place. It moves a call on
// like any transport error; for a request that was written and is not
// idempotent it is wrapped in an *OutcomeUnknownError, and Controllers
// tries another controller first on the next call.
var ErrUnresponsive = errors.New("the controller answered nothing, not even a challenge on a new connection: presumed stopped")

// A call that has waited stallAfter for its reply asks the controller for
// a challenge on a new connection (wire.OpChallenge, answered at once by
// any running controller, leader or not, busy or not: it takes no lock),
// and again every stallEvery while the wait goes on; a probe unanswered
// within stallWait ends the call with ErrUnresponsive. A controller
// holding a call (a map fetch held for its nodes, a registration waiting
// for nodes to start) answers the probes, so such calls wait on.
const (
	stallAfter = 500 * time.Millisecond
	stallEvery = time.Second
	stallWait  = time.Second
)

// watch is a probe of the controller that runs while a call waits for its
// reply on conn.
type watch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	stopped bool
	stalled bool
}

// watch starts probing c's controller while a reply is awaited on conn
// (until stop, or ctx ends). A probe that goes unanswered cuts the wait
// short by moving conn's deadline to the past.
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
			if err := c.probe(ctx); err != nil && ctx.Err() == nil {
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

// stop ends the probing and reports whether a probe went unanswered (the
// wait was cut short). Once it returns, the probe no longer touches the
// connection.
func (w *watch) stop() bool {
	w.mu.Lock()
	w.stopped = true
	stalled := w.stalled
	w.mu.Unlock()
	w.cancel()
	<-w.done
	return stalled
}

// probe asks c's controller for a challenge on a new connection and
// returns nil once any byte of an answer arrives (a refusal, a "not
// leader" or a limit's refusal are answers too), or why none did within
// stallWait.
func (c *Client) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, stallWait)
	defer cancel()
	conn, err := c.dialRaw(ctx)
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
	var one [1]byte
	_, err = io.ReadFull(conn, one[:])
	return err
}

// dialRaw connects to c's controller, over TLS with Options.TLS, without
// the TLS handshake (the caller makes it, bounded).
func (c *Client) dialRaw(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: c.opt.DialTimeout}
	if c.opt.LocalIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.opt.LocalIP)}
	}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
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
