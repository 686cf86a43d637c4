package client

import (
	"fmt"
	"log/slog"

	"github.com/pocketstore/pocket/internal/redact"
)

// ConnOptions and Conn print the job's capability token redacted ("[redacted
// N bytes]") for every fmt verb and in log/slog.

// Format prints the options as fmt would, Token redacted.
func (o ConnOptions) Format(f fmt.State, verb rune) { redact.Format(f, verb, o) }

// LogValue is the options as log/slog records them, Token redacted.
func (o ConnOptions) LogValue() slog.Value { return redact.LogValue(o) }

// connView is what a Conn prints: its node and options.
type connView struct {
	Node    string
	Options ConnOptions
}

// Format prints the connection's node and options, the token redacted.
func (c *Conn) Format(f fmt.State, verb rune) {
	if c == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	node := ""
	if c.nc != nil {
		node = c.nc.RemoteAddr().String()
	}
	redact.FormatAs(f, verb, "&client.Conn", connView{Node: node, Options: c.opts})
}
