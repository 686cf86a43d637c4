package dataplane

import (
	"bytes"

	"github.com/pocketstore/pocket/netio"
)

// Owners of proven connections. A connection that shows a valid token is
// proven for an owner (netio.Conn.ProveFor), and one owner may hold at
// most netio.Config.MaxProvenPerOwner proven connections (half the
// slots); past it its connections may give their slots to others. The
// owner was the job: a hostile trial's tenant registered two jobs and
// held all 10,000 slots of a node with 5,000 connections of each, so
// another tenant's gets were refused 10 of 10; with two jobs ended (their
// tokens still read persisted values) it did the same at no quota. Now
// the owner is who registered the job, as the controller's table says
// (wire.JobEpoch.Owner: a tenant, or a client's address), and the job
// only when the table says no owner.

// Prefixes keep owners and job ids apart as owner keys.
var (
	ownerPrefix = []byte("o ")
	jobPrefix   = []byte("j ")
)

// setOwner records the job's owner from the controller's table; "" (an
// older controller's entry) leaves what is known.
func (e *jobEntry) setOwner(owner string) {
	if owner == "" {
		return
	}
	if p := e.owner.Load(); p != nil && string((*p)[len(ownerPrefix):]) == owner {
		return
	}
	key := append(bytes.Clone(ownerPrefix), owner...)
	e.owner.Store(&key)
}

// proveFor vouches for c by a valid token of job (netio.Conn.ProveFor) on
// behalf of the job's owner. The table is looked up only for a connection
// not proven yet.
func (n *Node) proveFor(c *netio.Conn, job []byte) {
	if !c.NeedsProof() {
		return
	}
	if e := n.jobs.lookup(job); e != nil {
		if p := e.owner.Load(); p != nil {
			c.ProveFor(*p)
			return
		}
	}
	c.ProveFor(append(bytes.Clone(jobPrefix), job...))
}
