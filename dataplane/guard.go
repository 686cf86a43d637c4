package dataplane

import (
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// TokenGuard checks capability tokens issued by the controller with the
// cluster secret (internal/token). Job tokens pass for their own job only;
// drop-job orders need the controller's admin token for that job.
type TokenGuard struct {
	secret []byte
	v      *token.Verifier
}

var _ Guard = (*TokenGuard)(nil)

// NewTokenGuard returns a guard for the cluster secret.
func NewTokenGuard(secret []byte) *TokenGuard {
	return &TokenGuard{secret: append([]byte(nil), secret...), v: token.NewVerifier(secret, 0)}
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
	if !g.v.Verify(job, tok) {
		return errBadToken
	}
	return nil
}

// CheckAdmin implements Guard.
func (g *TokenGuard) CheckAdmin(job, tok []byte) error {
	if !token.VerifyAdmin(g.secret, job, tok) {
		return &wire.Error{Code: wire.CodeBadToken, Msg: "drop-job needs the controller's token"}
	}
	return nil
}
