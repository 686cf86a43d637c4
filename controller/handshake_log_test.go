package controller

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/pocketstore/pocket/wire"
)

// TestHandshakeErrorNamesAPlainClient: a peer that sends plain TCP to a
// TLS controller is logged as not speaking TLS (CodeMalformed), not as a
// bad token (a new user's trial read "wire: bad token: TLS handshake ...
// first record does not look like a TLS handshake" after `pocket status
// --insecure`); other handshake failures stay CodeBadToken. Both keep the
// "(handshake)" rate-limit key.
func TestHandshakeErrorNamesAPlainClient(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}
	plain := handshakeError(addr, tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"})
	if wire.CodeOf(plain) != wire.CodeMalformed || !strings.Contains(plain.Error(), "does not speak TLS") {
		t.Errorf("plain-TCP peer: %v (code %v); want CodeMalformed saying it does not speak TLS", plain, wire.CodeOf(plain))
	}
	cert := handshakeError(addr, errors.New("tls: client didn't provide a certificate"))
	if wire.CodeOf(cert) != wire.CodeBadToken || !strings.Contains(cert.Error(), "the peer's certificate was not accepted") {
		t.Errorf("certificate failure: %v (code %v); want CodeBadToken naming the peer's certificate", cert, wire.CodeOf(cert))
	}
	// The peer refused this controller's certificate (a hostile trial's
	// controller of another CA read each node's refusal as a bad token).
	ours := handshakeError(addr, &net.OpError{Op: "remote error", Err: errors.New("tls: unknown certificate authority")})
	if !strings.Contains(ours.Error(), "the peer refused this controller's certificate") {
		t.Errorf("the peer's alert: %v; want it to say this controller's certificate was refused", ours)
	}
	for _, err := range []error{plain, cert, ours} {
		var we *wire.Error
		if !errors.As(err, &we) || limitName(we.Msg) != "handshake" {
			t.Errorf("%v: rate-limit key %q, want handshake", err, limitName(we.Msg))
		}
	}
}

// TestHandshakeClosedByThePeerIsNoWarning: a peer that closed the
// connection during the handshake (EOF, a reset) is not logged as a
// refusal (handshakeError nil: newSession logs it at debug level). A new
// user's trial read "wire: bad token: TLS handshake ... EOF" for each
// stalled-controller probe that had given up while the controller was
// stopped.
func TestHandshakeClosedByThePeerIsNoWarning(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}
	for _, err := range []error{io.EOF, fmt.Errorf("read tcp: %w", syscall.ECONNRESET)} {
		if got := handshakeError(addr, err); got != nil {
			t.Errorf("peer closed (%v): %v; want nil", err, got)
		}
	}
}
