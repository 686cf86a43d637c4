// Package controller is the control plane: the registry of storage nodes,
// the registry of jobs with their hint-based sizing and placement maps, and
// the capability tokens that let a job's clients talk to its nodes. It is
// never on the data path: clients fetch a job's map once (and again when a
// node answers that the map's epoch is stale) and then address the nodes
// directly.
//
// # Protocol
//
// A TCP server (TLS with Config.TLS) speaks the control frames of package
// wire (opcodes wire.OpRegisterNode .. wire.OpChallenge, wire.OpNodeHello
// and wire.OpJobProfile, tables in
// wire/control.fbs). Each connection is served by one goroutine, one
// request at a time, in order; package metaclient is the client. Error
// replies carry a wire.Code.
//
// # Limits
//
// Every shared resource is bounded (Config; each refusal is a CodeLimit
// error naming the limit and its value, and is logged at most once a second
// per limit): connections in all (MaxConns, 1024; at the limit a new
// connection replaces the one idle longest, if idle a second) and per peer
// (MaxConnsPerPeer, 256; a peer is an IPv4 address or IPv6 /64), silence
// before the first request (HandshakeTimeout, 10 s) and between requests
// (IdleTimeout, 2 min); registered jobs in the cluster (MaxJobs, 100,000)
// and per client (MaxJobsPerClient, 1000), registrations per client and
// second (RegisterRate 100, RegisterBurst 100), the bytes and Mb/s one
// client's jobs are allotted (MaxBytesPerClient, MaxMbpsPerClient; no
// bound by default); a client is a tenant over TLS, else an address
// (limits.go). A refused
// connection gets one error frame with request id 0 (wire.OpGoAway) before
// the close. No reply exceeds the control frame limit: status lists the
// nodes, the job count and the first StatusJobs (100) jobs, and
// wire.OpListJobs pages through the rest (status.go).
//
// Nodes are outside MaxConns, so a flood of busy connections cannot cut
// the controller off from them: a connection that has proved the node role
// is not counted and never evicted for idleness, and a connection that
// arrives when MaxConns is full with none idle is admitted on probation
// (at most 64; a newer one replaces the oldest), where it may send one
// OpChallenge and must then prove the node role, or it gets the MaxConns
// refusal and is closed (server.go). While the limits refuse or evict
// connections, a silent node is marked dead as usual but not lost: it
// keeps its place until DeadNodeGrace has passed since the last refusal
// too, so its data is not dropped when it is heard again (dead.go).
//
// # Security
//
// Nodes and operators prove the cluster secret for the connection they
// use: the controller gives each connection a random nonce on request
// (wire.OpChallenge), and a registration or heartbeat carries
// token.NodeProof(secret, nonce, addr), as does a node's wire.OpNodeHello
// (the node role for a connection that carries its other calls, such as
// its map fetches, so that they too are outside MaxConns), a drain order
// token.DrainProof(secret, nonce, addr, deadline): a recorded proof is
// worth nothing on another connection, and a node's proof is never a drain
// order. With Config.TLS (mutual TLS, internal/pki) every message also
// needs its role in the peer's certificate (roles.go): a job client cannot
// heartbeat or drain. Nodes get no job token: a draining node derives the
// tokens of its jobs from its job table and the secret.
//
// # Nodes
//
// A node registers with its data-plane address, its tiers (kind, capacity
// and bandwidth in Mb/s, measured or configured) and a proof that it holds
// the cluster secret (token.NodeProof). It then heartbeats every
// Config.HeartbeatInterval (1 s) with bytes used per tier, rx/tx Mb/s and
// CPU %. A node not heard from for Config.DeadAfter (3 s) is marked dead;
// a heartbeat or registration brings it back to active. A heartbeat from a
// node the controller does not know (after a controller restart) is
// answered with Known=false and the node registers again. States: active,
// draining (serving, no new placements, moving its data away), dead.
// A node dead for Config.DeadNodeGrace (30 s; negative: never) leaves every
// job's map and is listed in it as lost (dead.go). A dead node that
// belongs to no job, and that no live job or kept final map names lost
// (ended_lost.go), leaves the registry after Config.ForgetAfter.
// A known address registering with another incarnation (a restart: the
// node is empty, and its jobs lose it at once) is believed only once the
// node serving at the address says so over the data plane, with its proof
// of the secret; a second node claiming a live node's address is refused
// (incarnation.go). Incarnations are part of the durable state.
//
// # Sizing and placement policy
//
// RegisterJob(name, hints) follows Pocket's sizing, generalized to nodes of
// unequal size:
//
//  1. Tier: the cheapest tier whose active nodes' spare capacity holds
//     the job and whose spare bandwidth serves it, at Config.Prices
//     (TierFor, price.go); a latency-sensitive job needs DRAM's latency,
//     so only DRAM qualifies. No tier holds the capacity: CodeNoSpace,
//     naming the need and the largest tier's spare; but a job sized from
//     its name's profile asked for nothing, so it then reserves no
//     capacity instead (fitProfile). Candidates are the active nodes with
//     a tier of that kind.
//  2. Demand: bandwidth = PeakMbps if given, else Lambdas x PerLambdaMbps
//     (600 Mb/s, Pocket's figure); capacity = CapacityBytes. With no size
//     hint, the profile of the job's name when there is one (profile.go:
//     the last runs' peaks, newest weighted most); else DefaultNodes (2)
//     nodes and DefaultMbps (16 Gb/s), Pocket's default, for placement;
//     such a job is then allotted what its nodes have room for under the
//     band's high (the autoscaler's High, else 1), at most DefaultMbps
//     (sizing.go, bandHigh), so that its growth and the cluster's
//     utilization read what it really has.
//  3. Spare resources per candidate: its tier's bandwidth minus the larger
//     of what it measured (max of rx and tx: links are full duplex, the busier
//     direction binds) and what earlier jobs were allotted on it; its tier's
//     capacity minus the bytes it holds and what each job was allotted on
//     it and has not used yet (heldBytesLocked; a node that does not
//     count per job: the larger of bytes used and allotted). A tier that
//     reports no bandwidth counts as NodeMbps (8 Gb/s, Pocket's node).
//     Under an autoscaler, a job with hints or a profile counts bandwidth
//     under the band's high (bandHigh), as its reservation counted the
//     nodes it started (reserve.go), so that it is placed over them all.
//  4. Binding dimension: the job is throughput-bound when its bandwidth
//     need is the larger fraction of the candidates' spare bandwidth than
//     its capacity need is of their spare capacity (Pocket's test,
//     Mbps/node_Mbps >= GB/node_GB), else capacity-bound. Candidates are
//     ordered by spare on the binding dimension, most first.
//  5. Count: nodes are taken in that order until their spare covers BOTH
//     the bandwidth and the capacity need; at least 1 (DefaultNodes without
//     hints), never more than the candidates.
//  6. Weights: each chosen node's share of the chosen nodes' spare
//     bandwidth and its share of their spare capacity, blended in
//     proportion to how hard the job presses on each dimension; every node
//     keeps at least MinWeightShare of an equal share so it is never
//     starved; normalized to sum to 1. Clients place each (key, chunk) by
//     weighted rendezvous hashing over these weights (internal/placement).
//
// The job's allotment (bandwidth and capacity, spread over its nodes by
// weight) counts against later jobs' spare until the job is deregistered.
//
// # Jobs, epochs and tokens
//
// Job ids are "name-N" with N drawn at random in [1, 1e12) (as Pocket's
// job numbers were random) and unlike any job the controller holds, live,
// ended or a tombstone: a tenant learns nothing of other tenants' jobs
// from its own ids, and a controller restarted from an older copy of its
// state is unlikely to repeat the ids it gave since.
// Config.FirstJobSeq numbers jobs in sequence from it instead, for tests. Each job has a capability
// token (token.SignJob over the id, with the revision that registered the
// job and an optional expiry: the registration's TTL, else
// Config.TokenTTL, capped by Config.MaxTokenTTL); GetMap and DeregisterJob
// require it. A job that ended (deregistered, or expired) keeps its final
// map here while nodes keep its persisted values, answered to its token
// (GetMapOrEnded; ended.go). A map's epoch starts at 1 and bumps whenever a node of the
// job changes state (dies, returns, drains). A dead node stays in the map
// marked dead, so keys keep their placement and clients report a clear
// "unavailable" for the keys it held instead of looking elsewhere, until
// it has been dead for Config.DeadNodeGrace: then it leaves the map (an
// epoch bump), the remaining weights are normalized again, and the map
// lists it as lost (wire.LostNode, with its weight on the map's scale), so
// clients answer wire.CodeLost for the keys it held and place new writes
// on the remaining nodes. A lost node that comes back is a new node, and
// has its stale data of those jobs dropped (dead.go says why and what is
// not covered).
//
// Every node keeps a table of the cluster's live jobs (their gens,
// expiries and map epochs, marked out where the map does not hold the
// node), brought up to date by its heartbeat acks with only what changed
// since its last revision (changes.go; the registration's ack brings the
// first snapshot page): nodes learn epochs only from the controller, and
// refuse a client routing with an older map, or, outside the map, with
// the map's own epoch. DeregisterJob, and a token's expiry,
// revoke the job: every node refuses its token from its next heartbeat on
// (CodeRevoked) and drops the data it holds; DeregisterJob also sends
// wire.OpDropJob to every live node of the job at once, each with a proof
// keyed with the job's order key (token.OrderKey, never sent) and made
// for that node's address and incarnation, the order's flags, a nonce and
// an expiry token.OrderLife away (token.OrderProof, drop.go), so an order
// seen on the wire cannot be replayed to another node, another process at
// the address, with other flags, again, or later. Values put with
// persist-after-job stay.
//
// # Durable state and orphans
//
// With Config.Store (package controller/state: bbolt under `pocket
// controller --data-dir`), every change is saved before anything derived
// from it is answered (persist.go): a controller killed and restarted on
// the same store serves every job with its old token, map and epoch, gives
// new jobs new ids and later gens, and knows its nodes, which keep
// heartbeating without registering again; their job tables sync with a
// snapshot that lists the same jobs, so nothing is dropped. Without a
// store, a restarted controller knows no jobs. Either way, a node's data
// of a job the controller does not list is kept and reported; the
// controller has it dropped after Config.OrphanGrace (orphans.go).
//
// # Telemetry, autoscaling and drain
//
// Each heartbeat is also kept as a utilization Sample (history.go: CPU,
// network measured and allocated against the node's bandwidth, capacity
// per tier) in a ring of HistoryLen per node, served on /metrics
// (MetricsHandler). The autoscaler (autoscale.go, started with
// StartAutoscaler over an orchestrator.Orchestrator) keeps the cluster's
// utilization inside a band; its policy is described there. A
// registration first has the nodes its hints need started, and is refused
// before any start when MaxNodes nodes could not serve it (reserve.go). Drain
// (drain.go) marks a node draining, has it move its data to its jobs'
// other nodes, and retires it; scale-in uses it, and so does
// `pocket node drain` through OpDrainNode. A retired node's process,
// registering again, is told to stop (CodeDraining; its agent ends with
// metaclient.ErrRetired and `pocket node` exits), and the orchestrator
// stops the nodes it started.
//
// # Concurrency
//
// One mutex (Controller.mu) guards both registries and their indexes
// (changes.go); no network I/O happens while it is held, and no operation
// under it walks every job: registration, heartbeats and status cost what
// they change or list, not the number of jobs. The autoscaler's own mutex
// (Autoscaler.mu) is never held together with Controller.mu: each is taken
// and released in turn. The store's writer lock (persister.wmu,
// persist.go) is taken before Controller.mu, never while it is held; store
// I/O happens under wmu only.
package controller
