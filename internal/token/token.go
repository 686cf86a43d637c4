// Package token issues and checks capability tokens: HMAC-SHA256 tags that
// prove the controller, which holds the cluster's shared secret, granted the
// bearer a right. Storage nodes hold the same secret and check a token on
// every request, so checking is constant-time and makes no heap allocation.
//
// # Format
//
// A token is Len bytes:
//
//	offset size field
//	0      1    kind   KindJob, KindAdmin or KindNode
//	1      32   tag    HMAC-SHA256(secret, kind || subject)
//
// The subject is the job id for KindJob and KindAdmin, the node's data-plane
// address for KindNode. The kind is inside the MAC, so a token of one kind
// never passes as another, and one job's token never passes for another job.
//
//   - KindJob: handed to a job's clients with its placement map; a node
//     accepts it for data operations on that job's keys.
//   - KindAdmin: made by the controller for its own requests about a job
//     (dropping a deregistered job's data); nodes accept it only there.
//   - KindNode: a node's proof, sent when it registers and heartbeats, that
//     it holds the cluster secret.
//
// Tokens carry no expiry: a job token is valid as long as the secret is.
// Job ids are unique within a controller's lifetime (see package controller
// for how ids avoid reuse across restarts).
//
// The textual form used by the CLI and environment (POCKET_TOKEN) is lower
// case hex; see Format and Parse.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// Kind says what a token grants. The numbers are part of the format.
type Kind byte

// Token kinds.
const (
	KindJob   Kind = 1
	KindAdmin Kind = 2
	KindNode  Kind = 3
)

// Len is the length of every token.
const Len = 1 + sha256.Size

// EnvSecret is the environment variable the controller and nodes read the
// shared secret from when no flag gives it.
const EnvSecret = "POCKET_SECRET"

// MinSecretLen is the shortest secret accepted: shorter keys make the HMAC
// guessable.
const MinSecretLen = 16

// ErrNoSecret means no secret was configured.
var ErrNoSecret = errors.New("token: no shared secret configured (set " + EnvSecret + ")")

// ErrShortSecret means the configured secret is shorter than MinSecretLen.
var ErrShortSecret = fmt.Errorf("token: shared secret shorter than %d bytes", MinSecretLen)

// maxInline is the longest subject tagged without allocating: job ids are at
// most wire.DefaultMaxJobLen (255) bytes, addresses shorter still.
const maxInline = 512

const blockSize = 64 // SHA-256 block size, the HMAC key pad length

// Sign returns a job token for job.
func Sign(secret, job []byte) []byte { return Append(nil, secret, KindJob, job) }

// SignAdmin returns the controller's admin token for requests about job.
func SignAdmin(secret, job []byte) []byte { return Append(nil, secret, KindAdmin, job) }

// SignNode returns the registration proof of the node serving at addr.
func SignNode(secret []byte, addr string) []byte {
	return Append(nil, secret, KindNode, []byte(addr))
}

// Verify reports whether tok is a valid job token for job.
func Verify(secret, job, tok []byte) bool { return Check(secret, KindJob, job, tok) }

// VerifyAdmin reports whether tok is a valid admin token for job.
func VerifyAdmin(secret, job, tok []byte) bool { return Check(secret, KindAdmin, job, tok) }

// VerifyNode reports whether tok is the valid proof for the node at addr.
func VerifyNode(secret []byte, addr string, tok []byte) bool {
	return Check(secret, KindNode, []byte(addr), tok)
}

// Append appends the token of kind for subject to dst.
func Append(dst, secret []byte, kind Kind, subject []byte) []byte {
	var tag [sha256.Size]byte
	mac(&tag, secret, kind, subject)
	dst = append(dst, byte(kind))
	return append(dst, tag[:]...)
}

// Check reports whether tok is a valid token of kind for subject. It runs
// in constant time with respect to the tag's contents and, for subjects up
// to 512 bytes, allocates nothing.
func Check(secret []byte, kind Kind, subject, tok []byte) bool {
	if len(tok) != Len || Kind(tok[0]) != kind {
		return false
	}
	var tag [sha256.Size]byte
	mac(&tag, secret, kind, subject)
	return subtle.ConstantTimeCompare(tag[:], tok[1:]) == 1
}

// mac computes HMAC-SHA256(secret, kind || subject) into tag. crypto/hmac
// allocates its hash states, so the common case is done by hand over stack
// buffers with sha256.Sum256 (RFC 2104: H(K^opad || H(K^ipad || m))).
func mac(tag *[sha256.Size]byte, secret []byte, kind Kind, subject []byte) {
	if len(subject) > maxInline {
		copy(tag[:], macLong(secret, kind, subject))
		return
	}
	var key [blockSize]byte
	if len(secret) > blockSize {
		s := sha256.Sum256(secret)
		copy(key[:], s[:])
	} else {
		copy(key[:], secret)
	}
	var inner [blockSize + 1 + maxInline]byte
	for i, k := range key {
		inner[i] = k ^ 0x36
	}
	inner[blockSize] = byte(kind)
	n := copy(inner[blockSize+1:], subject)
	ih := sha256.Sum256(inner[:blockSize+1+n])
	var outer [blockSize + sha256.Size]byte
	for i, k := range key {
		outer[i] = k ^ 0x5c
	}
	copy(outer[blockSize:], ih[:])
	*tag = sha256.Sum256(outer[:])
}

// macLong is the allocating path for subjects longer than maxInline; kept
// apart so its escaping buffers do not make mac's stack arrays escape.
func macLong(secret []byte, kind Kind, subject []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte{byte(kind)})
	h.Write(subject)
	return h.Sum(nil)
}

// Format returns the textual (hex) form of a token.
func Format(tok []byte) string { return hex.EncodeToString(tok) }

// Parse decodes the textual form of a token and checks its length.
func Parse(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("token: not hex: %w", err)
	}
	if len(b) != Len {
		return nil, fmt.Errorf("token: %d bytes, want %d", len(b), Len)
	}
	return b, nil
}

// NewSecret returns a fresh random secret in the textual form that
// POCKET_SECRET and the --secret flags take (64 hex digits).
func NewSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("token: new secret: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// SecretFrom returns the secret given by flag, or else by POCKET_SECRET. The
// secret's bytes are used as the HMAC key as written (a hex string from
// NewSecret is used as text, not decoded), so every process configured with
// the same string agrees.
func SecretFrom(flag string) ([]byte, error) {
	s := flag
	if s == "" {
		s = os.Getenv(EnvSecret)
	}
	if s == "" {
		return nil, ErrNoSecret
	}
	if len(s) < MinSecretLen {
		return nil, ErrShortSecret
	}
	return []byte(s), nil
}
