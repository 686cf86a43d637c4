package wire

import (
	"fmt"
	"log/slog"

	"github.com/pocketstore/pocket/internal/redact"
)

// The messages that carry a job's capability token print it redacted
// ("[redacted N bytes]") for every fmt verb and in log/slog.

// Format prints the request as fmt would, Token redacted.
func (r Request) Format(f fmt.State, verb rune) { redact.Format(f, verb, r) }

// LogValue is the request as log/slog records it, Token redacted.
func (r Request) LogValue() slog.Value { return redact.LogValue(r) }

// Format prints the entry as fmt would, Token redacted.
func (e JobEpoch) Format(f fmt.State, verb rune) { redact.Format(f, verb, e) }

// LogValue is the entry as log/slog records it, Token redacted.
func (e JobEpoch) LogValue() slog.Value { return redact.LogValue(e) }

// Format prints the reference as fmt would, Token redacted.
func (r JobRef) Format(f fmt.State, verb rune) { redact.Format(f, verb, r) }

// LogValue is the reference as log/slog records it, Token redacted.
func (r JobRef) LogValue() slog.Value { return redact.LogValue(r) }

// Format prints the map as fmt would, Token redacted.
func (m PlacementMap) Format(f fmt.State, verb rune) { redact.Format(f, verb, m) }

// LogValue is the map as log/slog records it, Token redacted.
func (m PlacementMap) LogValue() slog.Value { return redact.LogValue(m) }
