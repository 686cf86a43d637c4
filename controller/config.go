package controller

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/sys"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/wire"
)

// Config configures a Controller. Zero fields take the defaults below.
type Config struct {
	// Secret is the key shared with the nodes (token.SecretFrom). Required.
	Secret []byte

	// HeartbeatInterval is how often nodes are asked to report (1 s).
	HeartbeatInterval time.Duration
	// DeadAfter marks a silent node dead (3 heartbeat intervals).
	DeadAfter time.Duration
	// ForgetAfter drops a dead node that is in no job, and that no job or
	// kept final map names lost, from the registry (1 min).
	ForgetAfter time.Duration
	// ForgetLostAfter drops a dead node that a job or a kept final map
	// names lost (1 h): it is kept known that long for its return, when
	// it is told to drop what it holds of those jobs (ended_lost.go).
	ForgetLostAfter time.Duration

	// Policy is the sizing policy (DefaultPolicy).
	Policy Policy

	// FirstJobSeq is the N of the first job id; 0 picks a random start.
	FirstJobSeq uint64
	// DropTimeout bounds each node's drop-job exchange (10 s).
	DropTimeout time.Duration
	// RevokeLinger is how long a node that dropped a live job's data by
	// the controller's order (it came back after the job lost it) keeps
	// refusing the job (wire.RevokeLinger, the default; not shorter than
	// the nodes' dataplane.NodeConfig.RevokeLinger): the job may take the
	// node back two heartbeat intervals after that (dead.go).
	RevokeLinger time.Duration
	// ProbeTimeout bounds the question to the node serving at an address
	// that a registration says restarted (DefaultProbeTimeout, 1 s;
	// incarnation.go).
	ProbeTimeout time.Duration
	// RestoreSettle is how long after its restore from the state a
	// controller's job registrations wait for the nodes the state holds
	// alive to be heard from (their first registration or heartbeat), so
	// that a job is not placed on a node that died while no controller
	// ran (restoreGrace plus HeartbeatInterval, 4 s by default; negative:
	// no wait). A registration waits only while such a node is unheard.
	RestoreSettle time.Duration

	// MaxConns bounds concurrent control connections (1024). At the
	// limit a new connection replaces the one idle longest (idle for at
	// least a second), else it is refused with CodeLimit.
	MaxConns int
	// MaxConnsPerPeer bounds the connections of one peer, an IPv4
	// address or an IPv6 /64 (256; negative: no bound). Nodes need one
	// connection each, job clients one per process.
	MaxConnsPerPeer int
	// IdleTimeout closes a connection that sends no request for this
	// long (2 min; negative: never). Nodes heartbeat every
	// HeartbeatInterval; clients redial when they need to.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds a new connection's TLS handshake and its
	// first request (10 s; negative: none).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds writing one reply (10 s): a peer that stops
	// reading is dropped instead of holding a goroutine.
	WriteTimeout time.Duration
	// MaxLargeFrameBytes bounds the metadata bytes of the requests over
	// wire.ReadGrowStep (64 KiB) all connections hold under way at once
	// (DefaultMaxLargeFrameBytes): only a node's heartbeats and
	// registrations are that large, and each may be 4 MiB. A request
	// that would pass it is refused (CodeBusy) and its connection closed;
	// the node sends it again at its next heartbeat.
	MaxLargeFrameBytes int64

	// MaxJobs bounds the registered jobs of the cluster (100,000).
	MaxJobs int
	// MaxJobsPerClient bounds the registered jobs of one client (a tenant
	// over TLS, else a remote IP, or IPv6 /64) (1000; negative: no bound). In-process
	// registrations (RegisterJob) are not counted per client.
	MaxJobsPerClient int
	// RegisterRate is each client's sustained registrations per second
	// (100; negative: no bound), with bursts of RegisterBurst (100).
	RegisterRate  float64
	RegisterBurst int
	// MaxBytesPerClient and MaxMbpsPerClient bound what one client's live
	// jobs are allotted together, in bytes and Mb/s (0: no bound, the
	// default). A client is a tenant over TLS, else a remote address
	// (limits.go). A hinted registration beyond them is refused
	// (CodeLimit); one sized without hints is allotted what is left.
	// While a client stores more than MaxBytesPerClient (its live jobs'
	// bytes on their nodes and its ended jobs' persisted values), the
	// nodes refuse its live jobs' puts (quotafull.go).
	MaxBytesPerClient int64
	MaxMbpsPerClient  float64

	// TokenTTL is the lifetime of job tokens whose registration asks for
	// none (0: tokens do not expire). An expired token is refused by the
	// nodes (CodeRevoked) and the controller deregisters its job.
	TokenTTL time.Duration
	// MaxTokenTTL caps the lifetime a registration may ask for, and gives
	// one to those that ask for none when TokenTTL is 0 (0: no cap).
	MaxTokenTTL time.Duration

	// StatusJobs is how many jobs a status reply lists besides their
	// count (100); OpListJobs pages through the rest.
	StatusJobs int
	// ListJobsPage is the most jobs one OpListJobs reply carries (1000).
	// Replies are also bounded in bytes, well under the control frame
	// limit (wire.DefaultControlMaxMeta).
	ListJobsPage int

	// TLS, when set, makes Listen serve TLS with this configuration. Set
	// ClientAuth to tls.RequireAndVerifyClientCert (internal/pki's
	// ServerConfig does): each message type then needs its role in the
	// peer's certificate (see roles.go).
	TLS *tls.Config
	// CAID names the CA of TLS's certificates (pki.CAID; "" without
	// TLS). It is saved in the state's Meta; a controller on etcd whose
	// CAID is not the one saved there refuses to campaign (HA.Run,
	// ErrOtherCAHA). A cluster's CA is fixed for the life of its state:
	// its nodes trust one CA from their start.
	CAID string

	// Store keeps the registries across restarts (package
	// controller/state: state.OpenBolt for --data-dir). nil: in memory
	// only, a restarted controller knows no jobs. New loads it; Close does
	// not close it.
	Store state.Store
	// OrphanGrace is how long a node may hold data of a job the controller
	// does not know before the controller tells it to drop the data
	// (orphans.go) (DefaultOrphanGrace; negative: never). A job the
	// controller revoked within the grace is dropped at once.
	OrphanGrace time.Duration
	// MaxEndedJobs bounds the ended jobs whose final maps the controller
	// keeps for their persisted values (ended.go; DefaultMaxEndedJobs,
	// 4096): beyond it the oldest is forgotten (logged), its values stay,
	// readable through its credential.
	MaxEndedJobs int

	// Logger receives registry, placement, drain and autoscaler events,
	// with the node as a node attribute and the job as a job attribute
	// (nil: slog.Default()). The process gives it its own identity, e.g.
	// logger.With("controller", addr).
	Logger *slog.Logger

	// DeadNodeGrace is how long a node may stay dead before it leaves
	// every job's map (dead.go): the keys it held are then lost, and
	// clients place new writes on the remaining nodes
	// (DefaultDeadNodeGrace; negative: never, the node stays in the maps
	// marked dead).
	DeadNodeGrace time.Duration

	// StuckMove is how long a change of a job's map may make no progress
	// before it is undone (undo.go; DefaultStuckMove); the node it
	// changed is then passed over for that job for 5 times as long.
	StuckMove time.Duration

	// Prices are the prices per tier the controller picks a job's tier by
	// (TierFor) and estimates its cost with (price.go): an exact table
	// (ExactPrices, LoadPrices) is taken as it is, a price of 0 included;
	// in a partial one (a Prices literal, the zero Prices) a zero price
	// takes DefaultPrices' (Prices.OrDefault). New refuses a bad price
	// (Prices.Check).
	Prices Prices
	// ProfileRuns is how many runs of a job name its profile keeps
	// (DefaultProfileRuns, 5; at most state.MaxProfileRuns), and
	// MaxProfiles how many names have a profile (DefaultMaxProfiles,
	// 10,000; the profile updated longest ago goes first) (profile.go).
	ProfileRuns int
	MaxProfiles int
}

