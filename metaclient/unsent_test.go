package metaclient_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller"
	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// resetter accepts connections and resets the first n at once, before
// reading anything (a controller killed as the client connects: over TLS
// the client's handshake meets the reset, so nothing of its request is
// written), then forwards the others to the controller at to.
func resetter(t *testing.T, to string, n int32) (string, *atomic.Int32) {
	return interposer(t, to, n, func(conn net.Conn) {
		conn.(*net.TCPConn).SetLinger(0) // close with a reset
		conn.Close()
	})
}

// tlsDir makes a cluster's TLS directory (as pocket up does) for
// 127.0.0.1.
func tlsDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	if err := pki.Init(dir, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestUnsentCallsRetried: a call that is not idempotent (deregister,
// register, drain) whose connection the controller resets before any
// byte of the request was written (in the TLS handshake, as when the
// controller is killed) is sent again, and gets the controller's answer.
// On the old code it failed at once with the bare transport error
// ("metaclient: deregister-job ADDR: read: connection reset by peer"),
// which said neither that it was not sent nor what the controller did.
func TestUnsentCallsRetried(t *testing.T) {
	dir := tlsDir(t)
	srv, err := pki.ServerConfig(dir, pki.Members[pki.RoleController])
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
	cli, err := pki.ClientConfig(dir, pki.Members[pki.RoleOperator])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		name string
		call func(*metaclient.Client) error
	}{
		{"deregister", func(mc *metaclient.Client) error {
			_, err := mc.DeregisterJob(ctx, "no-such-job-1", []byte("token"))
			return err
		}},
		{"register", func(mc *metaclient.Client) error { // no node: the controller refuses it
			_, err := mc.RegisterJob(ctx, "j", wire.JobHints{})
			return err
		}},
		{"drain", func(mc *metaclient.Client) error {
			_, err := mc.Drain(ctx, "127.0.0.1:1", 0)
			return err
		}},
	} {
		addr, seen := resetter(t, a.String(), 2)
		mc := metaclient.New(addr, metaclient.Options{TLS: cli, Secret: secret, Logger: quiet, RetryFor: 10 * time.Second})
		err := c.call(mc)
		mc.Close()
		var we *wire.Error
		if !errors.As(err, &we) || errors.Is(err, metaclient.ErrOutcomeUnknown) {
			t.Errorf("%s through 2 connections reset in the handshake: %v; want the controller's answer", c.name, err)
		}
		if got := seen.Load(); got != 3 {
			t.Errorf("%s: %d connections, want 3 (2 reset, then the answer)", c.name, got)
		}
	}

	// With no retry left, the error says the request was not sent.
	addr, _ := resetter(t, a.String(), 1000)
	mc := metaclient.New(addr, metaclient.Options{TLS: cli, Logger: quiet, RetryFor: 300 * time.Millisecond})
	defer mc.Close()
	_, err = mc.DeregisterJob(ctx, "no-such-job-1", []byte("token"))
	if err == nil || errors.Is(err, metaclient.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "the request was not sent") {
		t.Errorf("deregister through connections always reset: %v; want an error saying it was not sent", err)
	}
}
