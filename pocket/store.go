package pocket

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// Tier is where a job's data lives. It is an alias of wire.Tier, the one
// definition the SDK, the nodes and the controller share; the SDK keeps the
// name so callers need not import package wire.
type Tier = wire.Tier

// Tiers: re-exports of wire.TierDRAM and wire.TierNVMe.
const (
	TierDRAM = wire.TierDRAM
	TierNVMe = wire.TierNVMe
)

// Map is a job's placement map as the controller hands it out.
type Map struct {
	Job   string
	Token []byte
	Tier  Tier
	Epoch uint64
	Nodes []Node
	Dead  map[string]bool // nodes the controller has marked dead
	// Draining nodes take no new data and still hold the keys they have
	// not moved yet (see drain.go).
	Draining map[string]bool
	// Joining nodes are in the job's placement, but the values they now
	// own may still be at their owner under the map without them, which
	// is moving them there (see drain.go).
	Joining map[string]bool
	// Lost nodes left the map dead, oldest first: the keys they held read
	// as ErrLost (see lost.go).
	Lost []LostNode
	// Ended marks an ended job's final map (deregistered, or its token
	// expired): the controller kept it because nodes keep the job's
	// persisted values, which it finds, read-only (see persist.go).
	Ended bool
	// Expires is when the job's token expires, as the controller granted
	// it (a requested TTL capped by its --max-token-ttl); zero: never, or
	// not known (a static map, a credential).
	Expires time.Time
	// Suspect nodes of an ended job's map were named dead by a hint only:
	// a credential's dead mark, or the controller's dead nodes at the
	// job's deregistration (DropResult.Dead), a moment's view a node may
	// come back from with its values. Requests still try them, without
	// goneWait: one that refuses connections is gone at once (GoneNodes),
	// one that answers is an ordinary node again (gone.go). Nil for a
	// live job's map.
	Suspect map[string]bool
	// Alloc is what the controller's reply said of the job's allotment: a
	// registration's all of it (Job.Allotment keeps it), a map fetch its
	// Mbps and Bytes only; zero in a static map or a credential's.
	Alloc Allotment
}

// Allotment is what the controller allotted a job at its registration,
// as pocket job register prints it: bandwidth over its nodes (Mb/s, 0:
// none) and capacity of its tier (bytes, 0: none); where its size came
// from ("hints", "profile": earlier jobs of its name, "default": Pocket's
// 2 nodes / 16 Gb/s; "" not said); the registering client's quotas and
// what is left of them with this job allotted (0: no quota); and Note,
// what the job should know of its placement ("": nothing), such as nodes
// the autoscaler started for it that did not come.
type Allotment struct {
	Mbps      float64
	Bytes     int64
	SizedFrom string
	Note      string

	QuotaBytes, QuotaLeftBytes int64
	QuotaMbps, QuotaLeftMbps   float64
}

// Node is one storage node of a job's map. Each (key, chunk) lives on the
// node that weighted rendezvous hashing over the map's nodes picks, so a
// node's share of the keys is its Weight over the sum of the weights.
type Node struct {
	Addr   string  // the node's data-plane address, host:port
	Weight float64 // relative share of the job's data; nodes with Weight <= 0 get none
	// Since is the first map epoch at which the node holds its whole
	// share: 0 from the start, wire.SinceNotYet while values still move
	// to it (wire.MapNode.Since). Only the lost nodes' placement reads it
	// (lost.go).
	Since uint64
}

// placementNodes converts the map's nodes for the placement hash.
func placementNodes(ns []Node) []placement.Node {
	out := make([]placement.Node, len(ns))
	for i, n := range ns {
		out[i] = placement.Node{ID: n.Addr, Weight: n.Weight}
	}
	return out
}

// Hints describe a job to the controller; zero means "not given".
type Hints struct {
	Lambdas          int
	CapacityBytes    int64
	PeakMbps         int64
	LatencySensitive bool
}

// check refuses hints the wire cannot carry as given (wire.CodeMalformed):
// Lambdas negative or over a uint32, which the conversion would wrap
// (before, -1 registered as 4,294,967,295 lambdas and 1<<32 as none); the
// controller checks the rest (wire.JobHints.Check).
func (h Hints) check() error {
	if h.Lambdas < 0 || uint64(h.Lambdas) > math.MaxUint32 {
		return wire.Errorf(wire.CodeMalformed, "lambdas hint %d: want 0 (not given) to %d", h.Lambdas, uint32(math.MaxUint32))
	}
	return nil
}

