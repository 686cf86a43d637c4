package wire

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"time"

	flatbuffers "github.com/google/flatbuffers/go"

	"github.com/pocketstore/pocket/wire/fb"
)

// Control-plane opcodes (see control.fbs). Each request's metadata is the
// table named beside it; a successful reply (opcode|ReplyBit, code 0) carries
// the reply table named after the arrow. An error reply has a non-zero code
// and the data-plane Response table (ReplyError decodes it). Control frames
// carry no payload. The numbers are stable.
const (
	OpRegisterNode  Op = ControlBase + iota // NodeRegister -> NodeAck
	OpHeartbeat                             // Heartbeat -> NodeAck
	OpRegisterJob                           // JobRegister -> PlacementMap
	OpDeregisterJob                         // JobRef -> DropResult
	OpGetMap                                // JobRef -> PlacementMap
	OpStatus                                // (no metadata) -> ClusterStatus
	OpDrainNode                             // DrainNode -> DrainNode
	OpListJobs                              // JobList -> ClusterStatus (jobs only)
	OpChallenge                             // Challenge (empty) -> Challenge (a nonce)
	// OpGoAway is never sent as a request: its reply (request id 0, an
	// error code, the Response table) is what the controller writes to a
	// connection it refuses (a connection limit) before closing it.
	OpGoAway
	OpNodeHello  // NodeHello -> NodeHello (empty)
	OpJobProfile // JobProfileRequest -> JobProfile (profile.go)
)

func init() {
	RegisterOpName(OpRegisterNode, "register-node")
	RegisterOpName(OpHeartbeat, "heartbeat")
	RegisterOpName(OpRegisterJob, "register-job")
	RegisterOpName(OpDeregisterJob, "deregister-job")
	RegisterOpName(OpGetMap, "get-map")
	RegisterOpName(OpStatus, "status")
	RegisterOpName(OpDrainNode, "drain-node")
	RegisterOpName(OpListJobs, "list-jobs")
	RegisterOpName(OpChallenge, "challenge")
	RegisterOpName(OpGoAway, "go-away")
	RegisterOpName(OpNodeHello, "node-hello")
	RegisterOpName(OpJobProfile, "job-profile")
}

// Bounds on control messages, checked when decoding. DefaultControlMaxMeta
// is larger than a data-plane frame's because a status listing of a big
// cluster is one message; control frames never carry a payload.
const (
	DefaultControlMaxMeta = 4 << 20
	MaxAddrLen            = 255  // a node address
	MaxTiers              = 16   // tiers per node
	MaxMetrics            = 256  // extra telemetry figures per report
	MaxMetricName         = 128  // bytes of a metric name
	MaxMapNodes           = 4096 // nodes in a placement map or status listing
	MaxStatusJobs         = 1 << 16
	MaxNonce              = 64   // bytes of a challenge nonce
	MaxHeldJobs           = 1024 // held jobs per heartbeat, drops per ack
	MaxMoveReports        = 1024 // move reports per heartbeat
	MaxJobLoads           = 1024 // per-job figures per heartbeat (a node with more jobs reports the busiest)
	MaxPersistedJobs      = 64   // ended jobs a heartbeat names with persisted values (the largest)
	MaxLostNodes          = 64   // lost nodes a placement map lists
)

// ControlLimits returns the limits of a control connection: a larger
// metadata bound, and no payload at all.
func ControlLimits() Limits {
	l := DefaultLimits()
	l.MaxMeta = DefaultControlMaxMeta
	l.MaxPayload = 0
	return l
}

// NodeState is a node's state in the controller's registry. The numbers
// travel in control messages and must not change.
type NodeState uint8

// Node states.
const (
	NodeActive   NodeState = 1 // serving and taking new placements
	NodeDraining NodeState = 2 // serving, taking no new data, about to leave
	NodeDead     NodeState = 3 // missed its heartbeats
	// NodeJoining appears in one job's map only: the node is in the job's
	// placement, but values it now owns may still be at their owner under
	// the map without it, which is moving them (pocket/drain.go).
	NodeJoining NodeState = 4
)