// Policy holds the sizing constants (see the package doc).
type Policy struct {
	PerLambdaMbps  float64 // bandwidth per lambda (600)
	DefaultNodes   int     // nodes of a job given no hints (2)
	DefaultMbps    float64 // bandwidth of a job given no hints (16000)
	NodeMbps       float64 // bandwidth of a tier that reports none (8000)
	MinWeightShare float64 // floor of a node's weight, as a fraction of 1/n (0.1)
}

// DefaultPolicy returns Pocket's constants.
func DefaultPolicy() Policy {
	return Policy{PerLambdaMbps: 600, DefaultNodes: 2, DefaultMbps: 16000, NodeMbps: 8000, MinWeightShare: 0.1}
}

// ErrNoSecret means Config.Secret is empty or too short.
var ErrNoSecret = errors.New("controller: a shared secret of at least 16 bytes is required")

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if len(cfg.Secret) < token.MinSecretLen {
		return cfg, ErrNoSecret
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 3 * cfg.HeartbeatInterval
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = time.Minute
	}
	if cfg.ForgetLostAfter <= 0 {
		cfg.ForgetLostAfter = DefaultForgetLostAfter
	}
	d := DefaultPolicy()
	p := &cfg.Policy
	if p.PerLambdaMbps <= 0 {
		p.PerLambdaMbps = d.PerLambdaMbps
	}
	if p.DefaultNodes <= 0 {
		p.DefaultNodes = d.DefaultNodes
	}
	if p.DefaultMbps <= 0 {
		p.DefaultMbps = d.DefaultMbps
	}
	if p.NodeMbps <= 0 {
		p.NodeMbps = d.NodeMbps
	}
	if p.MinWeightShare <= 0 || p.MinWeightShare > 1 {
		p.MinWeightShare = d.MinWeightShare
	}
	if cfg.OrphanGrace == 0 {
		cfg.OrphanGrace = DefaultOrphanGrace
	}
	if cfg.MaxEndedJobs <= 0 {
		cfg.MaxEndedJobs = DefaultMaxEndedJobs
	}
	if cfg.DeadNodeGrace == 0 {
		cfg.DeadNodeGrace = DefaultDeadNodeGrace
	}
	if cfg.StuckMove <= 0 {
		cfg.StuckMove = DefaultStuckMove
	}
	if cfg.RevokeLinger <= 0 {
		cfg.RevokeLinger = wire.RevokeLinger
	}
	if cfg.DropTimeout <= 0 {
		cfg.DropTimeout = 10 * time.Second
	}
	if cfg.RestoreSettle == 0 {
		cfg.RestoreSettle = restoreGrace + cfg.HeartbeatInterval
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultProbeTimeout
	}
	if err := cfg.Prices.Check(); err != nil {
		return cfg, fmt.Errorf("controller: %w", err)
	}
	cfg.Prices = cfg.Prices.OrDefault()
	cfg.connDefaults()
	cfg.jobDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.fitConns(sys.OpenFileLimit())
	return cfg, nil
}

