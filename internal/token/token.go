// Package token issues and checks capability tokens and proofs: HMAC-SHA256
// tags that prove the controller, which holds the cluster's shared secret,
// granted the bearer a right, or that a peer holds the secret. Storage
// nodes hold the same secret and check a token when a connection first
// uses it, so checking is constant-time and makes no heap allocation.
//
// # Format
//
// A token is Len (49) bytes:
//
//	offset size field
//	0      1    kind     KindJob or KindAdmin
//	1      8    gen      KindJob: the controller revision that registered
//	                     the job (little endian), masked (GenMask); else 0
//	9      8    expires  Unix milliseconds after which the token is void
//	                     (little endian); 0: never
//	17     32   tag      HMAC-SHA256(secret, kind || gen || expires || subject)
//
// The subject is the job id. The kind, gen and expiry are inside the MAC,
// so a token of one kind never passes as another, one job's token never
// passes for another job, and neither the generation nor the expiry can be
// changed by the bearer. A job token's gen is masked with bytes only the
// secret's holders can compute, one mask per job id (genMask): the
// bearer cannot read it. In plain, two tokens of one tenant told it how
// many state changes every other tenant made between its registrations
// (a hostile trial, 2026-12-06: 7 registrations of another tenant read
// as a difference of 8).
//
//   - KindJob: handed to a job's clients with its placement map; a node
//     accepts it for data operations on that job's keys until the job is
//     revoked (deregistered) or the token expires. Gen lets a node tell a
//     job it has not heard of yet (registered after the node's last word
//     from the controller) from one that is gone.
//   - KindAdmin: the admin token earlier releases sent bare in their drop
//     orders (so it may have been seen on the wire); no node takes it as
//     such, and it keys nothing.
//   - KindOrderKey: OrderKey(secret, job), the controller's key for its
//     orders about a job (dropping a deregistered job's data). It is
//     never sent, in this release or any earlier one: an order carries
//     OrderProof keyed with it (KindOrder below).
//
// Proofs are tags of the same construction (claims zero) that a peer sends
// to show it holds the secret, each bound to a nonce the controller chose
// for the connection (OpChallenge), so a recorded proof is worth nothing
// on any other connection:
//
//   - KindNode: NodeProof(secret, nonce, addr), a node's registration and
//     heartbeats.
//   - KindDrain: DrainProof(secret, nonce, addr, deadline), an operator's
//     order to drain the node at addr. A node proof never passes as one.
//   - KindEndJob: EndJobProof(secret, nonce, job), an operator's order to
//     end a job without its token (a job whose token was lost). A drain
//     or node proof never passes as one, nor one for another job.
//   - KindIncarnation: IncarnationProof(secret, nonce, incarnation), a
//     node's answer to the controller's question which process serves at
//     its address (wire.OpIncarnation); the nonce is the controller's.
//   - KindVersionsReply: VersionsReplyProof(key, nonce, versions, more),
//     a node's answer to the controller's versions order
//     (wire.OpVersions), keyed with the job's order key and bound to the
//     order's nonce: the controller drops chunks by what the answer says,
//     so an answer changed on the way (a manifest's version left out)
//     must not pass.
//   - KindDropReply: DropReplyProof(key, nonce, kept), a node's answer
//     to the controller's drop order (wire.OpDropJob): the bytes of the
//     job it keeps. A controller skips the sweep of a job whose nodes all
//     prove they keep none, so a changed answer must not pass.
//   - KindOrder: OrderProof(key, o), the controller's order about a job
//     sent to one node on the data plane (wire.OpDropJob). The order key
//     never travels: it is the key of the proof, which binds the
//     order to the node's address and incarnation, the opcode and header
//     flags, a nonce of the controller's and an expiry (Order). The node
//     checks it with VerifyOrder, judges the expiry with its clock
//     (OrderLife, OrderSkew) and refuses a nonce it has seen.
//
// The textual form used by the CLI and environment (POCKET_TOKEN) is lower
// case hex; see Format and Parse.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"
)

