package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Code is a wire-visible error code. The numbers are stable: never renumber
// or reuse one; add new codes at the end of the registry.
type Code uint16

// The registry.
const (
	CodeOK           Code = 0  // success
	CodeMalformed    Code = 1  // the frame or its flatbuffer is not well formed
	CodeVersion      Code = 2  // unsupported protocol version
	CodeTooLarge     Code = 3  // a length exceeds the receiver's limits
	CodeUnknownOp    Code = 4  // the opcode is not known to the receiver
	CodeNotFound     Code = 5  // no value under that key
	CodeNoSpace      Code = 6  // the tier or device is full; nothing stored changed
	CodeUnknownJob   Code = 7  // the job is not registered
	CodeBadToken     Code = 8  // the capability token is missing or wrong for the job
	CodeStaleEpoch   Code = 9  // the client's placement map is older than the node's
	CodeExists       Code = 10 // the name already exists (create without overwrite)
	CodeIO           Code = 11 // a device failed the transfer
	CodeInternal     Code = 12 // a bug or unexpected state on the server
	CodeDraining     Code = 13 // the node is draining and takes no new data
	CodeBusy         Code = 14 // too many requests in flight; retry later
	CodeBadKey       Code = 15 // an empty, over-long or ill-formed name: key, job id, job name, node address
	CodeUnsupported  Code = 16 // the operation is not supported here
	CodeClosed       Code = 17 // the server is shutting down
	CodeNotDirectory Code = 18 // a directory call on a non-directory
	CodeUnavailable  Code = 19 // no live node holds the data (node dead)
	CodeRevoked      Code = 20 // the job's token was revoked (job deregistered) or has expired
	CodeLimit        Code = 21 // a per-client or per-cluster limit was reached; the message names it
	CodeLost         Code = 22 // the value's node left the map: the data is gone, recompute it
	CodeConflict     Code = 23 // a conditional operation's condition did not hold; nothing changed
	CodeNotLeader    Code = 24 // this controller is not the elected one; the message is the leader's address ("" while none is)
	CodeForbidden    Code = 25 // the caller's credential verified, but its role or tenant does not allow the operation
)

var codeNames = [...]string{
	CodeOK: "ok", CodeMalformed: "malformed frame", CodeVersion: "unsupported version",
	CodeTooLarge: "too large", CodeUnknownOp: "unknown opcode", CodeNotFound: "not found",
	CodeNoSpace: "no space", CodeUnknownJob: "unknown job", CodeBadToken: "bad token",
	CodeStaleEpoch: "stale map epoch", CodeExists: "already exists", CodeIO: "I/O error",
	CodeInternal: "internal error", CodeDraining: "node draining", CodeBusy: "busy",
	CodeBadKey: "bad name", CodeUnsupported: "unsupported", CodeClosed: "closed",
	CodeNotDirectory: "not a directory", CodeUnavailable: "unavailable",
	CodeRevoked: "token revoked", CodeLimit: "limit reached", CodeLost: "lost",
	CodeConflict: "conflict", CodeNotLeader: "not leader", CodeForbidden: "forbidden",
}

// Known reports whether c is one of the codes above: a peer's reply
// with another is from a newer protocol or garbage.
func (c Code) Known() bool { return int(c) < len(codeNames) && codeNames[c] != "" }

func (c Code) String() string {
	if c.Known() {
		return codeNames[c]
	}
	return "code " + strconv.Itoa(int(c))
}

// Error is an error reply, or a protocol violation detected locally. It
// matches any other *Error with the same Code under errors.Is, so callers
// write errors.Is(err, wire.ErrNotFound).
type Error struct {
	Code  Code
	Msg   string // detail; may be empty
	Epoch uint64 // with CodeStaleEpoch: the node's current epoch
}

func (e *Error) Error() string {
	s := "wire: " + e.Code.String()
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Code == CodeStaleEpoch {
		s += fmt.Sprintf(" (current epoch %d)", e.Epoch)
	}
	return s
}

