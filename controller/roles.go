package controller

import (
	"crypto/tls"
	"net"
	"strings"

	"github.com/pocketstore/pocket/internal/pki"
	"github.com/pocketstore/pocket/wire"
)

// Roles is the set of roles a control connection's peer holds. Over TLS
// (Config.TLS) they come from the peer's certificate (internal/pki); a
// plain connection holds every role, and only the proofs of the secret
// (node registration and heartbeats, drain orders) and the job tokens
// guard it.
//
// Which role each message needs:
//
//	register-node, heartbeat       node
//	drain-node, status, list-jobs  operator
//	register-job, deregister-job   client or operator (deregister-job
//	                               without the job's token: operator,
//	                               with a proof of the secret)
//	job-profile                    operator, or client (its tenant's)
//	get-map                        client, operator or node (a draining
//	                               node fetches its jobs' maps)
//	challenge                      any
//
// A job name's profile (job-profile) lists the ids, lifetimes, peak use
// and allotments of the ended jobs of the name that its tenant ran
// (tenant.go). The operator reads every tenant's, as it reads status and
// list-jobs; a job client reads its own tenant's alone (the certificate's
// tenant, Controller.TenantProfile), never another's, whose names it is
// not even told; a node reads none (nodes never size jobs; a node's
// certificate sits on every storage host).
type Roles uint8

// The roles.
const (
	RoleNode Roles = 1 << iota
	RoleOperator
	RoleClient

	AllRoles = RoleNode | RoleOperator | RoleClient
)

func (r Roles) String() string {
	if r == 0 {
		return "none"
	}
	var names []string
	for _, x := range []struct {
		r    Roles
		name string
	}{{RoleNode, "node"}, {RoleOperator, "operator"}, {RoleClient, "client"}} {
		if r&x.r != 0 {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, "+")
}

// needs returns the roles any one of which may send op, and whether op is
// one the controller serves: any role may send another op, which dispatch
// answers CodeUnknownOp (so that a newer client learns the controller is
// older, not that its certificate is wrong).
func needs(op wire.Op) (Roles, bool) {
	switch op {
	case wire.OpRegisterNode, wire.OpHeartbeat, wire.OpNodeHello:
		return RoleNode, true
	case wire.OpDrainNode, wire.OpStatus, wire.OpListJobs:
		return RoleOperator, true
	case wire.OpJobProfile:
		return RoleOperator | RoleClient, true
	case wire.OpRegisterJob, wire.OpDeregisterJob:
		return RoleClient | RoleOperator, true
	case wire.OpGetMap:
		return RoleClient | RoleOperator | RoleNode, true
	case wire.OpChallenge:
		return AllRoles, true
	}
	return AllRoles, false
}

// allow refuses op unless the peer holds one of the roles it needs.
func (r Roles) allow(op wire.Op) error {
	if want, _ := needs(op); r&want == 0 {
		// "operator or client": any one of them will do (a hostile
		// trial read "operator+client" as needing both).
		return wire.Errorf(wire.CodeForbidden, "%s needs the role %s; this connection's certificate has %s",
			op, strings.ReplaceAll(want.String(), "+", " or "), r)
	}
	return nil
}

// peerRoles reads the roles of a verified TLS peer.
func peerRoles(cs tls.ConnectionState) Roles {
	if len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		return 0
	}
	var r Roles
	for _, role := range pki.RolesOf(cs.PeerCertificates[0]) {
		switch role {
		case pki.RoleNode:
			r |= RoleNode
		case pki.RoleOperator:
			r |= RoleOperator
		case pki.RoleClient:
			r |= RoleClient
		}
	}
	return r
}

// wrapListener makes ln serve TLS when Config.TLS is set.
func (c *Controller) wrapListener(ln net.Listener) net.Listener {
	if c.cfg.TLS == nil {
		return ln
	}
	return tls.NewListener(ln, c.cfg.TLS)
}