func (s NodeState) String() string {
	switch s {
	case NodeActive:
		return "active"
	case NodeDraining:
		return "draining"
	case NodeDead:
		return "dead"
	case NodeJoining:
		return "joining"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ControlMessage is a control table's Go form. Encode builds its flatbuffer
// in b (reset first) and returns b's finished bytes, valid until b's next
// use. Decode verifies meta with Verify and the table's TableSpec before
// any accessor runs, checks every length and number against the bounds
// above, and fills the message with copies: a decoded message does not
// alias meta.
type ControlMessage interface {
	Encode(b *flatbuffers.Builder) []byte
	Decode(meta []byte) error
}

// TierStat describes one tier of a node. Kind is a Tier number.
type TierStat struct {
	Kind          uint8
	CapacityBytes int64
	UsedBytes     int64
	Mbps          float64
}

// Metric is an optional telemetry figure.
type Metric struct {
	Name  string
	Value float64
}

// JobEpoch is one entry of a node's job table as a heartbeat ack carries
// it: a live job with its map epoch, or a revoked one. Out says the node
// is not in the job's map at Epoch, so it refuses requests at or below
// Epoch (a client routing by an older map, or a hostile one); a node in
// the map refuses those below it. Epoch 0 with Out false is a controller
// from before Out, for a node outside the map: such a node refuses no
// epoch. Gen and Expires are what the job's token carries (token.Claims),
// so a node can check a token against its entry and derive the token
// itself. Token is no longer sent (it was the job's token, for a
// draining node); it stays in the schema.
type JobEpoch struct {
	Job     string
	Epoch   uint64
	Token   []byte
	Gen     uint64
	Expires time.Time // zero: never; millisecond resolution on the wire
	Revoked bool
	Out     bool // not in the job's map at Epoch (see above)
	// KeepEpoch and Keep let a node in the job's map go on serving the
	// clients of the map last handed out (epoch KeepEpoch, older than
	// Epoch) for the keys that do not move: a request at KeepEpoch for a
	// (key, chunk) whose rendezvous winner over Keep is Keep[0], this
	// node, is taken as one at Epoch. Keep holds the nodes of both maps,
	// each with the larger of its weights (the maps' weights scaled so
	// this node's are equal) and this node with its smaller, so a key
	// Keep[0] wins is its own under both maps and under every set a
	// client places over (live, prior: pocket/drain.go). The controller
	// sends them while the map at Epoch is not handed out yet and the
	// node is active in both maps (controller/changes.go); KeepEpoch 0:
	// none.
	KeepEpoch uint64
	Keep      []MapNode
	// Owner is who registered the job (at most MaxOwnerLen bytes): the
	// tenant its certificate names, else its client's address ("": not
	// said, as by a controller from before Owner). A node bounds the
	// connections one owner's tokens vouch for by it
	// (netio.Config.MaxProvenPerOwner), the job id when it is "".
	Owner string
	// Tiers are the tiers the job's puts may go to, bit 1<<Tier (0: not
	// said, any, as by a controller from before Tiers): the tier the
	// controller placed and priced the job on. A node refuses the job's
	// puts to another (dataplane's errWrongTier).
	Tiers uint8
	// OverQuota says the job's client stores past its byte quota (the
	// controller's MaxBytesPerClient, counted over its live jobs' bytes
	// on their nodes and its ended jobs' persisted values): a node
	// refuses the job's puts (CodeLimit) and serves the rest. The
	// controller lifts it while the job's map changes, whose moves
	// travel as the job's puts (controller/quotafull.go).
	OverQuota bool
	// MaxBytes bounds what the jobs of the job's Owner store on one node
	// together, the bytes of their values on all its tiers (0: no bound):
	// its client's byte quota, which the client's jobs may not pass on
	// one node whatever the controller has yet seen. A node refuses a put
	// past it (CodeLimit).
	MaxBytes int64
}

// MaxOwnerLen bounds JobEpoch.Owner.
const MaxOwnerLen = 96

// DrainNode asks the controller to drain a node, and is its reply with
// the deadline it applied. Proof is token.DrainOrderProof over the
// connection's challenge nonce, the address, the deadline and the
// choices (token.DrainProof with none). DiscardPersisted lets the drain
// go ahead on a node that keeps persist-after-job values of ended jobs,
// which are destroyed when it leaves; without it the controller refuses
// such a drain, and a drain that finds such values at its end waits
// (controller/drain.go). LoseOverflow lets it go ahead when the nodes
// that would take the node's values cannot hold them all (what does not
// fit is lost at the deadline); without it such a drain is refused
// (CodeNoSpace).
type DrainNode struct {
	Addr             string
	Deadline         time.Duration // millisecond resolution on the wire; 0: the default
	Proof            []byte
	DiscardPersisted bool
	LoseOverflow     bool
}

// NodeHello proves the node role for the connection it travels on
// (OpNodeHello), and registers or reports nothing: Proof is
// token.NodeProof over the connection's challenge nonce and Addr, the
// node's data-plane address. The reply is an empty NodeHello.
type NodeHello struct {
	Addr  string
	Proof []byte
}

// NodeRegister is a storage node's registration. Incarnation is random
// per start of the node's process (0: an older node, which sends none):
// another one at a known address means the node restarted, empty.
type NodeRegister struct {
	Addr        string
	Tiers       []TierStat
	Proof       []byte
	Cores       uint32
	Incarnation uint64
}

// Heartbeat is a node's periodic report. Since is the controller revision
// the node's job table is at; SnapRev and SnapAfter, when a snapshot is
// being received, its revision and the gen of the last job received.
type Heartbeat struct {
	Addr       string
	Proof      []byte
	Tiers      []TierStat
	RxMbps     float64
	TxMbps     float64
	CPUPercent float64
	Metrics    []Metric
	Since      uint64
	SnapRev    uint64
	SnapAfter  uint64
	// Held lists jobs with data on the node that its job table does not
	// hold live (the controller's last snapshot did not list them): orphan
	// candidates, at most MaxHeldJobs per heartbeat, in turn.
	Held []HeldJob
	// Moves reports the node's progress in moving values of jobs whose
	// maps changed, at most MaxMoveReports.
	Moves []MoveReport
	// Loads is each job's own traffic and bytes on the node (the jobs
	// that sent requests here), the busiest first, at most MaxJobLoads.
	// Empty from one no job has used yet, and from a node that does not
	// count per job (an older one, whose heartbeats carry no Incarnation
	// either): for that one alone the controller splits RxMbps and TxMbps
	// among the node's jobs by allotment.
	Loads []JobLoad
	// Incarnation is the node's, as it registered with (0: not sent): a
	// controller that restarted from its state learns it here.
	Incarnation uint64
	// Early marks a heartbeat sent before the interval was up because a
	// request showed the node's job table behind (dataplane.Node.
	// SyncWanted): it brings the table's changes; its rates cover a sliver
	// of time, so the controller keeps them out of the node's figures (the
	// node's next heartbeat reports the whole interval).
	Early bool
	// Persisted names ended jobs (deregistered, or expired) whose
	// persist-after-job values stay on the node, with their bytes there
	// (all tiers), the largest first, at most MaxPersistedJobs; a job
	// whose values are still being dropped counts with its bytes so far.
	// PersistedJobs and PersistedBytes count all of them. The controller
	// does not know these jobs any more: the figures are what keeps a
	// drain or scale-in from taking the values away unasked
	// (controller/drain.go). Zero from a node that does not report them.
	Persisted      []HeldJob
	PersistedJobs  uint64
	PersistedBytes int64
}

// JobLoad is one job's use of a node, as a heartbeat reports it: the
// value (payload) bytes the node received for the job (puts) and sent for
// it (gets) over the heartbeat's interval, in Mb/s (10^6 bits a second),
// and the bytes the job holds on the node (all tiers). The node's RxMbps
// and TxMbps include them.
type JobLoad struct {
	Job    string
	RxMbps float64
	TxMbps float64
	Bytes  int64
}

// MoveReport is a node's progress in moving one job's values after the
// job's map changed: Left values on the node have another owner under the
// map of Epoch (0: all moved).
type MoveReport struct {
	Job   string
	Epoch uint64
	Left  int64
}

// HeldJob is a job whose data a node holds, with its bytes on the node
// (all tiers), as a heartbeat reports it and an ack's drop list names it.
type HeldJob struct {
	Job   string
	Bytes int64
}

// NodeAck answers a registration or heartbeat. Known false asks the node to
// register again (the controller restarted or forgot it). Jobs bring the
// node's job table to revision Rev: the changes since the heartbeat's
// revision, or with Full a page of a snapshot of every live job (After is
// the gen of the page's last job). More asks the node to heartbeat again at
// once for the rest.
type NodeAck struct {
	Known     bool
	State     NodeState
	Heartbeat time.Duration // millisecond resolution on the wire
	Jobs      []JobEpoch
	Rev       uint64
	Full      bool
	More      bool
	After     uint64
	// Drop names held jobs (Heartbeat.Held) whose data the node must drop
	// now: the controller does not know them (past its orphan grace) or
	// revoked them. At most MaxHeldJobs.
	Drop []HeldJob
	// Lease is the least silence after which the controller may take the
	// node for lost (its DeadAfter plus its dead-node grace; DeadAfter
	// alone for a draining node), counted from when the node sent the
	// heartbeat or registration this ack answers: past it the node must
	// not serve its jobs until another ack comes (dataplane/lease.go). 0:
	// no lease (the controller never takes the node for lost, or is older
	// than leases). Millisecond resolution on the wire, at most
	// MaxLease.
	Lease time.Duration
}

// RevokeLinger is how long a node keeps a job revoked on it (deregistered,
// expired, or dropped by the controller's order, wire.OpDropJob) refusing
// before it forgets the job; a job it has forgotten it serves again once a
// controller's ack lists it (dataplane.NodeConfig.RevokeLinger). The
// controller takes a node it ordered to drop a live job's data back into
// that job's map only this long after the order (controller
// Config.RevokeLinger).
const RevokeLinger = 30 * time.Second

// MaxLease bounds NodeAck.Lease on the wire (about 49 days, a uint32 of
// milliseconds); a longer one is sent as MaxLease.
const MaxLease = time.Duration(math.MaxUint32) * time.Millisecond

// JobHints are Pocket's job hints; zero means "not given".
type JobHints struct {
	Lambdas          uint32
	CapacityBytes    int64
	PeakMbps         float64
	LatencySensitive bool
}

// JobRegister asks for a job's resources. TTL, when not zero, asks for a
// token that expires after it (the controller may cap it); 0 takes the
// controller's default.
type JobRegister struct {
	Name  string
	Hints JobHints
	TTL   time.Duration // millisecond resolution on the wire
}

// JobRef names a job and carries its token. EndedOK, in an OpGetMap
// request, says the caller takes an ended job's final map: a controller
// that keeps it (the job ended, deregistered or expired, and nodes still
// keep its persisted values) answers with it, PlacementMap.Ended set,
// when the token is the job's (expired or not). Without it (older
// clients) such a job is unknown (CodeUnknownJob), as before. Other ops
// ignore it.
//
// Proof, in an OpDeregisterJob request, is an operator's
// token.EndJobProof for Job over the connection's challenge, sent in
// place of Token: the controller ends the job without its token (whose
// bearer may have lost it). Only a peer holding the operator role sends
// it. Other ops ignore it.
type JobRef struct {
	Job     string
	Token   []byte
	EndedOK bool
	Proof   []byte
}

// MapNode is one node of a placement map. Since is the first map epoch
// at which the node holds its whole share of the job's values: 0 for a
// node placed when the job registered, SinceNotYet while a change still
// moves values to it (it joins, or takes a draining node's share), else
// the epoch that change ended at. A client placing a lost node's keys
// (LostNode) leaves out the nodes whose Since is not before the loss:
// they never held what the lost node held.
type MapNode struct {
	Addr   string
	Weight float64
	State  NodeState
	Since  uint64
}

// SinceNotYet is MapNode.Since of a node values are still moving to.
const SinceNotYet = math.MaxUint64

// PlacementMap is a job's placement map. Tier is a Tier number.
// Expires is when the token stops working (zero: never). Lost lists the
// nodes that left the map because they were dead past the controller's
// grace (at most MaxLostNodes, oldest first): keys they owned are gone.
// Ended marks an ended job's final map (an OpGetMap answer to a JobRef
// with EndedOK): the nodes keep the job's persisted values read-only
// under it, and take no put; its nodes' State is NodeDraining or
// NodeJoining as the map last named them, NodeActive otherwise, and it
// has no Lost nodes.
type PlacementMap struct {
	Job     string
	Tier    uint8
	Epoch   uint64
	Nodes   []MapNode
	Token   []byte
	Expires time.Time // millisecond resolution on the wire
	Lost    []LostNode
	Ended   bool
	// A registration's reply also gives the job's allotment (bandwidth in
	// Mb/s, capacity in bytes; 0: none) and where its size came from;
	// other replies leave them zero (Sized SizedUnsaid).
	AllocMbps  float64
	AllocBytes int64
	Sized      SizedFrom
	// It also gives the registering client's allotment quotas (bytes,
	// Mb/s; 0: none) and what is left of them with this job allotted, so
	// a tenant, who may not read the cluster's status, sees what it may
	// still ask.
	Quota QuotaLeft
	// Note is what a registration's client should know of it ("":
	// nothing): that nodes the autoscaler started for the job did not
	// come, so the job is placed over the nodes there are.
	Note string
}

// QuotaLeft is a client's allotment quota (controller.Config's
// MaxBytesPerClient, MaxMbpsPerClient; 0: none) and what is left of it.
type QuotaLeft struct {
	Bytes, LeftBytes int64
	Mbps, LeftMbps   float64
}

// SizedFrom is where a registered job's size came from.
type SizedFrom uint8

// Sizes' sources. A value past SizedDefault (a newer controller's)
// decodes as SizedUnsaid.
const (
	SizedUnsaid  SizedFrom = iota // not said: not a registration's reply, or an older controller's
	SizedHints                    // the registration's hints
	SizedProfile                  // the profile of earlier jobs of its name (its tenant's, over TLS)
	SizedDefault                  // Pocket's default size
)

func (s SizedFrom) String() string {
	switch s {
	case SizedHints:
		return "hints"
	case SizedProfile:
		return "profile"
	case SizedDefault:
		return "default"
	}
	return ""
}

// LostNode is a node that left a job's map dead. Weight is on the scale
// of the map's current weights (rescaled whenever they are), so weighted
// rendezvous hashing over the map's nodes and its lost nodes together
// finds the node a key had before any of them left. Epoch is the first map
// epoch without the node.
type LostNode struct {
	Addr   string
	Weight float64
	Epoch  uint64
}

// DropResult is the outcome of deregistering a job.
type DropResult struct {
	Nodes   uint32
	Failed  uint32
	Values  uint64
	Bytes   int64
	Message string
}

// NodeStatus is one node in a status listing.
type NodeStatus struct {
	Addr       string
	State      NodeState
	Tiers      []TierStat
	RxMbps     float64
	TxMbps     float64
	CPUPercent float64
	Cores      uint32
	LastSeen   time.Duration // since the last heartbeat; ms resolution
	Jobs       uint32
	Metrics    []Metric
	// Restored: the node was read from the controller's durable state and
	// has not been heard from since the controller started (a restart or
	// a failover); LastSeen is 0 then and says nothing.
	Restored bool
	// Persisted names the ended jobs whose persist-after-job values the
	// node keeps, with their bytes there, the largest first, as its last
	// heartbeat named them (Heartbeat.Persisted: at most MaxPersistedJobs;
	// the metrics MetricPersistedJobs and MetricPersistedBytes count all).
	// Empty from a controller that does not send it.
	Persisted []HeldJob
}

// JobStatus is one job in a status listing.
type JobStatus struct {
	Job        string
	Name       string
	Tier       uint8
	Epoch      uint64
	Nodes      []MapNode
	Hints      JobHints
	AllocMbps  float64
	AllocBytes int64
	Age        time.Duration // ms resolution
	// UsedMbps and UsedBytes are the job's own traffic (Mb/s, the larger
	// of rx and tx per node averaged over 3 heartbeats) and bytes on its
	// nodes, from the nodes' per-job figures (split by allotment for a
	// node that reports none).
	UsedMbps  float64
	UsedBytes int64
	// Tenant is the tenant that registered the job (its client
	// certificate's name, as controller.TenantOf labels it; at most
	// MaxTenantLen bytes): "" without TLS.
	Tenant string
	// Settling: the job's map is changing (values move between its
	// nodes), or has changed and not every node of it has reported the
	// heartbeats its figures average over since, so UsedMbps and
	// UsedBytes are partial (a node's latest report may predate the
	// values it received).
	Settling bool
}

// MaxTenantLen bounds a status reply's tenant label.
const MaxTenantLen = 64

// ClusterStatus lists the cluster's nodes and jobs. A status reply holds
// every node (up to the reply's size bound; NodeCount says how many there
// are), the number of jobs and the first of them; NextJob, when not zero,
// is the OpListJobs cursor for the rest. AutoscaleMaxNodes is the
// autoscaler's largest node count, 0 when the controller does not
// autoscale (it then starts no node for a job that needs more). Prices is
// the controller's price table (an OpStatus reply); nil when the reply
// carries none (a controller older than the field, an OpListJobs page).
type ClusterStatus struct {
	Nodes             []NodeStatus
	Jobs              []JobStatus
	JobCount          uint64
	NodeCount         uint32
	NextJob           uint64
	AutoscaleMaxNodes uint32
	Prices            *PriceTable
	// Clients are the clients whose live jobs are allotted the most
	// (bytes, then Mb/s), at most MaxStatusClients, in an OpStatus reply;
	// QuotaBytes and QuotaMbps the allotment quota per client (0: none).
	Clients    []ClientHold
	QuotaBytes int64
	QuotaMbps  float64
	// Retired are the drains that ended lately, the latest first (an
	// OpStatus reply; at most MaxStatusRetired): each node retired, or
	// restarted while draining, with how, so that a drain's waiter learns
	// how its node left.
	Retired []RetiredNode
}

// RetiredNode is a node whose drain ended lately (retired, or restarted
// while draining): when, why, and whether values it held were left
// unmoved (Lost: it died or restarted while draining, or its drain's
// deadline passed), whose keys then answer lost. The controller keeps
// these in memory only.
type RetiredNode struct {
	Addr string
	At   time.Time // millisecond resolution on the wire
	Why  string
	Lost bool
}

// MaxStatusRetired bounds ClusterStatus.Retired, maxRetiredWhy a reason.
const (
	MaxStatusRetired = 64
	maxRetiredWhy    = 256
)

// ClientHold is what one client's live jobs are allotted together (bytes,
// Mb/s), and the bytes its ended jobs' persist-after-job values hold as
// the nodes last reported (they count against its byte quota too; 0 from
// an older controller); Client is "tenant NAME" or "client ADDR".
// StoredBytes is what it stores, its live jobs' bytes on their nodes and
// PersistedBytes; OverQuota says that is past the byte quota, and the
// nodes refuse its live jobs' puts (controller/quotafull.go).
type ClientHold struct {
	Client         string
	Jobs           uint32
	AllocBytes     int64
	AllocMbps      float64
	PersistedBytes int64
	StoredBytes    int64
	OverQuota      bool
}

// MaxStatusClients bounds ClusterStatus.Clients, maxClientName a
// ClientHold's name (controller's "tenant " and a tenant label, or
// "client " and an address).
const (
	MaxStatusClients = 100
	maxClientName    = 128
)

// PriceTable is a controller's price table (controller.Prices), US
// dollars an hour: per GiB-hour of DRAM and of NVMe, and per Gb/s-hour of
// network bandwidth. The decoder refuses a negative or non-finite price.
type PriceTable struct {
	DRAMGiBHour float64
	NVMeGiBHour float64
	GbpsHour    float64
}

// JobList asks for up to Limit jobs after the cursor After (a
// ClusterStatus.NextJob; 0 from the first), in registration order.
type JobList struct {
	After uint64
	Limit uint32
}

// Challenge carries a connection's nonce (OpChallenge's reply).
type Challenge struct {
	Nonce []byte
}

// Table layouts for the verifier, in field-id order as in control.fbs.
var (
	tierStatSpec = TableSpec{Name: "TierStat", Fields: []Field{
		{Kind: Scalar1}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8},
	}}
	metricSpec   = TableSpec{Name: "Metric", Fields: []Field{{Kind: String}, {Kind: Scalar8}}}
	jobEpochSpec = TableSpec{Name: "JobEpoch", Fields: []Field{{Kind: String}, {Kind: Scalar8}, {Kind: Bytes},
		{Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar1}, {Kind: Scalar1}, {Kind: Scalar8}, {Kind: TableVec, Sub: &mapNodeSpec},
		{Kind: String}, {Kind: Scalar1}, {Kind: Scalar1}, {Kind: Scalar8}}}
	drainSpec   = TableSpec{Name: "DrainNode", Fields: []Field{{Kind: String}, {Kind: Scalar8}, {Kind: Bytes}, {Kind: Scalar1}, {Kind: Scalar1}}}
	helloSpec   = TableSpec{Name: "NodeHello", Fields: []Field{{Kind: String}, {Kind: Bytes}}}
	nodeRegSpec = TableSpec{Name: "NodeRegister", Fields: []Field{
		{Kind: String}, {Kind: TableVec, Sub: &tierStatSpec}, {Kind: Bytes}, {Kind: Scalar4}, {Kind: Scalar8},
	}}
	heartbeatSpec = TableSpec{Name: "Heartbeat", Fields: []Field{
		{Kind: String}, {Kind: Bytes}, {Kind: TableVec, Sub: &tierStatSpec},
		{Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: TableVec, Sub: &metricSpec},
		{Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: TableVec, Sub: &heldJobSpec},
		{Kind: TableVec, Sub: &moveReportSpec}, {Kind: TableVec, Sub: &jobLoadSpec}, {Kind: Scalar8}, {Kind: Scalar1},
		{Kind: TableVec, Sub: &heldJobSpec}, {Kind: Scalar8}, {Kind: Scalar8},
	}}
	jobLoadSpec    = TableSpec{Name: "JobLoad", Fields: []Field{{Kind: String}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}}}
	moveReportSpec = TableSpec{Name: "MoveReport", Fields: []Field{{Kind: String}, {Kind: Scalar8}, {Kind: Scalar8}}}
	heldJobSpec    = TableSpec{Name: "HeldJob", Fields: []Field{{Kind: String}, {Kind: Scalar8}}}
	nodeAckSpec    = TableSpec{Name: "NodeAck", Fields: []Field{
		{Kind: Scalar1}, {Kind: Scalar1}, {Kind: Scalar4}, {Kind: TableVec, Sub: &jobEpochSpec},
		{Kind: Scalar8}, {Kind: Scalar1}, {Kind: Scalar1}, {Kind: Scalar8}, {Kind: TableVec, Sub: &heldJobSpec},
		{Kind: Scalar4},
	}}
	jobRegSpec = TableSpec{Name: "JobRegister", Fields: []Field{
		{Kind: String}, {Kind: Scalar4}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar1}, {Kind: Scalar8},
	}}
	jobRefSpec  = TableSpec{Name: "JobRef", Fields: []Field{{Kind: String}, {Kind: Bytes}, {Kind: Scalar1}, {Kind: Bytes}}}
	mapNodeSpec = TableSpec{Name: "MapNode", Fields: []Field{{Kind: String}, {Kind: Scalar8}, {Kind: Scalar1}, {Kind: Scalar8}}}
	mapSpec     = TableSpec{Name: "PlacementMap", Fields: []Field{
		{Kind: String}, {Kind: Scalar1}, {Kind: Scalar8}, {Kind: TableVec, Sub: &mapNodeSpec}, {Kind: Bytes},
		{Kind: Scalar8}, {Kind: TableVec, Sub: &lostNodeSpec}, {Kind: Scalar1},
		{Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar1},
		{Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: String},
	}}
	lostNodeSpec = TableSpec{Name: "LostNode", Fields: []Field{{Kind: String}, {Kind: Scalar8}, {Kind: Scalar8}}}
	dropSpec     = TableSpec{Name: "DropResult", Fields: []Field{
		{Kind: Scalar4}, {Kind: Scalar4}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: String},
	}}
	nodeStatusSpec = TableSpec{Name: "NodeStatus", Fields: []Field{
		{Kind: String}, {Kind: Scalar1}, {Kind: TableVec, Sub: &tierStatSpec},
		{Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar4}, {Kind: Scalar8},
		{Kind: Scalar4}, {Kind: TableVec, Sub: &metricSpec}, {Kind: Scalar1}, {Kind: TableVec, Sub: &heldJobSpec},
	}}
	jobStatusSpec = TableSpec{Name: "JobStatus", Fields: []Field{
		{Kind: String}, {Kind: Scalar1}, {Kind: Scalar8}, {Kind: TableVec, Sub: &mapNodeSpec},
		{Kind: TableField, Sub: &jobRegSpec}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8},
		{Kind: Scalar8}, {Kind: Scalar8}, {Kind: String}, {Kind: Scalar1},
	}}
	priceTableSpec = TableSpec{Name: "PriceTable", Fields: []Field{{Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}}}
	clusterSpec    = TableSpec{Name: "ClusterStatus", Fields: []Field{
		{Kind: TableVec, Sub: &nodeStatusSpec}, {Kind: TableVec, Sub: &jobStatusSpec},
		{Kind: Scalar8}, {Kind: Scalar4}, {Kind: Scalar8}, {Kind: Scalar4}, {Kind: TableField, Sub: &priceTableSpec},
		{Kind: TableVec, Sub: &clientHoldSpec}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: TableVec, Sub: &retiredNodeSpec},
	}}
	clientHoldSpec  = TableSpec{Name: "ClientHold", Fields: []Field{{Kind: String}, {Kind: Scalar4}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar8}, {Kind: Scalar1}}}
	retiredNodeSpec = TableSpec{Name: "RetiredNode", Fields: []Field{{Kind: String}, {Kind: Scalar8}, {Kind: String}, {Kind: Scalar1}}}
	jobListSpec     = TableSpec{Name: "JobList", Fields: []Field{{Kind: Scalar8}, {Kind: Scalar4}}}
	challengeSpec   = TableSpec{Name: "Challenge", Fields: []Field{{Kind: Bytes}}}
)

