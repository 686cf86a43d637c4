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
// older controller's entry) leaves what is known. It reports whether the
// owner changed (was unknown, or another).
func (e *jobEntry) setOwner(owner string) bool {
	if owner == "" {
		return false
	}
	if p := e.owner.Load(); p != nil && string((*p)[len(ownerPrefix):]) == owner {
		return false
	}
	key := append(bytes.Clone(ownerPrefix), owner...)
	e.owner.Store(&key)
	return true
}

// proveFor vouches for c by a valid token of job (netio.Conn.ProveFor) on
// behalf of the job's owner. The table is looked up only for a connection
// not proven yet. A job the controller has not listed yet (pending: its
// owner is not known) proves nothing: a later request does, once the
// table names the owner. Before, such connections were proven for the
// job itself, another owner: a hostile trial's tenant at its bound
// registered a job and opened 100 connections within 45 ms, and 20 to 30
// of them were proven past the tenant's share.
func (n *Node) proveFor(c *netio.Conn, job []byte) {
	if !c.NeedsProof() {
		return
	}
	if e := n.jobs.lookup(job); e != nil {
		if p := e.owner.Load(); p != nil {
			c.ProveFor(*p)
			return
		}
		if e.state.Load() == statePending {
			return
		}
	}
	c.ProveFor(append(bytes.Clone(jobPrefix), job...))
}

// maxOwnerWaiters bounds the connections a pending job keeps to prove
// once the table names its owner (awaitOwner); those past it are proven
// by their next request, as before.
const maxOwnerWaiters = 1024

// awaitOwner keeps c, which showed a valid token of e's job while the job
// was pending, to be proven for the job's owner once the table names it
// (ownerLearned). It reports false when the table lists the job by now
// (the caller proves c itself), else true (c is kept, or was already).
// Before, such a connection
// stayed unproven until its next request: a re-check's job that opened
// 100 connections in its first milliseconds and then let them idle had
// 91 of them taken by a flood of connections at the node's limit.
func (e *jobEntry) awaitOwner(c *netio.Conn, cs *connState) bool {
	if cs.awaits == e {
		return true
	}
	e.waitMu.Lock()
	defer e.waitMu.Unlock()
	if e.waited || e.owner.Load() != nil || e.state.Load() != statePending {
		return false
	}
	cs.awaits = e
	if len(e.waiters) < maxOwnerWaiters {
		e.waiters = append(e.waiters, c)
	}
	return true
}

// proveWaiters proves, each on its own loop, the connections kept by
// awaitOwner for job, which the table now lists: for the owner it names,
// or for the job when it names none (an older controller).
func (n *Node) proveWaiters(job string) {
	e := n.jobs.lookup([]byte(job))
	if e == nil {
		return
	}
	e.waitMu.Lock()
	ws := e.waiters
	e.waiters, e.waited = nil, true
	e.waitMu.Unlock()
	for _, c := range ws {
		c.Post(func(c *netio.Conn) { n.proveFor(c, []byte(job)) }) // not run if c has closed
	}
}

// A node's other shares count per owner too, so that one owner's jobs
// together get one share, not one a job: the scan lane's turns and queue
// room (lane.go), the bound on unfinished puts (unfinished.go), the
// version table's shares (versionowners.go), and the NVMe tier's key
// index and read staging shares (nvme.go, nvmeshare.go). Each counts
// against the key proveFor proves for (ownerKey): the owner the table
// names, else the job. Before (2026-12-06) they counted per job: a
// re-check filled a 1 MiB NVMe key index with two jobs of one client. A
// job's owner may become known after its first requests (the table
// comes with heartbeats); what was counted against its job key moves to
// its owner's (Node.ownerLearned), puts still arriving included; NVMe
// reads in flight, held only while they run, give theirs back to the
// key they were counted against.

// ownerOf returns the owner key of job (ownerPrefix and the owner the
// table names), or nil when the table names none. It does not allocate.
func (n *Node) ownerOf(job []byte) []byte {
	if e := n.jobs.lookup(job); e != nil {
		if p := e.owner.Load(); p != nil {
			return *p
		}
	}
	return nil
}

// ownerKey is the key a job's per-owner shares count against: owner (an
// owner key from ownerOf) when not nil, else jobPrefix and job.
func ownerKey(owner []byte, job string) string {
	if owner != nil {
		return string(owner)
	}
	return string(jobPrefix) + job
}

// isOwnerKey reports whether key is ownerKey(owner, job), without
// allocating.
func isOwnerKey(key string, owner []byte, job string) bool {
	if owner != nil {
		return key == string(owner)
	}
	return len(key) == len(jobPrefix)+len(job) && key[:len(jobPrefix)] == string(jobPrefix) && key[len(jobPrefix):] == job
}

// ownerLearned moves what the shares counted against job's job key to
// its owner's key, once the table names the owner (jobTable.takeLearned):
// the scan lane's waiting requests, the bytes of its puts still
// arriving, the version table's counts of the job's versions, and the
// NVMe tier's index and allocated bytes of the job's keys.
func (n *Node) ownerLearned(job string) {
	n.proveWaiters(job)
	owner := n.ownerOf([]byte(job))
	if owner == nil {
		return
	}
	if n.lanes != nil {
		n.lanes.rekey(ownerKey(nil, job), string(owner))
	}
	n.unfinished.rebind(ownerKey(nil, job), string(owner))
	n.vers.rebind(job)
	for _, t := range []Tier{n.cfg.DRAM, n.cfg.NVMe} {
		if o, ok := t.(ownedTier); ok {
			o.rebind(job)
		}
	}
}

// ownedTier is a tier that counts shares per owner (NVMe): the node
// tells it whose each job is (setOwners) and when a job's owner changes
// (rebind).
type ownedTier interface {
	setOwners(ownerOf func(job []byte) []byte)
	rebind(job string)
}

// ownerCounted is a tier that sums its bytes per owner (DRAM, NVMe).
type ownerCounted interface {
	ownerUsage(job []byte) int64
}

// ownerBytes is what the jobs of job's owner hold on this node, all
// tiers together (a tier that does not count owners gives the job's own
// bytes). The byte quota's bound on one node is on it (admit's
// errOverNodeQuota): bounded per job, a hostile re-check's 8 jobs of one
// client registered at once each stored the whole 64 MiB quota on one
// node, 512 MiB.
func (n *Node) ownerBytes(job []byte) int64 {
	var b int64
	for _, t := range [...]Tier{n.cfg.DRAM, n.cfg.NVMe} { // not Tiers: no slice made per put
		if t == nil {
			continue
		}
		if o, ok := t.(ownerCounted); ok {
			b += o.ownerUsage(job)
		} else {
			b += t.JobUsage(job)
		}
	}
	return b
}
