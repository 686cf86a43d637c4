package controller

import (
	"testing"

	"github.com/pocketstore/pocket/internal/redact/redacttest"
)

// TestPrintingHidesTheSecret: the controller's Config and the controller
// print the cluster secret redacted for every fmt verb and in log/slog.
func TestPrintingHidesTheSecret(t *testing.T) {
	secret := []byte("cluster-SECRET-0123456789")
	cfg := Config{Secret: secret}
	redacttest.Check(t, "Config", cfg, secret)
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	redacttest.CheckFmt(t, "*Controller", c, secret)
}
