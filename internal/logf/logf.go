// Package logf adapts the deprecated Logf callbacks of the server
// packages' configurations to the *slog.Logger they now take.
package logf

import (
	"log/slog"
	"strings"
)

// Logger returns a logger that hands each record to f as one text line
// (msg=... key=value ...), for callers that still set a Logf callback.
func Logger(f func(format string, args ...any)) *slog.Logger {
	return slog.New(slog.NewTextHandler(writer(f), &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // the callback adds its own time, if any
			}
			return a
		},
	}))
}

// writer passes each write, one record, to the callback.
type writer func(format string, args ...any)

func (w writer) Write(p []byte) (int, error) {
	w("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
