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
	"so it did nothing: give the client the cluster's TLS directory (POCKET_TLS_DIR, or --tls-dir: the directory pocket up printed), " +
	"and unset POCKET_INSECURE if it is set")

// tlsProbeWait bounds servesTLS.
const tlsProbeWait = 3 * time.Second

// ErrControllerPlain is a call's error (wrapped, with the op and the
// address) when the client speaks TLS (Options.TLS) to a server that
// answers in plain TCP: the handshake fails on the server's first bytes,
// which are not a TLS record, and nothing of the call was sent. Such a
// server is a controller started with --insecure, or no controller at all
// (a storage node's port, another service): the message names both, since
// a new user given a node's port read only the first and followed its
// advice.
var ErrControllerPlain = errors.New("the server at this address answers in plain TCP, not TLS, and nothing was sent: " +
	"if it is a controller started with --insecure, give the client no TLS directory (unset POCKET_TLS_DIR; POCKET_INSECURE=1, or the CLI's --insecure); " +
	"if it is a storage node's port or another service, give the controller's address (pocket up and pocket controller print it)")

// mismatch is the error of a call that failed on err because the client
// and the controller disagree on TLS, which trying again does not mend:
// ErrControllerTLS (a plain client, a controller serving TLS: asked of
// the controller once a call, *probed, when a fresh connection ended
// before any byte of the reply, an EOF or a reset), ErrControllerPlain
// (a TLS client, a plain controller), or err itself when it is a TLS
// certificate the client does not trust or the controller's TLS alert
// (it refuses the client's). nil for any other failure.
// Before, a call that may be sent again (get-map, status) retried such a
// failure until its context ended: a new user's OpenJob without the TLS
// directory took 19.6 s to fail with "EOF".
func (c *Client) mismatch(ctx context.Context, reused bool, err error, probed *bool) error {
	if c.opt.TLS != nil {
		var rh tls.RecordHeaderError
		var cv *tls.CertificateVerificationError
		var oe *net.OpError
		switch {
		case errors.As(err, &rh):
			return ErrControllerPlain
		case errors.As(err, &cv):
			return err
		case errors.As(err, &oe) && oe.Op == "remote error":
			// The controller's TLS alert: it refuses the client's
			// certificate (another cluster's CA, a role it does not
			// take). A hostile re-check's OpenJob waited its whole 60 s.
			return err
		}
		return nil
	}
	if *probed || reused || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	*probed = true
	if c.servesTLS(ctx) {
		return ErrControllerTLS
	}
	return nil
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
