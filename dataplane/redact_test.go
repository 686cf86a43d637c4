package dataplane_test

import (
	"testing"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/redact/redacttest"
)

// TestPrintingHidesTheSecrets: a migration's job prints its token, and a
// token guard the cluster secret, redacted for every fmt verb (and slog).
func TestPrintingHidesTheSecrets(t *testing.T) {
	tok := []byte("tok-SECRET-0123456789abcdef")
	redacttest.Check(t, "MigrateJob", dataplane.MigrateJob{Job: "sort-3", Token: tok}, tok)
	secret := []byte("cluster-SECRET-0123456789")
	redacttest.CheckFmt(t, "*TokenGuard", dataplane.NewTokenGuard(secret), secret)
}
