package controller

import (
	"fmt"
	"log/slog"

	"github.com/pocketstore/pocket/internal/redact"
)

// Format prints the configuration as fmt would, Secret redacted ("[redacted
// N bytes]").
func (c Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, c) }

// LogValue is the configuration as log/slog records it, Secret redacted.
func (c Config) LogValue() slog.Value { return redact.LogValue(c) }

// controllerView is what a Controller prints: its configuration.
type controllerView struct{ Config Config }

// Format prints the controller's configuration, the secret redacted.
func (c *Controller) Format(f fmt.State, verb rune) {
	if c == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	redact.FormatAs(f, verb, "&controller.Controller", controllerView{Config: c.cfg})
}
