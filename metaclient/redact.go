package metaclient

import (
	"fmt"
	"log/slog"

	"github.com/pocketstore/pocket/internal/redact"
)

// Options, Client and Controllers print the cluster secret redacted
// ("[redacted N bytes]") for every fmt verb and in log/slog.

// Format prints the options as fmt would, Secret redacted.
func (o Options) Format(f fmt.State, verb rune) { redact.Format(f, verb, o) }

// LogValue is the options as log/slog records them, Secret redacted.
func (o Options) LogValue() slog.Value { return redact.LogValue(o) }

// clientView is what a Client or Controllers prints: its addresses and
// options, the options' Secret redacted.
type clientView struct {
	Addrs   []string
	Options Options
}

// Format prints the client's controller addresses and options, the
// cluster secret redacted.
func (c *Client) Format(f fmt.State, verb rune) {
	if c == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	redact.FormatAs(f, verb, "&metaclient.Client", clientView{Addrs: []string{c.addr}, Options: c.opt})
}

// Format prints the controllers' addresses and options, the cluster
// secret redacted.
func (c *Controllers) Format(f fmt.State, verb rune) {
	if c == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	c.mu.Lock()
	addrs := append([]string(nil), c.addrs...)
	c.mu.Unlock()
	redact.FormatAs(f, verb, "&metaclient.Controllers", clientView{Addrs: addrs, Options: c.opt})
}