// Is matches errors with the same code. A target that is an *Error (the
// sentinels) is compared without errors.As, which allocates.
func (e *Error) Is(target error) bool {
	if t, ok := target.(*Error); ok {
		return t.Code == e.Code
	}
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Errorf returns an *Error with code c and a formatted detail.
func Errorf(c Code, format string, a ...any) *Error {
	return &Error{Code: c, Msg: fmt.Sprintf(format, a...)}
}

// CodeOf returns the code of err if it is (or wraps) an *Error, else
// CodeInternal; nil maps to CodeOK.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorOf returns the *Error a server answers err with, keeping err's
// detail:
//
//   - err itself when it is an *Error, so a sentinel (or any error
//     allocated once) is answered without allocating;
//   - for an error that wraps an *Error (the first errors.As finds), that
//     error's Code and Epoch with err's whole message as Msg, in which the
//     wrapped error's own text ("wire: too large: value too large for
//     tier") is given as its Msg alone, so the reply names its code once:
//     fmt.Errorf("dram tier: %d-byte value: %w", n, ErrTooLarge) is
//     answered "wire: too large: dram tier: 5000-byte value: value too
//     large for tier";
//   - CodeInternal with err's message for any other error.
//
// nil gives nil.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	if we, ok := err.(*Error); ok {
		return we
	}
	var we *Error
	if !errors.As(err, &we) {
		return &Error{Code: CodeInternal, Msg: err.Error()}
	}
	inner := we.Msg
	if inner == "" {
		inner = we.Code.String()
	}
	msg := strings.Replace(err.Error(), we.Error(), inner, 1)
	return &Error{Code: we.Code, Msg: msg, Epoch: we.Epoch}
}

// Sentinels, one per code, for errors.Is.
var (
	ErrMalformed    = &Error{Code: CodeMalformed}
	ErrVersion      = &Error{Code: CodeVersion}
	ErrTooLarge     = &Error{Code: CodeTooLarge}
	ErrUnknownOp    = &Error{Code: CodeUnknownOp}
	ErrNotFound     = &Error{Code: CodeNotFound}
	ErrNoSpace      = &Error{Code: CodeNoSpace}
	ErrUnknownJob   = &Error{Code: CodeUnknownJob}
	ErrBadToken     = &Error{Code: CodeBadToken}
	ErrStaleEpoch   = &Error{Code: CodeStaleEpoch}
	ErrExists       = &Error{Code: CodeExists}
	ErrIO           = &Error{Code: CodeIO}
	ErrInternal     = &Error{Code: CodeInternal}
	ErrDraining     = &Error{Code: CodeDraining}
	ErrBusy         = &Error{Code: CodeBusy}
	ErrBadKey       = &Error{Code: CodeBadKey}
	ErrUnsupported  = &Error{Code: CodeUnsupported}
	ErrClosed       = &Error{Code: CodeClosed}
	ErrNotDirectory = &Error{Code: CodeNotDirectory}
	ErrUnavailable  = &Error{Code: CodeUnavailable}
	ErrRevoked      = &Error{Code: CodeRevoked}
	ErrLimit        = &Error{Code: CodeLimit}
	ErrLost         = &Error{Code: CodeLost}
	ErrConflict     = &Error{Code: CodeConflict}
	ErrNotLeader    = &Error{Code: CodeNotLeader}
	ErrForbidden    = &Error{Code: CodeForbidden}
)

// ErrShortHeader means fewer than HeaderLen bytes were given: wait for more.
var ErrShortHeader = errors.New("wire: short header")

// Protocol violations found while parsing, allocated once.
var (
	errBadMagic        = &Error{Code: CodeMalformed, Msg: "bad magic"}
	errBadVersion      = &Error{Code: CodeVersion, Msg: "want version 1"}
	errMetaTooLarge    = &Error{Code: CodeTooLarge, Msg: "metadata length over limit"}
	errPayloadTooLarge = &Error{Code: CodeTooLarge, Msg: "payload length over limit"}
)
