package client

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Whether a failed request reached its node
//
// A request that fails for want of its node (wire.CodeUnavailable) either
// never reached it whole, or was written before the connection was lost.
// Only the first is certainly unexecuted: a node executes a frame it read
// whole, and its reply can be lost after that. Do marks the first kind, so
// that callers can tell a request they may send again from one whose
// outcome is unknown:
//
//   - not sent: the dial failed, the connection was known dead before the
//     request was registered on it, or the write of its frame failed (the
//     bytes after the failure never left, and a node executes only a frame
//     it read whole);
//   - maybe sent: everything else, notably a connection lost once the
//     frame was written, while its reply was awaited.
//
// A request withdrawn because its context ended before any byte was
// written returns the context's error, which is neither.

// notSentError is the error of a request whose frame never reached its
// node whole. It unwraps to the error it marks (a *wire.Error, or an error
// wrapping one), so errors.Is and errors.As on codes and sentinels see
// through it.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// notSent marks err, an error of a request that certainly did not reach
// its node. A nil err stays nil; an error that is not a *wire.Error (a
// context's) is returned as it is.
func notSent(err error) error {
	var we *wire.Error
	if errors.As(err, &we) && !NotSent(err) {
		return &notSentError{err: err}
	}
	return err
}

// NotSent reports whether err (from Client.Do, possibly wrapped) is the
// error of a request that certainly never reached its node: a failed dial,
// a connection known dead before the request was put on it, or a frame
// whose write failed. Such a request changed nothing on
// the node and may be sent again whatever it does. False for any other
// error, including a wire.ErrUnavailable of a connection lost after the
// frame was written: the node may have executed that request,
// and its reply was lost.
func NotSent(err error) bool {
	var ns *notSentError
	return errors.As(err, &ns)
}

// MarkNotSent returns err marked as the error of a request that certainly
// did not reach its node (NotSent then reports true), for callers that
// fail a request before handing it to Do, such as one addressed to a node
// their map marks dead. err must be, or wrap, a *wire.Error; other errors
// are returned unchanged.
func MarkNotSent(err error) error { return notSent(err) }

// refusedError is the error of a dial the node's host refused (nothing
// listens at the address: the node process is not running there). It
// unwraps to its wire.ErrUnavailable.
type refusedError struct{ err *wire.Error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// dialErr is the wire.ErrUnavailable of a failed dial to addr, marked
// refused (Refused) when the host refused the connection.
func dialErr(addr string, err error) error {
	we := &wire.Error{Code: wire.CodeUnavailable, Msg: fmt.Sprintf("node %s: %v", addr, err)}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return &refusedError{err: we}
	}
	return we
}

// closedError is the error of a connection its node closed or reset
// (the end of its input, ECONNRESET, EPIPE) while a call was on it. It
// unwraps to its wire.ErrUnavailable.
type closedError struct{ err *wire.Error }

func (e *closedError) Error() string { return e.err.Error() }
func (e *closedError) Unwrap() error { return e.err }

// connErr is the wire.ErrUnavailable of mc's connection lost for why,
// marked closed (ClosedByNode) when the node closed or reset it.
func connErr(addr string, why error) error {
	we := &wire.Error{Code: wire.CodeUnavailable, Msg: fmt.Sprintf("node %s: connection lost: %v", addr, why)}
	var es errSilent
	if errors.As(why, &es) && !es.writing {
		return &silentError{err: we, silence: es.silence}
	}
	if errors.Is(why, io.EOF) || errors.Is(why, io.ErrUnexpectedEOF) ||
		errors.Is(why, syscall.ECONNRESET) || errors.Is(why, syscall.EPIPE) {
		return &closedError{err: we}
	}
	return we
}

// silentError is the error of a connection failed on silence
// (Options.Silence) with no frame being written: the requests on it were
// written whole, and the node may execute them when it resumes. It
// unwraps to its wire.ErrUnavailable.
type silentError struct {
	err     *wire.Error
	silence time.Duration
}

func (e *silentError) Error() string { return e.err.Error() }
func (e *silentError) Unwrap() error { return e.err }

// FailedOnSilence reports whether err (from Client.Do, possibly wrapped)
// is the loss of a connection on which the node sent nothing for silence
// (Options.Silence, returned) after the request was written whole: the
// node (frozen, stalled or cut off) may still execute it when it resumes.
// A connection failed while a frame was being written is not (the node
// drops a frame cut short).
func FailedOnSilence(err error) (silence time.Duration, ok bool) {
	var s *silentError
	if errors.As(err, &s) {
		return s.silence, true
	}
	return 0, false
}

// ClosedByNode reports whether err (from Client.Do, possibly wrapped) is
// the loss of a connection its node closed or reset: the node was there
// and ended the connection (an eviction at its connection limit, its
// shutdown, a proxy's reset), so a new connection may well be served. A
// connection failed on silence (Options.Silence: the node frozen or cut
// off), a malformed reply, a dial that failed or the client's own close
// is not.
func ClosedByNode(err error) bool {
	var c *closedError
	return errors.As(err, &c)
}

// Refused reports whether err (from Client.Do, possibly wrapped) is the
// error of a dial that the node's host refused: no process listens at the
// node's address, so the node is not running there (stopped, retired,
// dead, or not started yet). A timeout, an unreachable host or a
// connection lost after it was made is not a refusal: the node may still
// be running.
func Refused(err error) bool {
	var r *refusedError
	return errors.As(err, &r)
}
