package metaclient_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// TestPlainCallToATLSControllerIsDefinite: a registration or
// deregistration sent over plain TCP to a controller that serves TLS
// fails with ErrControllerTLS, naming POCKET_TLS_DIR, not an
// *OutcomeUnknownError: the controller read it as a bad handshake and
// did nothing. Before, 'the connection failed after the request was sent,
// so its outcome is unknown (the controller may have registered the job;
// check pocket status): EOF'. A plain server that reads a registration
// and closes the connection (it may have acted) stays OutcomeUnknown.
func TestPlainCallToATLSControllerIsDefinite(t *testing.T) {
	srv, err := pki.ServerConfig(tlsDir(t), pki.Members[pki.RoleController])
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := controller.New(controller.Config{Secret: secret, TLS: srv, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	a, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mc := metaclient.New(a.String(), metaclient.Options{Logger: quiet, RetryFor: -1})
	defer mc.Close()
	_, err = mc.RegisterJob(ctx, "plain", wire.JobHints{})
	if !errors.Is(err, metaclient.ErrControllerTLS) || errors.Is(err, metaclient.ErrOutcomeUnknown) ||
		!strings.Contains(err.Error(), "POCKET_TLS_DIR") || !strings.Contains(err.Error(), "did nothing") {
		t.Errorf("register over plain TCP to a TLS controller: %v; want ErrControllerTLS naming POCKET_TLS_DIR", err)
	}
	if _, err := mc.DeregisterJob(ctx, "plain-1", []byte("token")); !errors.Is(err, metaclient.ErrControllerTLS) {
		t.Errorf("deregister over plain TCP to a TLS controller: %v; want ErrControllerTLS", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			readRequest(conn) // the registration arrives, and the server dies
			conn.Close()
		}
	}()
	plain := metaclient.New(ln.Addr().String(), metaclient.Options{Logger: quiet, RetryFor: -1})
	defer plain.Close()
	if _, err := plain.RegisterJob(ctx, "crashed", wire.JobHints{}); !errors.Is(err, metaclient.ErrOutcomeUnknown) {
		t.Errorf("register closed unanswered by a plain server: %v; want OutcomeUnknown", err)
	}
}

// TestTLSMismatchFailsAtOnce: a call that may be sent again (get-map,
// status) fails at once, naming the fix, when the client and the
// controller disagree on TLS or the client does not trust the
// controller's certificate. Before, each was retried until the call's
// context ended, and answered "EOF" or "tls: first record does not look
// like a TLS handshake" (a new user's OpenJob: 19.6 s of a 20 s context).
func TestTLSMismatchFailsAtOnce(t *testing.T) {
	dir := tlsDir(t)
	srv, err := pki.ServerConfig(dir, pki.Members[pki.RoleController])
	if err != nil {
		t.Fatal(err)
	}
	tlsCtl := startCtl(t, controller.Config{Secret: secret, TLS: srv, Logger: quiet})
	plainCtl := startCtl(t, controller.Config{Secret: secret, Logger: quiet})
	cli, err := pki.ClientConfig(dir, pki.Members[pki.RoleOperator])
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := pki.ClientConfig(tlsDir(t), pki.Members[pki.RoleOperator]) // another cluster's CA
	if err != nil {
		t.Fatal(err)
	}
	mixed := cli.Clone() // trusts the controller, shows another cluster's certificate
	mixed.Certificates = stranger.Certificates
	var cv *tls.CertificateVerificationError
	var oe *net.OpError
	for _, c := range []struct {
		name string
		addr string
		tls  *tls.Config
		want func(error) bool
	}{
		{"plain client, TLS controller", tlsCtl, nil, func(err error) bool {
			return errors.Is(err, metaclient.ErrControllerTLS) && strings.Contains(err.Error(), "POCKET_TLS_DIR")
		}},
		{"TLS client, plain controller", plainCtl, cli, func(err error) bool {
			return errors.Is(err, metaclient.ErrControllerPlain) && strings.Contains(err.Error(), "--insecure")
		}},
		{"TLS client of another CA", tlsCtl, stranger, func(err error) bool { return errors.As(err, &cv) }},
		{"client certificate of another CA", tlsCtl, mixed, func(err error) bool {
			return errors.As(err, &oe) && oe.Op == "remote error"
		}},
	} {
		mc := metaclient.New(c.addr, metaclient.Options{Logger: quiet, TLS: c.tls})
		for _, call := range []struct {
			op string
			do func(context.Context) error
		}{
			{"get-map", func(ctx context.Context) error { _, err := mc.GetMap(ctx, "job-1", []byte("token")); return err }},
			{"status", func(ctx context.Context) error { _, err := mc.Status(ctx); return err }},
		} {
			// Retried, either would run to near its context's end: half
			// of it is the bound of a call that was not.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			start := time.Now()
			err := call.do(ctx)
			if took := time.Since(start); took > 10*time.Second || !c.want(err) {
				t.Errorf("%s: %s answered after %v: %v", c.name, call.op, took.Round(time.Millisecond), err)
			}
			cancel()
		}
		mc.Close()
	}
}

// startCtl starts a controller of cfg on loopback, closed when the test
// ends, and returns its address.
func startCtl(t *testing.T, cfg controller.Config) string {
	t.Helper()
	ctl, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	a, err := ctl.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return a.String()
}