// Kind says what a token grants. The numbers are part of the format.
type Kind byte

// Token and proof kinds. 3 was the fixed node proof of the first format.
const (
	KindJob   Kind = 1
	KindAdmin Kind = 2
	KindNode  Kind = 5
	KindDrain Kind = 6
	// KindIncarnation proves a node's incarnation (IncarnationProof).
	KindIncarnation Kind = 7
	// KindOrder is the controller's order to one node (OrderProof).
	KindOrder Kind = 8
	// KindOrderKey is the key of a job's order proofs (OrderKey).
	KindOrderKey Kind = 9
	// KindEndJob is an operator's order to end a job (EndJobProof).
	KindEndJob Kind = 10
	// KindVersionsReply is a node's proof of its answer to the
	// controller's versions order (VersionsReplyProof).
	KindVersionsReply Kind = 11
	// KindDropReply is a node's proof of its answer to the controller's
	// drop order (DropReplyProof).
	KindDropReply Kind = 12
	// KindGenMask keys the mask of a job token's gen (genMask); never
	// sent.
	KindGenMask Kind = 13
)

// Layout of a token.
const (
	claimsLen = 16 // gen and expires
	headLen   = 1 + claimsLen
	// Len is the length of every token and proof.
	Len = headLen + sha256.Size
)

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
// most wire.DefaultMaxJobLen (255) bytes, addresses and proofs shorter still.
const maxInline = 512

const blockSize = 64 // SHA-256 block size, the HMAC key pad length

// Claims are what a job token says besides its job: the controller
// revision that registered the job and the expiry (zero: never).
type Claims struct {
	Gen     uint64
	Expires time.Time // millisecond resolution
}

// ExpiresMs is the expiry in Unix milliseconds, 0 for none.
func (c Claims) ExpiresMs() int64 {
	if c.Expires.IsZero() {
		return 0
	}
	return max(c.Expires.UnixMilli(), 1)
}

// Expired reports whether the claims' expiry is at or before now.
func (c Claims) Expired(now time.Time) bool {
	return !c.Expires.IsZero() && !now.Before(c.Expires)
}

// Sign returns a job token for job with zero claims (no generation, no
// expiry): for tests and standalone tools. The controller uses SignJob.
func Sign(secret, job []byte) []byte { return SignJob(secret, job, Claims{}) }

// SignJob returns the job token for job with claims c.
func SignJob(secret, job []byte, c Claims) []byte {
	return appendToken(nil, secret, KindJob, c.Gen^genMask(secret, job), c.ExpiresMs(), job)
}

// genMask is the mask of job's token gen: the first 8 bytes of the tag of
// kind KindGenMask over the job id, zero claims.
func genMask(secret, job []byte) uint64 {
	var head [headLen]byte
	head[0] = byte(KindGenMask)
	var tag [sha256.Size]byte
	mac(&tag, secret, &head, job)
	return binary.LittleEndian.Uint64(tag[:])
}

// SignAdmin returns the admin token for job that earlier releases sent
// bare in their drop orders. It keys nothing: orders are keyed with
// OrderKey, which no release ever sent.
func SignAdmin(secret, job []byte) []byte { return appendToken(nil, secret, KindAdmin, 0, 0, job) }

// OrderKey returns the key of the controller's order proofs about job
// (OrderProof, VerifyOrder): a tag of its own kind, so the admin tokens
// earlier releases sent on the wire (SignAdmin) cannot make orders. Len
// bytes; never sent.
func OrderKey(secret, job []byte) []byte { return appendToken(nil, secret, KindOrderKey, 0, 0, job) }

// Verify reports whether tok is a valid job token for job, whatever its
// claims; it does not look at the expiry (see ParseJob).
func Verify(secret, job, tok []byte) bool {
	_, ok := ParseJob(secret, job, tok)
	return ok
}