// Controller is what the SDK needs of the control plane. The metaclient
// adapter implements it; a static map (OpenStatic) needs none. GetMap may
// answer an ended job's final map (Map.Ended) to the job's token; an
// implementation that never does answers such a job with an error
// matching wire.ErrUnknownJob.
type Controller interface {
	RegisterJob(ctx context.Context, name string, h Hints) (Map, error)
	// DeregisterJob ends the job. An error means the controller did not
	// deregister it (the job stays live); once it did, the error is nil
	// and the DropResult says what the job's nodes did, failures and dead
	// nodes included.
	DeregisterJob(ctx context.Context, job string, token []byte) (DropResult, error)
	GetMap(ctx context.Context, job string, token []byte) (Map, error)
	Close() error
}

// Config tunes a Store.
type Config struct {
	// ChunkSize splits values larger than it into chunks spread over the
	// job's nodes. Default DefaultChunkSize.
	ChunkSize int64
	// Parallel is the most chunks of one object moved at once. Default 8.
	Parallel int
	// ConnsPerNode is the number of connections to each node. Default 2.
	ConnsPerNode int
	// TLS, when set, is how Dial reaches the controller: mutual TLS with a
	// client certificate of the cluster CA, that is a tls.Config with
	// Certificates from client.pem and client-key.pem and RootCAs from
	// ca.pem of the TLS directory pocket up made (DATA/tls). Unset, Dial
	// uses that directory when POCKET_TLS_DIR names it.
	TLS *tls.Config
	// Insecure makes Dial reach the controller over plain TCP even when
	// POCKET_TLS_DIR is set (TLS must be nil then).
	Insecure bool
	// ControllerWait bounds how long a call waits for a controller that
	// does not answer (none listening, a restart, a failover) before it
	// fails with the dial's error; 0 waits until the call's context ends,
	// or, for a context without a deadline, for the controller client's
	// call timeout (metaclient.Options.CallTimeout, 15 s).
	ControllerWait time.Duration
	// Silence fails a request to a node that sends nothing for this long
	// while the request waits for its reply (or is being written and the
	// node reads nothing): a node frozen, stalled or cut off without
	// closing its connections. The request then goes as to any node that
	// cannot be reached: the job's map is fetched, and a node the
	// controller marked dead answers its dead-node error. Default
	// client.DefaultSilence (30 s); negative: never, the call's context
	// alone bounds it.
	Silence time.Duration
}

// DefaultChunkSize is the chunk size unless configured; chosen by
// measurement (see README, "Chunk size").
const DefaultChunkSize = 1 << 20

// Store is a connection to a cluster: the controller (optional) and a pool
// of data-plane connections shared by all jobs opened through it. It is
// safe for concurrent use.
type Store struct {
	ctl  Controller
	data *client.Client
	cfg  Config
	lim  wire.Limits
}

// NewStore returns a store over a controller (nil for static maps only).
func NewStore(ctl Controller, cfg Config) *Store {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	lim := wire.DefaultLimits()
	if cfg.ChunkSize > lim.MaxPayload {
		cfg.ChunkSize = lim.MaxPayload
	}
	return &Store{ctl: ctl, cfg: cfg, lim: lim, data: client.New(client.Options{ConnsPerNode: cfg.ConnsPerNode, Silence: cfg.Silence})}
}

// ErrNoController: the call needs a controller and the store has none.
var ErrNoController = errors.New("pocket: no controller configured")

// RegisterJob asks the controller for resources and returns the job.
func (s *Store) RegisterJob(ctx context.Context, name string, h Hints) (*Job, error) {
	if s.ctl == nil {
		return nil, ErrNoController
	}
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("pocket: register job %q: %w", name, err)
	}
	m, err := s.ctl.RegisterJob(ctx, name, h)
	if err != nil {
		return nil, fmt.Errorf("pocket: register job %q: %w", name, err)
	}
	j, err := s.newJob(m)
	if err == nil {
		j.alloc = m.Alloc
	}
	return j, err
}

