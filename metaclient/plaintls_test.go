package metaclient_test

import (
	"context"
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