// ParseJob checks tok as a job token for job and returns its claims. It
// does not judge the expiry: callers compare Claims.Expired with their
// clock. Constant time in the tag; no allocation for job ids up to 512
// bytes.
func ParseJob(secret, job, tok []byte) (Claims, bool) {
	if !check(secret, KindJob, job, tok) {
		return Claims{}, false
	}
	c := claimsOf(tok)
	c.Gen ^= genMask(secret, job)
	return c, true
}

// claimsOf decodes the claims of a well-formed token.
func claimsOf(tok []byte) Claims {
	c := Claims{Gen: binary.LittleEndian.Uint64(tok[1:])}
	if ms := int64(binary.LittleEndian.Uint64(tok[9:])); ms > 0 {
		c.Expires = time.UnixMilli(ms)
	}
	return c
}

// NodeProof returns the proof that the node serving at addr holds the
// secret, for the connection whose challenge nonce is nonce.
func NodeProof(secret, nonce []byte, addr string) []byte {
	var sub [maxInline]byte
	return appendToken(nil, secret, KindNode, 0, 0, proofSubject(sub[:0], nonce, nil, addr))
}

// VerifyNodeProof reports whether proof is NodeProof(secret, nonce, addr).
func VerifyNodeProof(secret, nonce []byte, addr string, proof []byte) bool {
	var sub [maxInline]byte
	return check(secret, KindNode, proofSubject(sub[:0], nonce, nil, addr), proof)
}

// DrainProof returns an operator's proof for the order to drain the node at
// addr within deadlineMs milliseconds (0: the controller's default), on the
// connection whose challenge nonce is nonce.
func DrainProof(secret, nonce []byte, addr string, deadlineMs int64) []byte {
	var sub [maxInline]byte
	var d [8]byte
	binary.LittleEndian.PutUint64(d[:], uint64(deadlineMs))
	return appendToken(nil, secret, KindDrain, 0, 0, proofSubject(sub[:0], nonce, d[:], addr))
}

// VerifyDrainProof reports whether proof is DrainProof(secret, nonce, addr,
// deadlineMs).
func VerifyDrainProof(secret, nonce []byte, addr string, deadlineMs int64, proof []byte) bool {
	var sub [maxInline]byte
	var d [8]byte
	binary.LittleEndian.PutUint64(d[:], uint64(deadlineMs))
	return check(secret, KindDrain, proofSubject(sub[:0], nonce, d[:], addr), proof)
}

// DrainProofDiscard is DrainOrderProof with DrainDiscard.
func DrainProofDiscard(secret, nonce []byte, addr string, deadlineMs int64) []byte {
	return DrainOrderProof(secret, nonce, addr, deadlineMs, DrainDiscard)
}

// DrainOrderProof is DrainProof for an order with the choices flags (a
// set of DrainDiscard and DrainLoseOverflow): they are the proof's gen
// claim, which the MAC covers, so that nobody on the way can add one to
// an order.
func DrainOrderProof(secret, nonce []byte, addr string, deadlineMs int64, flags uint64) []byte {
	var sub [maxInline]byte
	var d [8]byte
	binary.LittleEndian.PutUint64(d[:], uint64(deadlineMs))
	return appendToken(nil, secret, KindDrain, flags, 0, proofSubject(sub[:0], nonce, d[:], addr))
}

// VerifyDrainOrder reports whether proof is DrainOrderProof for secret,
// nonce, addr, deadlineMs and exactly the choices flags (DrainProof is
// the one with none).
func VerifyDrainOrder(secret, nonce []byte, addr string, deadlineMs int64, flags uint64, proof []byte) bool {
	return VerifyDrainProof(secret, nonce, addr, deadlineMs, proof) && claimsOf(proof).Gen == flags
}

// EndJobProof returns an operator's proof for the order to end the job
// job (ids are at most 255 bytes), on the connection whose challenge
// nonce is nonce: the controller deregisters the job as its token's
// bearer would (wire.JobRef.Proof).
func EndJobProof(secret, nonce []byte, job string) []byte {
	var sub [maxInline]byte
	return appendToken(nil, secret, KindEndJob, 0, 0, proofSubject(sub[:0], nonce, nil, job))
}