// root verifies meta against spec and returns the root table's position.
// Empty metadata is refused: every control message has a table.
func root(meta []byte, spec *TableSpec) (flatbuffers.UOffsetT, error) {
	if len(meta) == 0 {
		return 0, Errorf(CodeMalformed, "%s: no metadata", spec.Name)
	}
	if err := Verify(meta, spec); err != nil {
		return 0, err
	}
	return flatbuffers.GetUOffsetT(meta), nil
}

// Checks on decoded values. Every float must be finite and not negative,
// every size not negative, every count and length within its bound.

func checkLen(what string, got, limit int) error {
	if got > limit {
		return Errorf(CodeTooLarge, "%s: %d over limit %d", what, got, limit)
	}
	return nil
}

func checkNum(what string, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return Errorf(CodeMalformed, "%s: %v is not a finite non-negative number", what, f)
	}
	return nil
}

func checkSize(what string, n int64) error {
	if n < 0 {
		return Errorf(CodeMalformed, "%s: negative (%d)", what, n)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func msToDuration(ms int64) time.Duration {
	if ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// unixMs is t in Unix milliseconds, 0 for the zero time (and for times at
// or before the epoch, which no expiry is).
func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixMilli(), 0)
}

// fromUnixMs is unixMs's inverse: 0 (or a negative value) is the zero time.
func fromUnixMs(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// ---- element tables ----

func decodeTiers(n int, at func(*fb.TierStat, int) bool) ([]TierStat, error) {
	if err := checkLen("tiers", n, MaxTiers); err != nil || n == 0 {
		return nil, err
	}
	out := make([]TierStat, n)
	var t fb.TierStat
	for i := range out {
		at(&t, i)
		out[i] = TierStat{Kind: t.Kind(), CapacityBytes: t.CapacityBytes(), UsedBytes: t.UsedBytes(), Mbps: t.Mbps()}
		if err := firstErr(checkBytes("tier capacity", out[i].CapacityBytes, MaxNodeBytes),
			checkBytes("tier used", out[i].UsedBytes, MaxNodeBytes), checkTierMbps(out[i].Mbps)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func encodeTiers(b *flatbuffers.Builder, tiers []TierStat, start func(*flatbuffers.Builder, int) flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	if len(tiers) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(tiers))
	for i, t := range tiers {
		fb.TierStatStart(b)
		fb.TierStatAddKind(b, t.Kind)
		fb.TierStatAddCapacityBytes(b, t.CapacityBytes)
		fb.TierStatAddUsedBytes(b, t.UsedBytes)
		fb.TierStatAddMbps(b, t.Mbps)
		offs[i] = fb.TierStatEnd(b)
	}
	return endVector(b, offs, start)
}

func decodeMetrics(n int, at func(*fb.Metric, int) bool) ([]Metric, error) {
	if err := checkLen("metrics", n, MaxMetrics); err != nil || n == 0 {
		return nil, err
	}
	out := make([]Metric, n)
	var m fb.Metric
	for i := range out {
		at(&m, i)
		name := m.Name()
		if err := checkLen("metric name", len(name), MaxMetricName); err != nil {
			return nil, err
		}
		// Metric values may be negative (deltas); they must be finite.
		v := m.Value()
		if err := checkMetric(name, v); err != nil {
			return nil, err
		}
		out[i] = Metric{Name: string(name), Value: v}
	}
	return out, nil
}

func encodeMetrics(b *flatbuffers.Builder, ms []Metric, start func(*flatbuffers.Builder, int) flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	if len(ms) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(ms))
	for i, m := range ms {
		name := b.CreateString(m.Name)
		fb.MetricStart(b)
		fb.MetricAddName(b, name)
		fb.MetricAddValue(b, m.Value)
		offs[i] = fb.MetricEnd(b)
	}
	return endVector(b, offs, start)
}

// decodeHeld decodes a HeldJob vector: at most MaxHeldJobs, each a valid
// job id with a byte count that is not negative.
func decodeHeld(n int, at func(*fb.HeldJob, int) bool) ([]HeldJob, error) {
	if err := checkLen("held jobs", n, MaxHeldJobs); err != nil || n == 0 {
		return nil, err
	}
	out := make([]HeldJob, n)
	var h fb.HeldJob
	for i := range out {
		at(&h, i)
		if err := firstErr(checkJob(h.Job()), checkBytes("held bytes", h.Bytes(), MaxNodeBytes)); err != nil {
			return nil, err
		}
		out[i] = HeldJob{Job: string(h.Job()), Bytes: h.Bytes()}
	}
	return out, nil
}

func encodeHeld(b *flatbuffers.Builder, hs []HeldJob, start func(*flatbuffers.Builder, int) flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	if len(hs) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(hs))
	for i, h := range hs {
		name := b.CreateString(h.Job)
		fb.HeldJobStart(b)
		fb.HeldJobAddJob(b, name)
		fb.HeldJobAddBytes(b, h.Bytes)
		offs[i] = fb.HeldJobEnd(b)
	}
	return endVector(b, offs, start)
}

func decodeMoves(n int, at func(*fb.MoveReport, int) bool) ([]MoveReport, error) {
	if err := checkLen("move reports", n, MaxMoveReports); err != nil || n == 0 {
		return nil, err
	}
	out := make([]MoveReport, n)
	var r fb.MoveReport
	for i := range out {
		at(&r, i)
		if err := firstErr(checkJob(r.Job()), checkSize("values left", r.Left())); err != nil {
			return nil, err
		}
		out[i] = MoveReport{Job: string(r.Job()), Epoch: r.Epoch(), Left: r.Left()}
	}
	return out, nil
}

func encodeMoves(b *flatbuffers.Builder, ms []MoveReport) flatbuffers.UOffsetT {
	if len(ms) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(ms))
	for i, m := range ms {
		name := b.CreateString(m.Job)
		fb.MoveReportStart(b)
		fb.MoveReportAddJob(b, name)
		fb.MoveReportAddEpoch(b, m.Epoch)
		fb.MoveReportAddLeft(b, m.Left)
		offs[i] = fb.MoveReportEnd(b)
	}
	return endVector(b, offs, fb.HeartbeatStartMovesVector)
}

// decodeLoads decodes a JobLoad vector: at most MaxJobLoads, each a valid
// job id with finite non-negative rates and a byte count that is not
// negative.
func decodeLoads(n int, at func(*fb.JobLoad, int) bool) ([]JobLoad, error) {
	if err := checkLen("job loads", n, MaxJobLoads); err != nil || n == 0 {
		return nil, err
	}
	out := make([]JobLoad, n)
	var l fb.JobLoad
	for i := range out {
		at(&l, i)
		if err := firstErr(checkJob(l.Job()), checkMbps("job rx Mb/s", l.RxMbps(), MaxNodeMbps), checkMbps("job tx Mb/s", l.TxMbps(), MaxNodeMbps),
			checkBytes("job bytes", l.Bytes(), MaxNodeBytes)); err != nil {
			return nil, err
		}
		out[i] = JobLoad{Job: string(l.Job()), RxMbps: l.RxMbps(), TxMbps: l.TxMbps(), Bytes: l.Bytes()}
	}
	return out, nil
}

func encodeLoads(b *flatbuffers.Builder, ls []JobLoad) flatbuffers.UOffsetT {
	if len(ls) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(ls))
	for i, l := range ls {
		name := b.CreateString(l.Job)
		fb.JobLoadStart(b)
		fb.JobLoadAddJob(b, name)
		fb.JobLoadAddRxMbps(b, l.RxMbps)
		fb.JobLoadAddTxMbps(b, l.TxMbps)
		fb.JobLoadAddBytes(b, l.Bytes)
		offs[i] = fb.JobLoadEnd(b)
	}
	return endVector(b, offs, fb.HeartbeatStartLoadsVector)
}

