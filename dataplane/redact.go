package dataplane

import (
	"fmt"
	"log/slog"

	"github.com/pocketstore/pocket/internal/redact"
)

// Format prints the job as fmt would, Token redacted ("[redacted N
// bytes]").
func (m MigrateJob) Format(f fmt.State, verb rune) { redact.Format(f, verb, m) }

// LogValue is the job as log/slog records it, Token redacted.
func (m MigrateJob) LogValue() slog.Value { return redact.LogValue(m) }

// guardView is what a TokenGuard prints: its secret's length only.
type guardView struct {
	Secret []byte
	Bound  bool
}

// Format prints the guard, its secret redacted.
func (g *TokenGuard) Format(f fmt.State, verb rune) {
	if g == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	redact.FormatAs(f, verb, "&dataplane.TokenGuard", guardView{Secret: g.secret, Bound: g.jobs != nil})
}
