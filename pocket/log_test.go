package pocket

import (
	"io"
	"log/slog"
)

// quietLog discards what the servers a test starts log (a logger writing
// to t.Log could be called after the test returned, which panics).
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))