// connReserve is the descriptors a controller keeps beside MaxConns
// control connections: the connections outside MaxConns (nodes on
// probation, refused ones lingering until closed), and 64 for listeners,
// the state file or etcd client, its metrics endpoint's connections
// (metrics.MaxConns), log files and the runtime's. (A hostile re-check
// counted only the 64: a flood of half-open TLS connections still met the
// descriptor limit now and then, the accept loop waiting it out.)
const connReserve = 64 + nodeProbation + maxLingering

// fitConns lowers MaxConns to what a descriptor limit of limit (0: none
// known) leaves beside connReserve, and logs it. At MaxConns the
// controller replaces its longest-idle connection; at the descriptor
// limit its accepts fail, and nothing is replaced: a hostile re-check
// under a hard limit of 1,024 held 3,000 idle control connections from
// ten addresses, and every job registration failed while they lasted.
func (cfg *Config) fitConns(limit uint64) {
	if limit == 0 || uint64(cfg.MaxConns)+connReserve <= limit {
		return
	}
	n := max(int(min(limit, 1<<31))-connReserve, 16)
	cfg.Logger.Warn("controller: fewer control connections than asked, to fit the descriptor limit (raise RLIMIT_NOFILE for more)",
		"max_conns", cfg.MaxConns, "now", n, "limit", "RLIMIT_NOFILE", "descriptors", limit)
	cfg.MaxConns = n
}

func (cfg *Config) connDefaults() {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1024
	}
	if cfg.MaxConnsPerPeer == 0 {
		cfg.MaxConnsPerPeer = 256
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.MaxLargeFrameBytes <= 0 {
		cfg.MaxLargeFrameBytes = DefaultMaxLargeFrameBytes
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
}

func (cfg *Config) jobDefaults() {
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = 100_000
	}
	if cfg.MaxJobsPerClient == 0 {
		cfg.MaxJobsPerClient = 1000
	}
	if cfg.RegisterRate == 0 {
		cfg.RegisterRate = 100
	}
	if cfg.RegisterBurst <= 0 {
		cfg.RegisterBurst = 100
	}
	if cfg.StatusJobs <= 0 {
		cfg.StatusJobs = 100
	}
	if cfg.ListJobsPage <= 0 {
		cfg.ListJobsPage = 1000
	}
}