// VerifyEndJobProof reports whether proof is EndJobProof(secret, nonce,
// job).
func VerifyEndJobProof(secret, nonce []byte, job string, proof []byte) bool {
	var sub [maxInline]byte
	return check(secret, KindEndJob, proofSubject(sub[:0], nonce, nil, job), proof)
}

// The choices of a drain order (DrainOrderProof).
const (
	// DrainDiscard: go ahead on a node that keeps persist-after-job
	// values of ended jobs, destroying them (wire.DrainNode.
	// DiscardPersisted).
	DrainDiscard uint64 = 1
	// DrainLoseOverflow: go ahead when the nodes that would take the
	// node's values cannot hold them all; what does not fit is lost at
	// the deadline (wire.DrainNode.LoseOverflow).
	DrainLoseOverflow uint64 = 2
)

// IncarnationProof returns a node's proof that its process's incarnation
// is incarnation, for the question whose nonce is nonce (at most 255
// bytes; wire.OpIncarnation).
func IncarnationProof(secret, nonce []byte, incarnation uint64) []byte {
	var sub [maxInline]byte
	var inc [8]byte
	binary.LittleEndian.PutUint64(inc[:], incarnation)
	return appendToken(nil, secret, KindIncarnation, 0, 0, proofSubject(sub[:0], nonce, inc[:], ""))
}

// VerifyIncarnationProof reports whether proof is IncarnationProof(secret,
// nonce, incarnation).
func VerifyIncarnationProof(secret, nonce []byte, incarnation uint64, proof []byte) bool {
	var sub [maxInline]byte
	var inc [8]byte
	binary.LittleEndian.PutUint64(inc[:], incarnation)
	return check(secret, KindIncarnation, proofSubject(sub[:0], nonce, inc[:], ""), proof)
}

// Bounds of an order's validity. The controller gives an order the expiry
// now+OrderLife by its clock; a node takes it while its own clock is
// before expiry+OrderSkew and refuses one that expires later than
// now+OrderLife+OrderSkew by its clock (so no order lives longer than
// that, and a node remembers each order's nonce for at most
// OrderLife+2*OrderSkew).
const (
	OrderLife = 30 * time.Second
	OrderSkew = 30 * time.Second
)

// Bounds of an order's nonce in bytes.
const (
	MinOrderNonce = 8
	MaxOrderNonce = 64
)

// Order is what OrderProof binds: a controller's order to the node serving
// at Addr, the process of Incarnation (dataplane.Node.Incarnation, not 0),
// with opcode Op and header flags Flags, about the job whose order key
// (OrderKey) keys the proof, valid until ExpiresMs (Unix milliseconds by
// the controller's clock), unique by Nonce (MinOrderNonce to MaxOrderNonce
// random bytes). Carried is what the order carries beyond those fields
// (wire.Request.after: the versions of a wire.OpDropVersions, the cursor
// of a wire.OpVersions page; empty for wire.OpDropJob): the proof binds
// its SHA-256, so it cannot be changed on the way either.
type Order struct {
	Addr        string
	Incarnation uint64
	Op          byte
	Flags       uint16
	Nonce       []byte
	ExpiresMs   int64
	Carried     []byte
}

// OrderProof returns the proof of order o about the job whose order key
// is key (OrderKey(secret, job)): a token of KindOrder whose claims are
// o's incarnation (gen) and expiry, tagged with key over the opcode, the
// flags, the nonce and the address. Len bytes.
func OrderProof(key []byte, o *Order) []byte {
	var sub [maxInline]byte
	return appendToken(nil, key, KindOrder, o.Incarnation, o.ExpiresMs, orderSubject(sub[:0], o))
}