func decodeMapNodes(n int, at func(*fb.MapNode, int) bool) ([]MapNode, error) {
	if err := checkLen("map nodes", n, MaxMapNodes); err != nil || n == 0 {
		return nil, err
	}
	out := make([]MapNode, n)
	seen := make(map[string]struct{}, n)
	var m fb.MapNode
	for i := range out {
		at(&m, i)
		addr := m.Addr()
		if err := firstErr(checkLen("node address", len(addr), MaxAddrLen), checkNum("weight", m.Weight())); err != nil {
			return nil, err
		}
		out[i] = MapNode{Addr: string(addr), Weight: m.Weight(), State: NodeState(m.State()), Since: m.Since()}
		if _, dup := seen[out[i].Addr]; dup {
			// Rendezvous hashing over a set naming a node twice gives it
			// two draws: a map from a broken or hostile controller.
			return nil, Errorf(CodeMalformed, "node %q listed twice", out[i].Addr)
		}
		seen[out[i].Addr] = struct{}{}
	}
	return out, nil
}

func encodeMapNodes(b *flatbuffers.Builder, ns []MapNode, start func(*flatbuffers.Builder, int) flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	if len(ns) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(ns))
	for i, n := range ns {
		addr := b.CreateString(n.Addr)
		fb.MapNodeStart(b)
		fb.MapNodeAddAddr(b, addr)
		fb.MapNodeAddWeight(b, n.Weight)
		fb.MapNodeAddState(b, uint8(n.State))
		fb.MapNodeAddSince(b, n.Since)
		offs[i] = fb.MapNodeEnd(b)
	}
	return endVector(b, offs, start)
}

// endVector writes a vector of already built tables.
func endVector(b *flatbuffers.Builder, offs []flatbuffers.UOffsetT, start func(*flatbuffers.Builder, int) flatbuffers.UOffsetT) flatbuffers.UOffsetT {
	start(b, len(offs))
	for i := len(offs) - 1; i >= 0; i-- {
		b.PrependUOffsetT(offs[i])
	}
	return b.EndVector(len(offs))
}

// str creates a string unless s is empty (absent fields read back as "").
func str(b *flatbuffers.Builder, s string) flatbuffers.UOffsetT {
	if s == "" {
		return 0
	}
	return b.CreateString(s)
}

