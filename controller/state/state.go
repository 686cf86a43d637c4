// Package state keeps the controller's registries where a restart (or, with
// an etcd Store, another controller) finds them: the jobs with their token
// generations, lifetimes, maps and epochs, the node registry, and the
// counters that keep job ids and revisions unique across runs.
//
// # Records
//
// A Store holds four kinds of record, each a whole value written and read
// as one unit:
//
//   - Job, keyed by its id ("name-N"): everything the controller needs to
//     serve the job again (its map and epoch, its token's gen and expiry,
//     its allotment, its registering client). The token itself is not
//     stored: it is token.SignJob over the id, gen and expiry with the
//     cluster secret, which the controller gets from its environment or
//     secret file, so a restarted controller re-derives the same bytes.
//     A live job's record also carries its run's trace so far (Trace,
//     profile.go), so a run spanning a restart or failover keeps its
//     peaks.
//   - Node, keyed by its data-plane address: its tiers, cores and state
//     (active, draining with the drain's deadline, dead).
//   - Meta: the next job number (Seq) and the highest revision issued
//     (Rev), so that a restarted controller never hands out a job id or a
//     token gen that an earlier run did.
//   - Profile, keyed by a job NAME (not id): what the last runs of jobs of
//     that name used (profile.go), from which the controller sizes the
//     next hint-less job of the name. Advisory: losing one costs a job its
//     learned size, never its data or its token.
//
// The format version of the layout (FormatVersion) is stored with the
// records; opening a store written by a newer version fails with
// ErrNewerFormat naming both versions.
//
// # Consistency contract
//
// Every implementation (Bolt, Memory, and an etcd one) must give:
//
//  1. Atomic batches. Apply writes a Batch whole or not at all: a job's
//     record (map, epoch, gen) and the Meta that counts it, or every job
//     whose epoch a node's state change bumped together with that node's
//     record, are never seen half-written, by a Load after a crash or by
//     another controller.
//  2. Durability before success. When Apply returns nil, a Load on any
//     later Open of the same store (after kill -9, power loss for Bolt,
//     failover for etcd) sees the batch. The controller answers a client
//     (a token, a map, an epoch in a node's ack) only after the batch
//     holding it has been applied.
//  3. Order. Batches are applied in the order Apply is called; the
//     controller never calls Apply concurrently on one Store (it
//     serializes its writes), so implementations need not order
//     concurrent calls, but must be safe for them.
//  4. Whole records. A Put replaces the record of its key; a Delete of a
//     missing key is not an error. Meta, when set in a batch, replaces the
//     stored Meta, and Seq and Rev never decrease (the controller only
//     raises them).
//  5. Load returns every record as of the last applied batch.
//
// An etcd Store also fences: Apply fails with ErrNotLeader once the
// calling controller has lost its election, so a deposed controller cannot
// overwrite its successor's state (implementations without election never
// return it).
package state

