package dataplane

import (
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// TokenGuard checks capability tokens issued by the controller with the
// cluster secret (internal/token). Job tokens pass for their own job only,
// and only while the node's job table does not hold the job revoked or the
// token expired (jobtable.go); drop-job orders need the controller's proof
// made for this node with the job's admin token (orders.go).
//
// NewNode gives each node its own copy bound to the node's job table: a
// token that passed the full check is remembered in the job's entry, so a
// connection's first request with it costs a map lookup and a 49-byte
// constant-time compare rather than two SHA-256 runs (the connection then
// caches it, dispatch.go's authCache). An unbound guard checks every token
// in full.
type TokenGuard struct {
	secret []byte
	jobs   *jobTable // nil until bound to a node
}

var _ Guard = (*TokenGuard)(nil)

// NewTokenGuard returns a guard for the cluster secret.
func NewTokenGuard(secret []byte) *TokenGuard {
	return &TokenGuard{secret: append([]byte(nil), secret...)}
}

// bind returns a copy of g that consults and fills the node's job table.
func (g *TokenGuard) bind(jobs *jobTable) *TokenGuard {
	return &TokenGuard{secret: g.secret, jobs: jobs}
}

var (
	errNoToken  = &wire.Error{Code: wire.CodeBadToken, Msg: "request carries no capability token"}
	errBadToken = &wire.Error{Code: wire.CodeBadToken, Msg: "capability token is not valid for this job"}
)

// CheckJob implements Guard.
func (g *TokenGuard) CheckJob(job, tok []byte) error {
	if len(tok) == 0 {
		return errNoToken
	}
	if g.jobs != nil {
		if e, ok := g.jobs.verified(job, tok); ok {
			switch e.state.Load() {
			case stateRevoked:
				return e.endedErr(errRevoked)
			case stateRetired, stateDropping:
				return nil // the job table's check answers by the request's class
			}
			if exp := e.expires.Load(); exp != 0 && time.Now().UnixMilli() >= exp {
				return expiredErr(exp)
			}
			return nil
		}
	}
	c, ok := token.ParseJob(g.secret, job, tok)
	if !ok {
		return errBadToken
	}
	if g.jobs == nil {
		if c.Expired(time.Now()) {
			return expiredErr(c.ExpiresMs())
		}
		return nil
	}
	return g.jobs.admit(job, c, tok)
}

// CheckOrder implements Guard.
func (g *TokenGuard) CheckOrder(job []byte, o token.Order, proof []byte, now time.Time) (int64, error) {
	exp, err := token.VerifyOrder(g.secret, job, o, proof, now)
	if err != nil {
		return 0, orderError(err)
	}
	return exp, nil
}

// incarnationProver is a Guard that proves the node's incarnation with
// the cluster secret (TokenGuard).
type incarnationProver interface {
	ProveIncarnation(nonce []byte, incarnation uint64) []byte
}

// ProveIncarnation returns the node's proof of its incarnation for the
// asker's nonce (token.IncarnationProof; wire.OpIncarnation).
func (g *TokenGuard) ProveIncarnation(nonce []byte, incarnation uint64) []byte {
	return token.IncarnationProof(g.secret, nonce, incarnation)
}

// versionsProver is a Guard that proves the node's answers to the
// controller's versions and drop orders with the job's order key
// (TokenGuard).
type versionsProver interface {
	ProveVersions(job, nonce []byte, versions []uint64, more bool) []byte
	ProveDrop(job, nonce []byte, kept int64) []byte
}

// ProveDrop returns the node's proof of its answer to a drop order about
// job whose nonce was nonce: the job's bytes it keeps
// (token.DropReplyProof).
func (g *TokenGuard) ProveDrop(job, nonce []byte, kept int64) []byte {
	return token.DropReplyProof(token.OrderKey(g.secret, job), nonce, kept)
}

// ProveVersions returns the node's proof of its answer to a versions
// order about job whose nonce was nonce (token.VersionsReplyProof).
func (g *TokenGuard) ProveVersions(job, nonce []byte, versions []uint64, more bool) []byte {
	return token.VersionsReplyProof(token.OrderKey(g.secret, job), nonce, versions, more)
}

// jobToken derives a job's token from its claims.
func (g *TokenGuard) jobToken(job string, c token.Claims) []byte {
	return token.SignJob(g.secret, []byte(job), c)
}