func bytesVec(b *flatbuffers.Builder, v []byte) flatbuffers.UOffsetT {
	if len(v) == 0 {
		return 0
	}
	return b.CreateByteVector(v)
}

func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func checkAddr(addr []byte) error {
	if len(addr) == 0 {
		return Errorf(CodeBadKey, "empty node address")
	}
	return checkLen("node address", len(addr), MaxAddrLen)
}

func checkJob(job []byte) error {
	if len(job) == 0 {
		return Errorf(CodeBadKey, "empty job id")
	}
	return checkLen("job id", len(job), DefaultMaxJobLen)
}

// ---- NodeRegister ----

// Encode implements ControlMessage.
func (m *NodeRegister) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	addr, proof := str(b, m.Addr), bytesVec(b, m.Proof)
	tiers := encodeTiers(b, m.Tiers, fb.NodeRegisterStartTiersVector)
	fb.NodeRegisterStart(b)
	addOff(b, addr, fb.NodeRegisterAddAddr)
	addOff(b, tiers, fb.NodeRegisterAddTiers)
	addOff(b, proof, fb.NodeRegisterAddProof)
	fb.NodeRegisterAddCores(b, m.Cores)
	fb.NodeRegisterAddIncarnation(b, m.Incarnation)
	b.Finish(fb.NodeRegisterEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage.
func (m *NodeRegister) Decode(meta []byte) error {
	*m = NodeRegister{}
	pos, err := root(meta, &nodeRegSpec)
	if err != nil {
		return err
	}
	var t fb.NodeRegister
	t.Init(meta, pos)
	if err := firstErr(checkAddr(t.Addr()), checkLen("proof", len(t.ProofBytes()), DefaultMaxToken), checkCores(t.Cores())); err != nil {
		return err
	}
	tiers, err := decodeTiers(t.TiersLength(), t.Tiers)
	if err != nil {
		return err
	}
	*m = NodeRegister{Addr: string(t.Addr()), Tiers: tiers, Proof: cloneBytes(t.ProofBytes()), Cores: t.Cores(),
		Incarnation: t.Incarnation()}
	return nil
}

// addOff adds an offset field when it is present.
func addOff(b *flatbuffers.Builder, off flatbuffers.UOffsetT, add func(*flatbuffers.Builder, flatbuffers.UOffsetT)) {
	if off != 0 {
		add(b, off)
	}
}

// ---- Heartbeat ----

// Encode implements ControlMessage.
func (m *Heartbeat) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	addr, proof := str(b, m.Addr), bytesVec(b, m.Proof)
	tiers := encodeTiers(b, m.Tiers, fb.HeartbeatStartTiersVector)
	metrics := encodeMetrics(b, m.Metrics, fb.HeartbeatStartMetricsVector)
	held := encodeHeld(b, m.Held, fb.HeartbeatStartHeldVector)
	moves := encodeMoves(b, m.Moves)
	loads := encodeLoads(b, m.Loads)
	persisted := encodeHeld(b, m.Persisted, fb.HeartbeatStartPersistedVector)
	fb.HeartbeatStart(b)
	addOff(b, addr, fb.HeartbeatAddAddr)
	addOff(b, proof, fb.HeartbeatAddProof)
	addOff(b, tiers, fb.HeartbeatAddTiers)
	fb.HeartbeatAddRxMbps(b, m.RxMbps)
	fb.HeartbeatAddTxMbps(b, m.TxMbps)
	fb.HeartbeatAddCpuPercent(b, m.CPUPercent)
	addOff(b, metrics, fb.HeartbeatAddMetrics)
	fb.HeartbeatAddSince(b, m.Since)
	fb.HeartbeatAddSnapRev(b, m.SnapRev)
	fb.HeartbeatAddSnapAfter(b, m.SnapAfter)
	addOff(b, held, fb.HeartbeatAddHeld)
	addOff(b, moves, fb.HeartbeatAddMoves)
	addOff(b, loads, fb.HeartbeatAddLoads)
	fb.HeartbeatAddIncarnation(b, m.Incarnation)
	fb.HeartbeatAddEarly(b, m.Early)
	addOff(b, persisted, fb.HeartbeatAddPersisted)
	fb.HeartbeatAddPersistedJobs(b, m.PersistedJobs)
	fb.HeartbeatAddPersistedBytes(b, m.PersistedBytes)
	b.Finish(fb.HeartbeatEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage.
func (m *Heartbeat) Decode(meta []byte) error {
	*m = Heartbeat{}
	pos, err := root(meta, &heartbeatSpec)
	if err != nil {
		return err
	}
	var t fb.Heartbeat
	t.Init(meta, pos)
	if err := firstErr(checkAddr(t.Addr()), checkLen("proof", len(t.ProofBytes()), DefaultMaxToken),
		checkMbps("rx Mb/s", t.RxMbps(), MaxNodeMbps), checkMbps("tx Mb/s", t.TxMbps(), MaxNodeMbps), checkCPU(t.CpuPercent())); err != nil {
		return err
	}
	tiers, err := decodeTiers(t.TiersLength(), t.Tiers)
	if err != nil {
		return err
	}
	metrics, err := decodeMetrics(t.MetricsLength(), t.Metrics)
	if err != nil {
		return err
	}
	held, err := decodeHeld(t.HeldLength(), t.Held)
	if err != nil {
		return err
	}
	moves, err := decodeMoves(t.MovesLength(), t.Moves)
	if err != nil {
		return err
	}
	loads, err := decodeLoads(t.LoadsLength(), t.Loads)
	if err != nil {
		return err
	}
	persisted, err := decodePersisted(&t)
	if err != nil {
		return err
	}
	*m = Heartbeat{Addr: string(t.Addr()), Proof: cloneBytes(t.ProofBytes()), Tiers: tiers,
		RxMbps: t.RxMbps(), TxMbps: t.TxMbps(), CPUPercent: t.CpuPercent(), Metrics: metrics,
		Since: t.Since(), SnapRev: t.SnapRev(), SnapAfter: t.SnapAfter(), Held: held, Moves: moves, Loads: loads,
		Incarnation: t.Incarnation(), Early: t.Early(),
		Persisted: persisted, PersistedJobs: t.PersistedJobs(), PersistedBytes: t.PersistedBytes()}
	return nil
}

// decodePersisted decodes a heartbeat's persisted list (at most
// MaxPersistedJobs, each a valid job id with bytes within MaxNodeBytes)
// and checks its totals: bytes within MaxNodeBytes, jobs within
// MaxNodeJobs and at least the list's count.
func decodePersisted(t *fb.Heartbeat) ([]HeldJob, error) {
	n := t.PersistedLength()
	if err := firstErr(checkLen("persisted jobs", n, MaxPersistedJobs), checkBytes("persisted bytes", t.PersistedBytes(), MaxNodeBytes)); err != nil {
		return nil, err
	}
	if t.PersistedJobs() > MaxNodeJobs {
		return nil, Errorf(CodeTooLarge, "heartbeat: %d persisted jobs counted, over the bound of %d", t.PersistedJobs(), uint64(MaxNodeJobs))
	}
	if t.PersistedJobs() < uint64(n) {
		return nil, Errorf(CodeMalformed, "heartbeat: %d persisted job(s) listed but %d counted", n, t.PersistedJobs())
	}
	return decodeHeld(n, t.Persisted)
}

// ---- NodeAck ----

// Encode implements ControlMessage.
func (m *NodeAck) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	var jobs flatbuffers.UOffsetT
	if len(m.Jobs) > 0 {
		offs := make([]flatbuffers.UOffsetT, len(m.Jobs))
		for i, j := range m.Jobs {
			name, tok := b.CreateString(j.Job), bytesVec(b, j.Token)
			keep := encodeMapNodes(b, j.Keep, fb.JobEpochStartKeepVector)
			var owner flatbuffers.UOffsetT
			if j.Owner != "" {
				owner = b.CreateString(j.Owner)
			}
			fb.JobEpochStart(b)
			fb.JobEpochAddJob(b, name)
			fb.JobEpochAddEpoch(b, j.Epoch)
			addOff(b, tok, fb.JobEpochAddToken)
			fb.JobEpochAddGen(b, j.Gen)
			fb.JobEpochAddExpiresMs(b, unixMs(j.Expires))
			fb.JobEpochAddRevoked(b, j.Revoked)
			fb.JobEpochAddOut(b, j.Out)
			fb.JobEpochAddKeepEpoch(b, j.KeepEpoch)
			addOff(b, keep, fb.JobEpochAddKeep)
			addOff(b, owner, fb.JobEpochAddOwner)
			fb.JobEpochAddTiers(b, j.Tiers)
			fb.JobEpochAddOverQuota(b, j.OverQuota)
			fb.JobEpochAddMaxBytes(b, j.MaxBytes)
			offs[i] = fb.JobEpochEnd(b)
		}
		jobs = endVector(b, offs, fb.NodeAckStartJobsVector)
	}
	drop := encodeHeld(b, m.Drop, fb.NodeAckStartDropVector)
	fb.NodeAckStart(b)
	fb.NodeAckAddKnown(b, m.Known)
	fb.NodeAckAddState(b, uint8(m.State))
	fb.NodeAckAddHeartbeatMs(b, uint32(m.Heartbeat/time.Millisecond))
	addOff(b, jobs, fb.NodeAckAddJobs)
	fb.NodeAckAddRev(b, m.Rev)
	fb.NodeAckAddFull(b, m.Full)
	fb.NodeAckAddMore(b, m.More)
	fb.NodeAckAddAfter(b, m.After)
	addOff(b, drop, fb.NodeAckAddDrop)
	fb.NodeAckAddLeaseMs(b, uint32(min(max(m.Lease, 0), MaxLease)/time.Millisecond))
	b.Finish(fb.NodeAckEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage.
func (m *NodeAck) Decode(meta []byte) error {
	*m = NodeAck{}
	pos, err := root(meta, &nodeAckSpec)
	if err != nil {
		return err
	}
	var t fb.NodeAck
	t.Init(meta, pos)
	n := t.JobsLength()
	if err := checkLen("jobs", n, MaxStatusJobs); err != nil {
		return err
	}
	var jobs []JobEpoch
	if n > 0 {
		jobs = make([]JobEpoch, n)
		var j fb.JobEpoch
		for i := range jobs {
			t.Jobs(&j, i)
			if err := firstErr(checkJob(j.Job()), checkLen("token", len(j.TokenBytes()), DefaultMaxToken),
				checkSize("job expiry", j.ExpiresMs()), checkLen("owner", len(j.Owner()), MaxOwnerLen),
				checkSize("job max bytes", j.MaxBytes())); err != nil {
				return err
			}
			keep, err := decodeMapNodes(j.KeepLength(), j.Keep)
			if err != nil {
				return err
			}
			jobs[i] = JobEpoch{Job: string(j.Job()), Epoch: j.Epoch(), Token: cloneBytes(j.TokenBytes()),
				Gen: j.Gen(), Expires: fromUnixMs(j.ExpiresMs()), Revoked: j.Revoked(), Out: j.Out(),
				KeepEpoch: j.KeepEpoch(), Keep: keep, Owner: string(j.Owner()), Tiers: j.Tiers(), OverQuota: j.OverQuota(), MaxBytes: j.MaxBytes()}
		}
	}
	drop, err := decodeHeld(t.DropLength(), t.Drop)
	if err != nil {
		return err
	}
	*m = NodeAck{Known: t.Known(), State: NodeState(t.State()),
		Heartbeat: time.Duration(t.HeartbeatMs()) * time.Millisecond, Jobs: jobs,
		Rev: t.Rev(), Full: t.Full(), More: t.More(), After: t.After(), Drop: drop,
		Lease: time.Duration(t.LeaseMs()) * time.Millisecond}
	return nil
}

// ---- JobRegister ----

func (m *JobRegister) build(b *flatbuffers.Builder) flatbuffers.UOffsetT {
	name := str(b, m.Name)
	fb.JobRegisterStart(b)
	addOff(b, name, fb.JobRegisterAddName)
	fb.JobRegisterAddLambdas(b, m.Hints.Lambdas)
	fb.JobRegisterAddCapacityBytes(b, m.Hints.CapacityBytes)
	fb.JobRegisterAddPeakMbps(b, m.Hints.PeakMbps)
	fb.JobRegisterAddLatencySensitive(b, m.Hints.LatencySensitive)
	fb.JobRegisterAddTtlMs(b, ceilMs(m.TTL))
	return fb.JobRegisterEnd(b)
}

// ceilMs is d in whole milliseconds, a positive d rounded up: a TTL under
// a millisecond truncated to 0 read as "the controller's", which without a
// --token-ttl was a token that never expires (a hostile trial: --ttl 1ns).
func ceilMs(d time.Duration) int64 {
	ms := d.Milliseconds()
	if d > 0 && d%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// Encode implements ControlMessage.
func (m *JobRegister) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	b.Finish(m.build(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage.
func (m *JobRegister) Decode(meta []byte) error {
	*m = JobRegister{}
	pos, err := root(meta, &jobRegSpec)
	if err != nil {
		return err
	}
	var t fb.JobRegister
	t.Init(meta, pos)
	return m.from(&t)
}

func (m *JobRegister) from(t *fb.JobRegister) error {
	if err := firstErr(checkLen("job name", len(t.Name()), DefaultMaxJobLen),
		JobHints{CapacityBytes: t.CapacityBytes(), PeakMbps: t.PeakMbps()}.Check(),
		checkSize("token lifetime", t.TtlMs())); err != nil {
		return err
	}
	*m = JobRegister{Name: string(t.Name()), Hints: JobHints{Lambdas: t.Lambdas(),
		CapacityBytes: t.CapacityBytes(), PeakMbps: t.PeakMbps(), LatencySensitive: t.LatencySensitive()},
		TTL: msToDuration(t.TtlMs())}
	return nil
}

// ---- JobRef ----

// Encode implements ControlMessage.
func (m *JobRef) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	job, tok, proof := str(b, m.Job), bytesVec(b, m.Token), bytesVec(b, m.Proof)
	fb.JobRefStart(b)
	addOff(b, job, fb.JobRefAddJob)
	addOff(b, tok, fb.JobRefAddToken)
	fb.JobRefAddEndedOk(b, m.EndedOK)
	addOff(b, proof, fb.JobRefAddProof)
	b.Finish(fb.JobRefEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage.
func (m *JobRef) Decode(meta []byte) error {
	*m = JobRef{}
	pos, err := root(meta, &jobRefSpec)
	if err != nil {
		return err
	}
	var t fb.JobRef
	t.Init(meta, pos)
	if err := firstErr(checkJob(t.Job()), checkLen("token", len(t.TokenBytes()), DefaultMaxToken),
		checkLen("proof", len(t.ProofBytes()), DefaultMaxToken)); err != nil {
		return err
	}
	*m = JobRef{Job: string(t.Job()), Token: cloneBytes(t.TokenBytes()), EndedOK: t.EndedOk(), Proof: cloneBytes(t.ProofBytes())}
	return nil
}

// ---- PlacementMap ----

// Encode implements ControlMessage.
func (m *PlacementMap) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	job, tok, note := str(b, m.Job), bytesVec(b, m.Token), str(b, m.Note)
	nodes := encodeMapNodes(b, m.Nodes, fb.PlacementMapStartNodesVector)
	lost := encodeLostNodes(b, m.Lost)
	fb.PlacementMapStart(b)
	addOff(b, job, fb.PlacementMapAddJob)
	fb.PlacementMapAddTier(b, m.Tier)
	fb.PlacementMapAddEpoch(b, m.Epoch)
	addOff(b, nodes, fb.PlacementMapAddNodes)
	addOff(b, tok, fb.PlacementMapAddToken)
	fb.PlacementMapAddExpiresMs(b, unixMs(m.Expires))
	addOff(b, lost, fb.PlacementMapAddLost)
	fb.PlacementMapAddEnded(b, m.Ended)
	fb.PlacementMapAddAllocMbps(b, m.AllocMbps)
	fb.PlacementMapAddAllocBytes(b, m.AllocBytes)
	fb.PlacementMapAddSized(b, uint8(m.Sized))
	fb.PlacementMapAddQuotaBytes(b, m.Quota.Bytes)
	fb.PlacementMapAddQuotaMbps(b, m.Quota.Mbps)
	fb.PlacementMapAddQuotaLeftBytes(b, m.Quota.LeftBytes)
	fb.PlacementMapAddQuotaLeftMbps(b, m.Quota.LeftMbps)
	addOff(b, note, fb.PlacementMapAddNote)
	b.Finish(fb.PlacementMapEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage.
func (m *PlacementMap) Decode(meta []byte) error {
	*m = PlacementMap{}
	pos, err := root(meta, &mapSpec)
	if err != nil {
		return err
	}
	var t fb.PlacementMap
	t.Init(meta, pos)
	if err := firstErr(checkJob(t.Job()), checkLen("token", len(t.TokenBytes()), DefaultMaxToken),
		checkSize("token expiry", t.ExpiresMs()), checkNum("allocated Mb/s", t.AllocMbps()),
		checkSize("allocated bytes", t.AllocBytes()), checkSize("quota bytes", t.QuotaBytes()),
		checkNum("quota Mb/s", t.QuotaMbps()), checkSize("quota bytes left", t.QuotaLeftBytes()),
		checkNum("quota Mb/s left", t.QuotaLeftMbps())); err != nil {
		return err
	}
	nodes, err := decodeMapNodes(t.NodesLength(), t.Nodes)
	if err != nil {
		return err
	}
	lost, err := decodeLostNodes(t.LostLength(), t.Lost)
	if err != nil {
		return err
	}
	*m = PlacementMap{Job: string(t.Job()), Tier: t.Tier(), Epoch: t.Epoch(), Nodes: nodes,
		Token: cloneBytes(t.TokenBytes()), Expires: fromUnixMs(t.ExpiresMs()), Lost: lost, Ended: t.Ended(),
		AllocMbps: t.AllocMbps(), AllocBytes: t.AllocBytes(), Sized: SizedFrom(t.Sized()),
		Quota: QuotaLeft{Bytes: t.QuotaBytes(), Mbps: t.QuotaMbps(), LeftBytes: t.QuotaLeftBytes(), LeftMbps: t.QuotaLeftMbps()},
		Note:  string(t.Note())}
	if m.Sized > SizedDefault {
		m.Sized = SizedUnsaid
	}
	return nil
}

// encodeLostNodes writes a map's lost nodes; 0 when there are none.
func encodeLostNodes(b *flatbuffers.Builder, ns []LostNode) flatbuffers.UOffsetT {
	if len(ns) == 0 {
		return 0
	}
	offs := make([]flatbuffers.UOffsetT, len(ns))
	for i, n := range ns {
		addr := b.CreateString(n.Addr)
		fb.LostNodeStart(b)
		fb.LostNodeAddAddr(b, addr)
		fb.LostNodeAddWeight(b, n.Weight)
		fb.LostNodeAddEpoch(b, n.Epoch)
		offs[i] = fb.LostNodeEnd(b)
	}
	return endVector(b, offs, fb.PlacementMapStartLostVector)
}

// decodeLostNodes reads n lost nodes (at most MaxLostNodes), each with an
// address and a finite, non-negative weight.
func decodeLostNodes(n int, at func(*fb.LostNode, int) bool) ([]LostNode, error) {
	if err := checkLen("lost nodes", n, MaxLostNodes); err != nil || n == 0 {
		return nil, err
	}
	out := make([]LostNode, n)
	var l fb.LostNode
	for i := range out {
		at(&l, i)
		addr := l.Addr()
		if err := firstErr(checkLen("lost node address", len(addr), MaxAddrLen), checkNum("lost node weight", l.Weight())); err != nil {
			return nil, err
		}
		out[i] = LostNode{Addr: string(addr), Weight: l.Weight(), Epoch: l.Epoch()}
	}
	return out, nil
}

// ---- DropResult ----

// Encode implements ControlMessage.
func (m *DropResult) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	msg := str(b, m.Message)
	fb.DropResultStart(b)
	fb.DropResultAddNodes(b, m.Nodes)
	fb.DropResultAddFailed(b, m.Failed)
	fb.DropResultAddValues(b, m.Values)
	fb.DropResultAddBytes(b, m.Bytes)
	addOff(b, msg, fb.DropResultAddMessage)
	b.Finish(fb.DropResultEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage.
func (m *DropResult) Decode(meta []byte) error {
	*m = DropResult{}
	pos, err := root(meta, &dropSpec)
	if err != nil {
		return err
	}
	var t fb.DropResult
	t.Init(meta, pos)
	if err := checkSize("bytes freed", t.Bytes()); err != nil {
		return err
	}
	*m = DropResult{Nodes: t.Nodes(), Failed: t.Failed(), Values: t.Values(), Bytes: t.Bytes(),
		Message: string(t.Message())}
	return nil
}

// ---- DrainNode ----

// Encode implements ControlMessage.
func (m *DrainNode) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	addr, proof := str(b, m.Addr), bytesVec(b, m.Proof)
	fb.DrainNodeStart(b)
	addOff(b, addr, fb.DrainNodeAddAddr)
	fb.DrainNodeAddDeadlineMs(b, m.Deadline.Milliseconds())
	addOff(b, proof, fb.DrainNodeAddProof)
	fb.DrainNodeAddDiscardPersisted(b, m.DiscardPersisted)
	fb.DrainNodeAddLoseOverflow(b, m.LoseOverflow)
	b.Finish(fb.DrainNodeEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage.
func (m *DrainNode) Decode(meta []byte) error {
	*m = DrainNode{}
	pos, err := root(meta, &drainSpec)
	if err != nil {
		return err
	}
	var t fb.DrainNode
	t.Init(meta, pos)
	if err := firstErr(checkAddr(t.Addr()), checkLen("proof", len(t.ProofBytes()), DefaultMaxToken),
		checkSize("drain deadline", t.DeadlineMs())); err != nil {
		return err
	}
	*m = DrainNode{Addr: string(t.Addr()), Deadline: msToDuration(t.DeadlineMs()), Proof: cloneBytes(t.ProofBytes()),
		DiscardPersisted: t.DiscardPersisted(), LoseOverflow: t.LoseOverflow()}
	return nil
}

// ---- NodeHello ----

// Encode implements ControlMessage.
func (m *NodeHello) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	addr, proof := str(b, m.Addr), bytesVec(b, m.Proof)
	fb.NodeHelloStart(b)
	addOff(b, addr, fb.NodeHelloAddAddr)
	addOff(b, proof, fb.NodeHelloAddProof)
	b.Finish(fb.NodeHelloEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage. The reply's empty table decodes to
// an empty NodeHello.
func (m *NodeHello) Decode(meta []byte) error {
	*m = NodeHello{}
	pos, err := root(meta, &helloSpec)
	if err != nil {
		return err
	}
	var t fb.NodeHello
	t.Init(meta, pos)
	if err := firstErr(checkLen("node address", len(t.Addr()), MaxAddrLen),
		checkLen("proof", len(t.ProofBytes()), DefaultMaxToken)); err != nil {
		return err
	}
	*m = NodeHello{Addr: string(t.Addr()), Proof: cloneBytes(t.ProofBytes())}
	return nil
}

// ---- ClusterStatus ----

// Encode implements ControlMessage.
func (m *ClusterStatus) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	var nodes, jobs flatbuffers.UOffsetT
	if len(m.Nodes) > 0 {
		offs := make([]flatbuffers.UOffsetT, len(m.Nodes))
		for i := range m.Nodes {
			offs[i] = m.Nodes[i].build(b)
		}
		nodes = endVector(b, offs, fb.ClusterStatusStartNodesVector)
	}
	if len(m.Jobs) > 0 {
		offs := make([]flatbuffers.UOffsetT, len(m.Jobs))
		for i := range m.Jobs {
			offs[i] = m.Jobs[i].build(b)
		}
		jobs = endVector(b, offs, fb.ClusterStatusStartJobsVector)
	}
	var clients flatbuffers.UOffsetT
	if len(m.Clients) > 0 {
		offs := make([]flatbuffers.UOffsetT, len(m.Clients))
		for i, h := range m.Clients {
			name := str(b, h.Client)
			fb.ClientHoldStart(b)
			addOff(b, name, fb.ClientHoldAddClient)
			fb.ClientHoldAddJobs(b, h.Jobs)
			fb.ClientHoldAddAllocBytes(b, h.AllocBytes)
			fb.ClientHoldAddAllocMbps(b, h.AllocMbps)
			fb.ClientHoldAddPersistedBytes(b, h.PersistedBytes)
			fb.ClientHoldAddStoredBytes(b, h.StoredBytes)
			fb.ClientHoldAddOverQuota(b, h.OverQuota)
			offs[i] = fb.ClientHoldEnd(b)
		}
		clients = endVector(b, offs, fb.ClusterStatusStartClientsVector)
	}
	var prices flatbuffers.UOffsetT
	if p := m.Prices; p != nil {
		fb.PriceTableStart(b)
		fb.PriceTableAddDramGibHour(b, p.DRAMGiBHour)
		fb.PriceTableAddNvmeGibHour(b, p.NVMeGiBHour)
		fb.PriceTableAddGbpsHour(b, p.GbpsHour)
		prices = fb.PriceTableEnd(b)
	}
	var retired flatbuffers.UOffsetT
	if len(m.Retired) > 0 {
		offs := make([]flatbuffers.UOffsetT, len(m.Retired))
		for i, r := range m.Retired {
			addr, why := str(b, r.Addr), str(b, r.Why)
			fb.RetiredNodeStart(b)
			addOff(b, addr, fb.RetiredNodeAddAddr)
			fb.RetiredNodeAddAtMs(b, unixMs(r.At))
			addOff(b, why, fb.RetiredNodeAddWhy)
			fb.RetiredNodeAddLost(b, r.Lost)
			offs[i] = fb.RetiredNodeEnd(b)
		}
		retired = endVector(b, offs, fb.ClusterStatusStartRetiredVector)
	}
	fb.ClusterStatusStart(b)
	addOff(b, nodes, fb.ClusterStatusAddNodes)
	addOff(b, jobs, fb.ClusterStatusAddJobs)
	fb.ClusterStatusAddJobCount(b, m.JobCount)
	fb.ClusterStatusAddNodeCount(b, m.NodeCount)
	fb.ClusterStatusAddNextJob(b, m.NextJob)
	fb.ClusterStatusAddAutoscaleMaxNodes(b, m.AutoscaleMaxNodes)
	addOff(b, prices, fb.ClusterStatusAddPrices)
	addOff(b, clients, fb.ClusterStatusAddClients)
	fb.ClusterStatusAddQuotaBytes(b, m.QuotaBytes)
	fb.ClusterStatusAddQuotaMbps(b, m.QuotaMbps)
	addOff(b, retired, fb.ClusterStatusAddRetired)
	b.Finish(fb.ClusterStatusEnd(b))
	return b.FinishedBytes()
}

func (n *NodeStatus) build(b *flatbuffers.Builder) flatbuffers.UOffsetT {
	addr := str(b, n.Addr)
	tiers := encodeTiers(b, n.Tiers, fb.NodeStatusStartTiersVector)
	metrics := encodeMetrics(b, n.Metrics, fb.NodeStatusStartMetricsVector)
	persisted := encodeHeld(b, n.Persisted, fb.NodeStatusStartPersistedVector)
	fb.NodeStatusStart(b)
	addOff(b, addr, fb.NodeStatusAddAddr)
	fb.NodeStatusAddState(b, uint8(n.State))
	addOff(b, tiers, fb.NodeStatusAddTiers)
	fb.NodeStatusAddRxMbps(b, n.RxMbps)
	fb.NodeStatusAddTxMbps(b, n.TxMbps)
	fb.NodeStatusAddCpuPercent(b, n.CPUPercent)
	fb.NodeStatusAddCores(b, n.Cores)
	fb.NodeStatusAddLastSeenMs(b, n.LastSeen.Milliseconds())
	fb.NodeStatusAddJobs(b, n.Jobs)
	addOff(b, metrics, fb.NodeStatusAddMetrics)
	fb.NodeStatusAddRestored(b, n.Restored)
	addOff(b, persisted, fb.NodeStatusAddPersisted)
	return fb.NodeStatusEnd(b)
}

func (j *JobStatus) build(b *flatbuffers.Builder) flatbuffers.UOffsetT {
	job := str(b, j.Job)
	nodes := encodeMapNodes(b, j.Nodes, fb.JobStatusStartNodesVector)
	hints := (&JobRegister{Name: j.Name, Hints: j.Hints}).build(b)
	tenant := str(b, j.Tenant)
	fb.JobStatusStart(b)
	addOff(b, job, fb.JobStatusAddJob)
	fb.JobStatusAddTier(b, j.Tier)
	fb.JobStatusAddEpoch(b, j.Epoch)
	addOff(b, nodes, fb.JobStatusAddNodes)
	fb.JobStatusAddHints(b, hints)
	fb.JobStatusAddAllocMbps(b, j.AllocMbps)
	fb.JobStatusAddAllocBytes(b, j.AllocBytes)
	fb.JobStatusAddAgeMs(b, j.Age.Milliseconds())
	fb.JobStatusAddUsedMbps(b, j.UsedMbps)
	fb.JobStatusAddUsedBytes(b, j.UsedBytes)
	addOff(b, tenant, fb.JobStatusAddTenant)
	fb.JobStatusAddSettling(b, j.Settling)
	return fb.JobStatusEnd(b)
}

// Decode implements ControlMessage.
func (m *ClusterStatus) Decode(meta []byte) error {
	*m = ClusterStatus{}
	pos, err := root(meta, &clusterSpec)
	if err != nil {
		return err
	}
	var t fb.ClusterStatus
	t.Init(meta, pos)
	nn, nj, nc, nr := t.NodesLength(), t.JobsLength(), t.ClientsLength(), t.RetiredLength()
	if err := firstErr(checkLen("status nodes", nn, MaxMapNodes), checkLen("status jobs", nj, MaxStatusJobs),
		checkLen("status clients", nc, MaxStatusClients), checkLen("status retired nodes", nr, MaxStatusRetired),
		checkSize("quota bytes", t.QuotaBytes()), checkNum("quota Mb/s", t.QuotaMbps())); err != nil {
		return err
	}
	out := ClusterStatus{JobCount: t.JobCount(), NodeCount: t.NodeCount(), NextJob: t.NextJob(), AutoscaleMaxNodes: t.AutoscaleMaxNodes(),
		QuotaBytes: t.QuotaBytes(), QuotaMbps: t.QuotaMbps()}
	if nc > 0 {
		out.Clients = make([]ClientHold, nc)
		var h fb.ClientHold
		for i := range out.Clients {
			t.Clients(&h, i)
			if err := firstErr(checkLen("client name", len(h.Client()), maxClientName), checkSize("client bytes", h.AllocBytes()),
				checkNum("client Mb/s", h.AllocMbps()), checkSize("client persisted bytes", h.PersistedBytes()),
				checkSize("client stored bytes", h.StoredBytes())); err != nil {
				return err
			}
			out.Clients[i] = ClientHold{Client: string(h.Client()), Jobs: h.Jobs(), AllocBytes: h.AllocBytes(), AllocMbps: h.AllocMbps(),
				PersistedBytes: h.PersistedBytes(), StoredBytes: h.StoredBytes(), OverQuota: h.OverQuota()}
		}
	}
	if nr > 0 {
		out.Retired = make([]RetiredNode, nr)
		var r fb.RetiredNode
		for i := range out.Retired {
			t.Retired(&r, i)
			if err := firstErr(checkAddr(r.Addr()), checkLen("retirement reason", len(r.Why()), maxRetiredWhy),
				checkSize("retirement time", r.AtMs())); err != nil {
				return err
			}
			out.Retired[i] = RetiredNode{Addr: string(r.Addr()), At: fromUnixMs(r.AtMs()), Why: string(r.Why()), Lost: r.Lost()}
		}
	}
	if pt := t.Prices(nil); pt != nil {
		p := PriceTable{DRAMGiBHour: pt.DramGibHour(), NVMeGiBHour: pt.NvmeGibHour(), GbpsHour: pt.GbpsHour()}
		if err := firstErr(checkNum("DRAM price", p.DRAMGiBHour), checkNum("NVMe price", p.NVMeGiBHour), checkNum("network price", p.GbpsHour)); err != nil {
			return err
		}
		out.Prices = &p
	}
	if nn > 0 {
		out.Nodes = make([]NodeStatus, nn)
		var n fb.NodeStatus
		for i := range out.Nodes {
			t.Nodes(&n, i)
			if err := out.Nodes[i].from(&n); err != nil {
				return err
			}
		}
	}
	if nj > 0 {
		out.Jobs = make([]JobStatus, nj)
		var j fb.JobStatus
		for i := range out.Jobs {
			t.Jobs(&j, i)
			if err := out.Jobs[i].from(&j); err != nil {
				return err
			}
		}
	}
	*m = out
	return nil
}

func (n *NodeStatus) from(t *fb.NodeStatus) error {
	if err := firstErr(checkAddr(t.Addr()), checkNum("rx Mb/s", t.RxMbps()), checkNum("tx Mb/s", t.TxMbps()),
		checkNum("CPU %", t.CpuPercent())); err != nil {
		return err
	}
	tiers, err := decodeTiers(t.TiersLength(), t.Tiers)
	if err != nil {
		return err
	}
	metrics, err := decodeMetrics(t.MetricsLength(), t.Metrics)
	if err != nil {
		return err
	}
	if err := checkLen("persisted jobs", t.PersistedLength(), MaxPersistedJobs); err != nil {
		return err
	}
	persisted, err := decodeHeld(t.PersistedLength(), t.Persisted)
	if err != nil {
		return err
	}
	*n = NodeStatus{Addr: string(t.Addr()), State: NodeState(t.State()), Tiers: tiers,
		RxMbps: t.RxMbps(), TxMbps: t.TxMbps(), CPUPercent: t.CpuPercent(), Cores: t.Cores(),
		LastSeen: msToDuration(t.LastSeenMs()), Jobs: t.Jobs(), Metrics: metrics, Restored: t.Restored(),
		Persisted: persisted}
	return nil
}

func (j *JobStatus) from(t *fb.JobStatus) error {
	if err := firstErr(checkJob(t.Job()), checkNum("allocated Mb/s", t.AllocMbps()),
		checkSize("allocated bytes", t.AllocBytes()), checkNum("used Mb/s", t.UsedMbps()),
		checkSize("used bytes", t.UsedBytes()), checkLen("tenant", len(t.Tenant()), MaxTenantLen)); err != nil {
		return err
	}
	nodes, err := decodeMapNodes(t.NodesLength(), t.Nodes)
	if err != nil {
		return err
	}
	var reg JobRegister
	var h fb.JobRegister
	if t.Hints(&h) != nil {
		if err := reg.from(&h); err != nil {
			return err
		}
	}
	*j = JobStatus{Job: string(t.Job()), Name: reg.Name, Tier: t.Tier(), Epoch: t.Epoch(), Nodes: nodes,
		Hints: reg.Hints, AllocMbps: t.AllocMbps(), AllocBytes: t.AllocBytes(), Age: msToDuration(t.AgeMs()),
		UsedMbps: t.UsedMbps(), UsedBytes: t.UsedBytes(), Tenant: string(t.Tenant()), Settling: t.Settling()}
	return nil
}

// ---- JobList ----

// Encode implements ControlMessage.
func (m *JobList) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	fb.JobListStart(b)
	fb.JobListAddAfter(b, m.After)
	fb.JobListAddLimit(b, m.Limit)
	b.Finish(fb.JobListEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage.
func (m *JobList) Decode(meta []byte) error {
	*m = JobList{}
	pos, err := root(meta, &jobListSpec)
	if err != nil {
		return err
	}
	var t fb.JobList
	t.Init(meta, pos)
	*m = JobList{After: t.After(), Limit: t.Limit()}
	return nil
}

// ---- Challenge ----

// Encode implements ControlMessage.
func (m *Challenge) Encode(b *flatbuffers.Builder) []byte {
	b.Reset()
	nonce := bytesVec(b, m.Nonce)
	fb.ChallengeStart(b)
	addOff(b, nonce, fb.ChallengeAddNonce)
	b.Finish(fb.ChallengeEnd(b))
	return b.FinishedBytes()
}

// Decode implements ControlMessage.
func (m *Challenge) Decode(meta []byte) error {
	*m = Challenge{}
	pos, err := root(meta, &challengeSpec)
	if err != nil {
		return err
	}
	var t fb.Challenge
	t.Init(meta, pos)
	if err := checkLen("nonce", len(t.NonceBytes()), MaxNonce); err != nil {
		return err
	}
	*m = Challenge{Nonce: cloneBytes(t.NonceBytes())}
	return nil
}

// ---- framing ----

// AppendControlFrame appends a frame of header and metadata (no payload) to
// dst, so a control message goes out in one write.
func AppendControlFrame(dst []byte, op Op, id uint64, code Code, meta []byte) []byte {
	h := Header{Op: op, Code: code, ID: id, MetaLen: uint32(len(meta))}
	dst = AppendHeader(dst, &h)
	return append(dst, meta...)
}

// ReadControlFrame reads one frame from r: the header, checked against lim
// before anything else is read, then its metadata into buf. A payload
// within lim is read and discarded. The returned meta aliases buf (or a
// larger buffer that replaced it) and is valid until buf is reused.
//
// buf grows as the metadata arrives, not to the length the header claims:
// a peer that claims DefaultControlMaxMeta (4 MiB) and sends a few bytes
// makes the reader hold ReadGrowStep, not 4 MiB, while it waits for the rest.
func ReadControlFrame(r *bufio.Reader, lim *Limits, buf []byte) (Header, []byte, error) {
	return ReadControlFrameAdmitted(r, lim, buf, nil)
}

// ReadControlFrameAdmitted is ReadControlFrame that, when admit is not
// nil, asks admit for the frame's metadata length once the header has
// been checked and before any of the metadata is read: an error from it
// is returned with the header, nothing more read (a reader's bound on
// the bytes all its connections hold in frames under way).
func ReadControlFrameAdmitted(r *bufio.Reader, lim *Limits, buf []byte, admit func(metaLen int) error) (Header, []byte, error) {
	var hb [HeaderLen]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return Header{}, nil, err
	}
	h, err := ParseHeader(hb[:], lim)
	if err != nil {
		return h, nil, err
	}
	if admit != nil {
		if err := admit(int(h.MetaLen)); err != nil {
			return h, nil, err
		}
	}
	meta, err := readGrowing(r, buf[:0], int(h.MetaLen))
	if err != nil {
		return h, nil, noEOF(err)
	}
	if h.PayloadLen > 0 {
		if _, err := r.Discard(int(h.PayloadLen)); err != nil {
			return h, nil, noEOF(err)
		}
	}
	return h, meta, nil
}

// ReadGrowStep is the most ReadControlFrame allocates for a frame's
// metadata before any of it has arrived (64 KiB); it then at most doubles
// what it holds as bytes arrive.
const ReadGrowStep = 64 << 10

// ReuseControlBuffer returns the buffer a reader passes to its next
// ReadControlFrame after meta: meta's, emptied, unless it grew past
// ReadGrowStep, in which case none, so a connection that carried one large
// frame does not hold its buffer while it idles.
func ReuseControlBuffer(meta []byte) []byte {
	if cap(meta) > ReadGrowStep {
		return nil
	}
	return meta[:0]
}

// readGrowing reads n bytes into buf (length 0), growing it in steps that
// at most double what has arrived: whoever claims a length must send about
// half of it before the reader holds all of it.
func readGrowing(r io.Reader, buf []byte, n int) ([]byte, error) {
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, max(ReadGrowStep, 2*cap(buf))))
			copy(grown, buf)
			buf = grown
		}
		end := min(n, cap(buf))
		if _, err := io.ReadFull(r, buf[len(buf):end]); err != nil {
			return nil, err // the caller's noEOF: any EOF here is inside the frame
		}
		buf = buf[:end]
	}
	return buf, nil
}

// noEOF turns an EOF inside a frame into ErrUnexpectedEOF: the peer stopped
// mid-frame.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
