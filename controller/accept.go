package controller

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// Accept retries: the first wait after a failed accept, and the longest
// (each failure in a row doubles it), as net/http's Server waits.
const (
	acceptRetryFirst = 5 * time.Millisecond
	acceptRetryMax   = time.Second
)

// acceptRetry is an accept loop's handling of failed accepts. A failure
// other than the listener's close (out of descriptors, EMFILE or ENFILE;
// out of memory; a connection reset before it was accepted; a timeout)
// is waited out, and the loop goes on: the condition passes when the
// connections holding the descriptors go. Before, the loop returned on
// the first such failure, and a controller that a flood of connections
// (to its metrics port) took to its descriptor limit once never accepted
// a connection again, though the flood had ended and the process ran on:
// no client could reach it and no node could reconnect, so every node's
// lease lapsed (a hostile trial). A listener that fails for good without
// being closed is so retried once a second, each second's failures
// logged.
type acceptRetry struct {
	wait     time.Duration
	loggedAt time.Time
	failed   int // failures since the last log line
}

// fail reports whether the loop must end: err is the listener's close
// (net.ErrClosed). Otherwise it logs the failure to log, at most once a
// second with the count since the last line, waits, and returns false.
func (r *acceptRetry) fail(err error, log *slog.Logger) bool {
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	r.failed++
	if now := time.Now(); now.Sub(r.loggedAt) >= time.Second {
		log.Error("controller: accept failed; retrying (connections are refused meanwhile: out of descriptors?)",
			"err", err, "failures", r.failed)
		r.loggedAt, r.failed = now, 0
	}
	r.wait = min(max(2*r.wait, acceptRetryFirst), acceptRetryMax)
	time.Sleep(r.wait)
	return false
}

// ok resets the waits after an accept that succeeded.
func (r *acceptRetry) ok() { r.wait = 0 }