// OpenJob opens an already registered job by id and token (from another
// process: lambdas receive the id and token from their launcher).
//
// A job that has ended (deregistered, or its token expired) while nodes
// keep its persisted values opens as a deregistered one (see persist.go):
// on the final map the controller kept for it, it gets, lists and deletes
// those values, its puts are refused (wire.ErrRevoked), and its
// Credential hands them on. A job the controller does not know (or kept
// no map of) fails with an error matching wire.ErrUnknownJob.
//
// token is the job's token as Job.Token returns it, or its text form as
// `pocket job register` prints it ($POCKET_TOKEN: hex, twice as long),
// which Python's open_job takes too.
func (s *Store) OpenJob(ctx context.Context, jobID string, token []byte) (*Job, error) {
	if s.ctl == nil {
		return nil, ErrNoController
	}
	m, err := s.ctl.GetMap(ctx, jobID, rawToken(token))
	if err != nil {
		return nil, fmt.Errorf("pocket: open job %q: %w", jobID, err)
	}
	j, err := s.newJob(m)
	if err != nil {
		return nil, err
	}
	j.retired.Store(m.Ended)
	return j, nil
}

// rawToken is tok, or the token its text form (hex, as token.Format
// writes it) stands for: a raw token is never twice its own length. Before,
// the printed form was refused as "bad token ... does not grant job" (a
// new user's trial), with nothing saying it had to be decoded.
func rawToken(tok []byte) []byte {
	text := bytes.TrimSpace(tok) // as read from a file or an environment line, with its newline
	if len(text) != 2*token.Len {
		return tok
	}
	if b, err := token.Parse(string(text)); err == nil {
		return b
	}
	return tok
}

// Ended reports whether the job has ended, as far as this handle knows:
// it was deregistered through it, opened from a credential of an ended
// job, or found ended by the controller (Map.Ended). Such a job reads,
// lists and deletes its persisted values only.
func (j *Job) Ended() bool { return j.retired.Load() }

// OpenStatic opens a job on a fixed set of nodes without a controller: the
// standalone mode, with equal weights and no token.
func (s *Store) OpenStatic(jobID string, addrs ...string) (*Job, error) {
	m := Map{Job: jobID, Tier: TierDRAM}
	for _, a := range addrs {
		m.Nodes = append(m.Nodes, Node{Addr: a, Weight: 1})
	}
	return s.newJob(m)
}

func (s *Store) newJob(m Map) (*Job, error) {
	if len(m.Nodes) == 0 && len(m.Lost) == 0 {
		// An ended job's final map may name lost nodes only: each was
		// lost since the job ended (package controller, ended_lost.go).
		return nil, fmt.Errorf("pocket: job %q has no nodes", m.Job)
	}
	j := &Job{s: s}
	j.setMap(m)
	return j, nil
}

// Close closes the store's connections and its controller client.
func (s *Store) Close() error {
	err := s.data.Close()
	if s.ctl != nil {
		err = errors.Join(err, s.ctl.Close())
	}
	return err
}

// Job is a registered job: its map and the operations on its keys.
type Job struct {
	s        *Store
	mu       sync.RWMutex
	m        Map
	set      *placement.Set
	live     *placement.Set // set without draining nodes (drain.go)
	prior    *placement.Set // set without joining nodes (drain.go)
	lost     []lostSet      // the placements of lost nodes' keys, nil when none (lost.go)
	fetched  time.Time      // when the map was set (refreshUnavailable)
	jobBytes []byte         // m.Job as bytes, made once per map for requests

	staleMu    sync.Mutex  // one stale-epoch fetch at a time (refreshNewer)
	staleFetch time.Time   // when the last one was made
	laterFetch atomic.Bool // a background fetch after a timeout runs (refreshLater)

	retired atomic.Bool                // deregistered through it, or opened from a credential (holdsNone)
	dropped atomic.Pointer[DropResult] // its deregistration's result, once deregistered through it
	// deregSent: a deregistration through it was sent and its outcome is
	// unknown; a later one that finds the job ended counts it as that one's.
	deregSent atomic.Bool

	alloc Allotment // the registration's, when registered through it (Allotment)

	goneMu sync.Mutex // markGone's changes to the map, and gone
	gone   []string   // nodes of a retired job's map found gone (gone.go)

	fences fences // calls given up and still running (fence.go)
	// undropped: versions deletes removed at a key's old owner and could
	// not drop yet (undropped.go).
	undropped undropped
}