import (
	"errors"
	"fmt"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// FormatVersion is the version of the record layout this package writes.
// Version 1: JSON records of Job, Node and Meta, and (since issue 15) of
// Profile. Adding the Profile kind did not change the version, on purpose:
// a reader of version 1 that predates profiles reads only the kinds it
// knows (bolt buckets "jobs", "nodes", "meta"; etcd keys under jobs/,
// nodes/, meta) and ignores the "profiles" bucket or profiles/ keys, and
// nothing it reads means anything else than before; profiles are advisory
// (a lost or stale profile only costs a job its learned size). Bumping
// the version would make a downgraded controller refuse a store for the
// sake of records it can do without. The version must change when a kind
// an old reader does read changes meaning or layout. Job.Trace, likewise,
// is an optional field an older reader ignores (it then records the run
// from what it saw, as before traces were stored) and a record without it
// still loads.
const FormatVersion = 1

// ErrNotLeader is returned by Apply of a Store whose controller is no
// longer the elected one (etcd); the controller must stop serving.
var ErrNotLeader error = &wire.Error{Code: wire.CodeNotLeader, Msg: "state: this controller is no longer the leader"}

// ErrNewerFormat is the class of FormatError: the store was written by a
// newer version of the controller.
var ErrNewerFormat = errors.New("state: store written by a newer format version")

// FormatError says a store's format version is one this build cannot read.
// It matches ErrNewerFormat with errors.Is.
type FormatError struct {
	Where  string // the store: a file path or etcd prefix
	Stored int    // the version the store holds
	Known  int    // FormatVersion of this build
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("state: %s has format version %d, newer than this build's version %d: run a newer pocket controller, or start on an empty --data-dir",
		e.Where, e.Stored, e.Known)
}

func (e *FormatError) Is(target error) bool { return target == ErrNewerFormat }

// Job states as stored.
const (
	JobLive    = "live"
	JobRevoked = "revoked" // deregistered or expired: a tombstone, deleted after the orphan grace and once its final map is not kept
)

// Job is a registered job. Times are UTC wall-clock; zero Expires: the
// token never expires.
type Job struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Hints are the registration's hints (wire.JobHints).
	Lambdas          uint32  `json:"lambdas,omitempty"`
	CapacityBytes    int64   `json:"capacity_bytes,omitempty"`
	PeakMbps         float64 `json:"peak_mbps,omitempty"`
	LatencySensitive bool    `json:"latency_sensitive,omitempty"`

	Tier  uint8       `json:"tier"`  // wire.Tier number
	Epoch uint64      `json:"epoch"` // the map's epoch
	Nodes []MapWeight `json:"nodes"` // the map: node addresses and weights
	// Lost are the nodes that left the map dead (wire.LostNode), oldest
	// first; absent in records written before they were kept.
	Lost []LostNode `json:"lost,omitempty"`

	AllocMbps  float64 `json:"alloc_mbps"`  // bandwidth allotted, Mb/s
	AllocBytes int64   `json:"alloc_bytes"` // capacity allotted, bytes

	Gen     uint64    `json:"gen"` // the revision that registered it (in its token)
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
	Client  string    `json:"client,omitempty"` // peer key of the registering client ("" in-process)
	// Tenant is the registering client's tenant (controller.TenantOf;
	// absent without TLS and in records written before tenants).
	Tenant string `json:"tenant,omitempty"`
	State  string `json:"state"` // JobLive or JobRevoked
	// Revoked is when a JobRevoked job was deregistered or expired. Such
	// a record (a tombstone) carries ID, Name, Gen and Revoked: a node
	// that still holds the job's data is told to drop it at once instead
	// of after the orphan grace, until the tombstone is deleted. While
	// the controller keeps the ended job's final map for its persisted
	// values (package controller, ended.go), the record also carries
	// that map: Tier, Epoch, Nodes (Role as for a live job) and Expires;
	// without Nodes it carries none (and records of earlier builds never
	// do).
	Revoked time.Time `json:"revoked,omitzero"`
	// Grown is how many nodes the job's map gained while it ran (the
	// autoscaler's per-job growth), which it may shed again.
	Grown int `json:"grown,omitempty"`
	// Drained is when a node of the job's map last left it drained, all
	// its values moved (zero: none did, or a record written before it was
	// kept): the job's nodes left may not carry its allotment, and
	// another node joins (package controller, refill.go).
	Drained time.Time `json:"drained,omitzero"`
	// Undone are the nodes whose change of the job's map was undone (it
	// made no progress), and when (package controller, undo.go): such a
	// node is passed over for the job for a while, and its change in
	// progress is not undone again; absent in records written before.
	Undone map[string]time.Time `json:"undone,omitempty"`
	// Trace is a live job's use so far, for its profile (profile.go); nil
	// in tombstones, in records written before traces were stored, and
	// before the job's first heartbeat figures.
	Trace *Trace `json:"trace,omitempty"`
}

// MapWeight is one node of a job's map. Role, while the map changes under
// the running job, is wire.NodeJoining or wire.NodeDraining (the node
// joins or leaves this job's map); 0 otherwise.
type MapWeight struct {
	Addr   string  `json:"addr"`
	Weight float64 `json:"weight"`
	Role   uint8   `json:"role,omitempty"`
	// Since is wire.MapNode.Since (0: from the start, as before it was
	// stored).
	Since uint64 `json:"since,omitempty"`
}

// LostNode is a node that left a job's map dead: its weight on the map's
// scale and the first epoch without it.
type LostNode struct {
	Addr   string  `json:"addr"`
	Weight float64 `json:"weight"`
	Epoch  uint64  `json:"epoch"`
	// Clean: the node has restarted since it was lost, and holds none of
	// the job's data (a drain, an adoption or a refill may take it back);
	// absent in records written before it was kept.
	Clean bool `json:"clean,omitempty"`
}

