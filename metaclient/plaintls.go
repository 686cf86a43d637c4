package metaclient

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// ErrControllerTLS is a call's error (wrapped, with the op and the
// address) when the client speaks plain TCP (no Options.TLS) to a
// controller that serves TLS: the controller reads the request's first
// bytes as a bad TLS handshake and closes the connection without acting
// on it, so the call certainly did nothing, where a lost connection after
// a request that is not idempotent would otherwise be an
// *OutcomeUnknownError.
var ErrControllerTLS = errors.New("the controller serves TLS and closed this plain TCP connection without reading the request, " +
	"so it did nothing: give the client the cluster's TLS directory (POCKET_TLS_DIR, or --tls-dir: the directory pocket up printed)")

// tlsProbeWait bounds servesTLS.
const tlsProbeWait = 3 * time.Second

// plainToTLS reports whether err, the transport error of a call written
// on a fresh plain TCP connection (not reused), is a TLS controller's
// refusal of it: the connection ended before any byte of the reply (EOF,
// or a reset: the controller closed it with the request unread) and the
// controller answers a TLS handshake.
func (c *Client) plainToTLS(ctx context.Context, reused bool, err error) bool {
	if c.opt.TLS != nil || reused || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		return false
	}
	return c.servesTLS(ctx)
}

// servesTLS reports whether the controller answers a TLS handshake on a
// new connection: one that completes, or a TLS alert from the controller
// (a certificate it wants). The probe verifies nothing and sends nothing
// over the connection: it only asks whether a TLS server listens. A plain
// controller (one that lost the connection after reading the request,
// and may have acted on it) answers no handshake.
func (c *Client) servesTLS(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tlsProbeWait)
	defer cancel()
	nd := &net.Dialer{}
	if c.opt.LocalIP != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.opt.LocalIP)}
	}
	d := tls.Dialer{NetDialer: nd, Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err == nil {
		conn.Close()
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" // the controller sent a TLS alert
}