func (j *Job) setMap(m Map) {
	set := placement.NewSet(placementNodes(m.Nodes))
	live, prior := liveSet(m, set), priorSet(m, set)
	lost := lostSets(m)
	job := []byte(m.Job)
	j.mu.Lock()
	j.m, j.set, j.live, j.prior, j.lost, j.jobBytes, j.fetched = m, set, live, prior, lost, job, time.Now()
	j.mu.Unlock()
}

// Allotment is what the controller allotted the job when it was
// registered through this handle. For a job opened (OpenJob) it is what
// the latest map fetched says: Mbps and Bytes only (a map carries no
// SizedFrom, Note or quotas). Zero for a credential's job or on static
// nodes.
func (j *Job) Allotment() Allotment {
	if j.alloc != (Allotment{}) {
		return j.alloc
	}
	return j.snapshot().Alloc
}

// ID is the job id, like "sort-3".
func (j *Job) ID() string { return j.snapshot().Job }

// Token is the job's capability token.
func (j *Job) Token() []byte { return j.snapshot().Token }

// Map returns the job's current placement map.
func (j *Job) Map() Map { return j.snapshot() }

func (j *Job) snapshot() Map {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return j.m
}

// Deregister releases the job: every node drops its data except values put
// with Persist. Those stay read-only: this Job still gets, lists and
// deletes them, and Credential carries them to another process (see
// persist.go).
//
// It fetches the job's map first: the persisted values stay where that map
// put them, and this Job and its Credential find them by it from then on.
// A map the handle had not refreshed since a node of it drained (the values
// moved, the handle never met the change) named the drained node for them,
// and they read as unavailable after the deregistration.
//
// Once the controller deregistered the job, the Job is an ended job's
// whatever its nodes did, and Deregistration says what they did. The
// error is then nil when every node of the map dropped the job's data but
// dead ones (DropResult.Dead: their copy went with them), else a
// *DropError naming the nodes that did not (they may still hold it). Any
// other error means this call did not deregister the job: the Job stays
// as it was, live, unless the map's fetch found the job ended already
// (deregistered, or its token expired: Ended then reports true and the
// error is wire.ErrUnknownJob). Such errors: ErrNoController; the map's
// fetch failing (a controller that does not answer, within the context);
// the controller's refusal (wire.ErrBadToken, wire.ErrUnknownJob for a job
// it does not know, deregistered already say); a *metaclient.OutcomeUnknownError when the connection failed after
// the request was sent and asking again (deregisterJob) did not settle it
// (the controller may have deregistered the job: pocket status says). A
// later Deregister of the same Job that finds the job ended counts it as
// that call's: it returns nil, its result Unreported.
func (j *Job) Deregister(ctx context.Context) error {
	if j.s.ctl == nil {
		return ErrNoController
	}
	if err := j.refresh(ctx); err != nil && !errors.Is(err, wire.ErrRevoked) && !errors.Is(err, wire.ErrUnknownJob) {
		return fmt.Errorf("pocket: deregister %s: fetching the job's map: %w", j.snapshot().Job, err)
	}
	m := j.snapshot()
	res, err := deregisterJob(ctx, j.s.ctl, m.Job, m.Token)
	switch {
	case errors.Is(err, metaclient.ErrOutcomeUnknown):
		j.deregSent.Store(true)
		return err
	case errors.Is(err, wire.ErrUnknownJob) && j.deregSent.Load():
		// An earlier call's request ended it: a new user's trial asked
		// again after a deregistration cut by its context and got "is
		// not registered: it was deregistered at ...", Ended true.
		res, err = DropResult{Unreported: true}, nil
	case err != nil:
		return err
	}
	j.dropped.Store(&res)
	j.markSuspect(res.Dead)
	j.retired.Store(true)
	if len(res.Failures) > 0 {
		return &DropError{Job: m.Job, Result: res}
	}
	return nil
}

// holdsNone reports whether err, a node's answer to a listing, count,
// usage or prefix delete, means that node holds none of a retired job's
// persisted values: after deregistration a node that kept none answers
// revoked, and a node found gone (gone.go: retired or dead) holds none.
// A live job's handle reports that revocation (its token was revoked, or
// expired).
func (j *Job) holdsNone(err error) bool {
	return j.retired.Load() && (errors.Is(err, wire.ErrRevoked) || isGone(err))
}
