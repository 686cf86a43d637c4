package controller

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestMaxConnsFitsTheDescriptorLimit: MaxConns is lowered to what the
// descriptor limit leaves beside connReserve, with a warning, so that the
// controller meets its own bound (where it replaces its longest-idle
// connection) before its accepts fail; a limit with room, or none known,
// leaves it.
func TestMaxConnsFitsTheDescriptorLimit(t *testing.T) {
	for _, c := range []struct {
		limit uint64
		want  int
		warns bool
	}{
		{1024, 1024 - connReserve, true},
		{20000, 1024, false},
		{1024 + connReserve, 1024, false},
		{0, 1024, false},
		{100, 16, true},
	} {
		var log bytes.Buffer
		cfg := Config{MaxConns: 1024, Logger: slog.New(slog.NewTextHandler(&log, nil))}
		cfg.fitConns(c.limit)
		if cfg.MaxConns != c.want || strings.Contains(log.String(), "RLIMIT_NOFILE") != c.warns {
			t.Errorf("limit %d: MaxConns %d, want %d; logged %q", c.limit, cfg.MaxConns, c.want, log.String())
		}
	}
}