// Node is a registered storage node.
type Node struct {
	Addr  string     `json:"addr"`
	State uint8      `json:"state"` // wire.NodeState
	Tiers []NodeTier `json:"tiers"`
	Cores uint32     `json:"cores,omitempty"`
	// Incarnation is the node process's, from its registration or (for a
	// node registered before incarnations were stored) its heartbeats; 0:
	// unknown. A controller restarted on the store tells a node that
	// restarted while no controller ran by it.
	Incarnation uint64 `json:"incarnation,omitempty"`
	// DrainDeadline is set while the node drains: when it must be gone.
	DrainDeadline time.Time `json:"drain_deadline,omitzero"`
	// DrainDiscard and DrainLoseOverflow are the running drain's order
	// (controller.DrainOptions DiscardPersisted, LoseOverflow), so a
	// controller restarted under a held drain does not hold it again.
	// Absent in records written before they were kept (2026-12-03): such
	// a drain holds, erring on the side of the values.
	DrainDiscard      bool `json:"drain_discard,omitempty"`
	DrainLoseOverflow bool `json:"drain_lose_overflow,omitempty"`
	// Gone is set when the node finished a drain and left: it is refused
	// if it registers again before the controller forgets it (told to
	// stop when the registration has the Incarnation it left with).
	Gone time.Time `json:"gone,omitzero"`
	// GoneWhy and GoneLost say how a Gone node's drain ended: why it left
	// ("moved all its data in 2s", "died while draining", ...), and
	// whether values it held were left unmoved (then a new process at
	// the address is taken at once). Absent in records written before
	// they were kept (2026-12-03): such a node reads as drained cleanly.
	GoneWhy  string `json:"gone_why,omitempty"`
	GoneLost bool   `json:"gone_lost,omitempty"`
	// DrainEnded, on a node that is not Gone, is when its last drain
	// ended because its process restarted (its values unmoved were
	// lost), with DrainEndWhy; the status lists it among the drains'
	// ends. Absent in records written before it was kept (2026-12-03).
	DrainEnded  time.Time `json:"drain_ended,omitzero"`
	DrainEndWhy string    `json:"drain_end_why,omitempty"`
}

// NodeTier is one tier of a node (wire.TierStat without its usage).
type NodeTier struct {
	Kind          uint8   `json:"kind"`
	CapacityBytes int64   `json:"capacity_bytes"`
	Mbps          float64 `json:"mbps"`
}

// Meta holds the counters that must survive restarts.
type Meta struct {
	Seq uint64 `json:"seq"` // the N of the next job id
	Rev uint64 `json:"rev"` // the highest revision issued (token gens are revisions)
	// SecretID names the cluster secret the jobs' tokens are signed with
	// (a keyed hash of it, not the secret), so a controller started with
	// another secret refuses the store instead of every token.
	SecretID string `json:"secret_id,omitempty"`
	// CAID names the CA whose certificates the cluster's controllers,
	// nodes and clients present (pki.CAID; "" without TLS or before it
	// was kept), so a controller of another CA on etcd stops before it
	// campaigns (controller.HA).
	CAID string `json:"ca_id,omitempty"`
}

// Snapshot is everything a Store holds.
type Snapshot struct {
	Jobs     []Job
	Nodes    []Node
	Profiles []Profile // by name
	Meta     Meta
	// Empty is true when the store held nothing yet (a first start).
	Empty bool
}

// Batch is one atomic write (see the consistency contract).
type Batch struct {
	PutJobs     []Job
	DeleteJobs  []string // job ids
	PutNodes    []Node
	DeleteNodes []string // node addresses
	Meta        *Meta    // nil: unchanged
	// PutProfiles and DeleteProfiles (job names) write Profile records
	// (profile.go).
	PutProfiles    []Profile
	DeleteProfiles []string
}

// Len is the number of records the batch writes or deletes.
func (b *Batch) Len() int {
	n := len(b.PutJobs) + len(b.DeleteJobs) + len(b.PutNodes) + len(b.DeleteNodes) + len(b.PutProfiles) + len(b.DeleteProfiles)
	if b.Meta != nil {
		n++
	}
	return n
}

// Store is where the controller keeps its state. See the package doc for
// the consistency contract every implementation gives.
type Store interface {
	// Load returns every record. The controller calls it once, at start.
	Load() (*Snapshot, error)
	// Apply writes a batch atomically and durably.
	Apply(b *Batch) error
	// Close releases the store; it does not delete anything.
	Close() error
}