// Errors of VerifyOrder. ErrOrderForged covers a proof made with another
// secret or for another job, and any field of the order changed on the
// way: the address (an order for another node), opcode, flags, nonce,
// what it carries, incarnation or expiry.
var (
	ErrOrderForged      = errors.New("token: the order's proof is not the controller's for this job, node, flags and nonce")
	ErrOrderIncarnation = errors.New("token: the order is for another incarnation of the node at this address")
	ErrOrderExpired     = errors.New("token: the order has expired")
	ErrOrderTooLong     = errors.New("token: the order's expiry is further away than OrderLife plus OrderSkew")
	ErrOrderNonce       = errors.New("token: the order's nonce is not MinOrderNonce to MaxOrderNonce bytes")
)

// VerifyOrder checks proof as OrderProof(OrderKey(secret, job), o) for an
// order received at now by the node serving at o.Addr whose incarnation
// is o.Incarnation (o.ExpiresMs is ignored: it is read from the proof).
// It returns the order's expiry (Unix milliseconds) for the caller's
// replay record, or one of the ErrOrder errors. It does not remember
// nonces: the node refuses a second order with the same nonce itself.
func VerifyOrder(secret, job []byte, o Order, proof []byte, now time.Time) (int64, error) {
	if len(o.Nonce) < MinOrderNonce || len(o.Nonce) > MaxOrderNonce {
		return 0, ErrOrderNonce
	}
	if len(proof) != Len || Kind(proof[0]) != KindOrder {
		return 0, ErrOrderForged
	}
	c := claimsOf(proof)
	o.ExpiresMs = c.ExpiresMs()
	key := OrderKey(secret, job)
	var sub [maxInline]byte
	if !check(key, KindOrder, orderSubject(sub[:0], &o), proof) {
		return 0, ErrOrderForged
	}
	if c.Gen != o.Incarnation {
		return 0, ErrOrderIncarnation
	}
	nowMs := now.UnixMilli()
	switch {
	case o.ExpiresMs == 0 || nowMs >= o.ExpiresMs+OrderSkew.Milliseconds():
		return 0, ErrOrderExpired
	case o.ExpiresMs > nowMs+(OrderLife+OrderSkew).Milliseconds():
		return 0, ErrOrderTooLong
	}
	return o.ExpiresMs, nil
}

// VersionsReplyProof returns a node's proof of its answer to the
// controller's versions order whose nonce is nonce, about the job whose
// order key is key (OrderKey): the versions of the page, in order, and
// whether more follow. Len bytes.
func VersionsReplyProof(key, nonce []byte, versions []uint64, more bool) []byte {
	var sub [maxInline]byte
	return appendToken(nil, key, KindVersionsReply, 0, 0, versionsSubject(sub[:0], nonce, versions, more))
}

// VerifyVersionsReply reports whether proof is VersionsReplyProof(key,
// nonce, versions, more).
func VerifyVersionsReply(key, nonce []byte, versions []uint64, more bool, proof []byte) bool {
	var sub [maxInline]byte
	return check(key, KindVersionsReply, versionsSubject(sub[:0], nonce, versions, more), proof)
}

// versionsSubject is len(nonce) || nonce || SHA-256(versions, 8 bytes
// each big endian, || more).
func versionsSubject(dst, nonce []byte, versions []uint64, more bool) []byte {
	h := sha256.New()
	var b [8]byte
	for _, v := range versions {
		binary.BigEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	if more {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	return proofSubject(dst, nonce, h.Sum(nil), "")
}

// DropReplyProof returns a node's proof of its answer to the
// controller's drop order whose nonce is nonce, about the job whose order
// key is key (OrderKey): kept, the job's bytes it keeps. Len bytes.
func DropReplyProof(key, nonce []byte, kept int64) []byte {
	var sub [maxInline]byte
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(kept))
	return appendToken(nil, key, KindDropReply, 0, 0, proofSubject(sub[:0], nonce, b[:], ""))
}

// VerifyDropReply reports whether proof is DropReplyProof(key, nonce,
// kept).
func VerifyDropReply(key, nonce []byte, kept int64, proof []byte) bool {
	var sub [maxInline]byte
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(kept))
	return check(key, KindDropReply, proofSubject(sub[:0], nonce, b[:], ""), proof)
}

// orderSubject is op || flags (little endian) || len(nonce) || nonce ||
// SHA-256(carried), when it carries anything || addr. The digest's fixed
// length keeps it apart from the address; an order that carries nothing
// has the subject orders had before Carried.
func orderSubject(dst []byte, o *Order) []byte {
	dst = append(dst, o.Op, byte(o.Flags), byte(o.Flags>>8))
	if len(o.Carried) == 0 {
		return proofSubject(dst, o.Nonce, nil, o.Addr)
	}
	sum := sha256.Sum256(o.Carried)
	return proofSubject(dst, o.Nonce, sum[:], o.Addr)
}

// proofSubject is len(nonce) || nonce || extra || addr: the length prefix
// keeps nonce and address apart whatever their lengths.
func proofSubject(dst, nonce, extra []byte, addr string) []byte {
	dst = append(dst, byte(len(nonce)))
	dst = append(dst, nonce...)
	dst = append(dst, extra...)
	return append(dst, addr...)
}

// appendToken appends the token of kind with the claims for subject.
func appendToken(dst, secret []byte, kind Kind, gen uint64, expiresMs int64, subject []byte) []byte {
	var head [headLen]byte
	head[0] = byte(kind)
	binary.LittleEndian.PutUint64(head[1:], gen)
	binary.LittleEndian.PutUint64(head[9:], uint64(expiresMs))
	var tag [sha256.Size]byte
	mac(&tag, secret, &head, subject)
	dst = append(dst, head[:]...)
	return append(dst, tag[:]...)
}

// check reports whether tok is a valid token of kind for subject, whatever
// its claims. It runs in constant time with respect to the tag's contents
// and, for subjects up to 512 bytes, allocates nothing.
func check(secret []byte, kind Kind, subject, tok []byte) bool {
	if len(tok) != Len || Kind(tok[0]) != kind {
		return false
	}
	var head [headLen]byte
	copy(head[:], tok)
	var tag [sha256.Size]byte
	mac(&tag, secret, &head, subject)
	return subtle.ConstantTimeCompare(tag[:], tok[headLen:]) == 1
}

// mac computes HMAC-SHA256(secret, head || subject) into tag. crypto/hmac
// allocates its hash states, so the common case is done by hand over stack
// buffers with sha256.Sum256 (RFC 2104: H(K^opad || H(K^ipad || m))).
func mac(tag *[sha256.Size]byte, secret []byte, head *[headLen]byte, subject []byte) {
	if len(subject) > maxInline {
		// The copy keeps subject from leaking to the heap through hash.Hash.Write.
		copy(tag[:], macLong(secret, *head, append([]byte(nil), subject...)))
		return
	}
	var key [blockSize]byte
	if len(secret) > blockSize {
		s := sha256.Sum256(secret)
		copy(key[:], s[:])
	} else {
		copy(key[:], secret)
	}
	var inner [blockSize + headLen + maxInline]byte
	for i, k := range key {
		inner[i] = k ^ 0x36
	}
	copy(inner[blockSize:], head[:])
	n := copy(inner[blockSize+headLen:], subject)
	ih := sha256.Sum256(inner[:blockSize+headLen+n])
	var outer [blockSize + sha256.Size]byte
	for i, k := range key {
		outer[i] = k ^ 0x5c
	}
	copy(outer[blockSize:], ih[:])
	*tag = sha256.Sum256(outer[:])
}

// macLong is the allocating path for subjects longer than maxInline; kept
// apart so its escaping buffers do not make mac's stack arrays escape.
func macLong(secret []byte, head [headLen]byte, subject []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write(head[:])
	h.Write(subject)
	return h.Sum(nil)
}

// NewNonce returns n random bytes for a challenge.
func NewNonce(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("token: nonce: %w", err)
	}
	return b, nil
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
