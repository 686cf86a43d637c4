package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// Guard authorizes requests. A node started without a controller has no
// guard and serves anyone (the standalone mode of `pocket node`).
type Guard interface {
	// CheckJob returns nil when token grants access to job, else an error
	// matching wire.ErrBadToken. Called on every request, so it must be cheap.
	CheckJob(job, token []byte) error
	// CheckOrder checks proof as the controller's order o about job
	// (drop-job orders: token.VerifyOrder; o names this node's address and
	// incarnation, the request's opcode, flags and nonce) received at now,
	// and returns the order's expiry in Unix milliseconds, or an error
	// matching wire.ErrBadToken. The node refuses a nonce it took before.
	CheckOrder(job []byte, o token.Order, proof []byte, now time.Time) (expiresMs int64, err error)
}

// NodeConfig configures a storage node.
type NodeConfig struct {
	Listen string       // host:port
	Net    netio.Config // event loops, limits, busy polling; Net.ReserveConns 0: DefaultReserveConns (reserve.go)
	Limits wire.Limits  // zero value: wire.DefaultLimits
	DRAM   Tier         // may be nil when NVMe is set
	NVMe   Tier         // optional
	Guard  Guard        // nil: no tokens checked
	// Workers bounds the goroutines that run blocking tier calls (NVMe);
	// it is also the deepest device queue the node can build. Default 64.
	Workers int
	// Logger receives the node's events, with the job as a job attribute
	// (nil: slog.Default()); the event loops log through it too unless
	// Net.Logger is set. The process gives it the node's identity, e.g.
	// logger.With("node", addr).
	Logger *slog.Logger
	// MaxUnfinishedPerJob bounds the bytes of one owner's puts whose
	// payload is still arriving on this node, in each tier: its jobs'
	// together (the owner the controller's table names, else the job;
	// the name is from when the bound was per job; unfinished.go). 0: a quarter of the DRAM tier's capacity, and a
	// quarter of the NVMe tier's staging memory (its buffer source's
	// regions); negative: no bound.
	MaxUnfinishedPerJob int64
	// MaxVersionBytes bounds the memory of the table that files chunk
	// keys by object version (versions.go), counted per version and per
	// chunk key (versionCost, chunkCost). 0: a sixteenth of the tiers'
	// capacity, at least 64 MiB; negative: no bound.
	MaxVersionBytes int64
	// AwaitSync makes the node refuse every job from its start until its
	// job table has synced with a controller (see Node.AwaitSync): set it
	// for a node that will run with one.
	AwaitSync bool
	// RevokeLinger is how long a job revoked here keeps refusing before
	// the node forgets it (jobtable.go). 0: wire.RevokeLinger. The
	// controller's Config.RevokeLinger must not be shorter: it takes a
	// node that dropped a live job's data by its order back into the
	// job's map that long after the order.
	RevokeLinger time.Duration
}

// Node is a storage node: the event loops, the tiers, and the job table.
type Node struct {
	cfg    NodeConfig
	lim    wire.Limits
	reqLim wire.Limits // lim with MaxMeta cut to requestMeta: request headers are checked against it
	srv    *netio.Server
	log    *slog.Logger
	work   chan func()
	lanes  *lanes       // the scan lanes (lane.go, lanes.go)
	workMu sync.RWMutex // held shared by submit's send, exclusively to close work
	workUp bool         // work is open (under workMu)
	wg     sync.WaitGroup
	jobs   jobTable
	vers   *versionTable // object versions and their leases (versions.go)
	stats  nodeStats
	mx     nodeMetrics // requests by op and result, latency (metrics.go)
	closed atomic.Bool
	drain  atomic.Bool

	incarnation uint64                 // Incarnation
	advert      atomic.Pointer[string] // SetAdvertised
	orders      orderLog               // nonces of the controller's orders taken (orders.go)
	bg          bgDrops                // drops of jobs the heartbeat acks revoke or order dropped (bgdrop.go)
	// verSnaps keeps the versions orders' snapshots between pages
	// (sweep.go). Kept here, among the cold fields: placed before stats it
	// moved the per-loop counters, and 1 MiB GETs measured 0.89-0.91x.
	verSnaps versionSnaps
	// unfinishedCap is MaxUnfinishedPerJob resolved for each tier
	// (unfinishedSlot); 0: no bound.
	unfinishedCap [2]int64
	// unfinished is the bytes of unfinished puts per owner
	// (unfinished.go).
	unfinished unfinishedShares
	// quota is the bytes of puts under a byte quota still under way, per
	// owner (quotahold.go).
	quota quotaShares
	// inflight counts blocking tier calls queued or running on workers.
	inflight atomic.Int64
	// pf is the DRAM tier when it can prefetch, else nil; batches are the
	// loops' prefetch scratch, by loop index, each made and used only by
	// its loop (see prefetch.go).
	pf      prefetcher
	batches [maxStatLoops]*prefetchBatch
}

// nodeStats are the request counters, one set per event loop so that two
// loops never write the same cache line on every request; Stats adds them.
type nodeStats struct {
	loops [maxStatLoops]loopStats
}

const maxStatLoops = 64

type loopStats struct {
	requests, errors  atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
	_                 [32]byte // one cache line each
}

// of returns the counters of c's loop.
func (s *nodeStats) of(c *netio.Conn) *loopStats {
	return &s.loops[c.Loop().Index()%maxStatLoops]
}

// NewNode starts a node listening on cfg.Listen.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.DRAM == nil && cfg.NVMe == nil {
		return nil, errors.New("dataplane: a node needs at least one tier")
	}
	n := &Node{cfg: cfg, lim: cfg.Limits, log: cfg.Logger}
	if n.lim.MaxMeta == 0 {
		n.lim = wire.DefaultLimits()
	}
	if n.log == nil {
		n.log = slog.Default()
	}
	if cfg.Net.Logger == nil {
		cfg.Net.Logger = n.log
	}
	n.reqLim = n.lim
	n.reqLim.MaxMeta = requestMeta(&n.lim)
	if cfg.Net.MaxInbound == 0 {
		cfg.Net.MaxInbound = wire.HeaderLen + n.lim.MaxMeta + smallCopy
	}
	if cfg.Net.ReserveConns == 0 {
		cfg.Net.ReserveConns = DefaultReserveConns
	}
	if cfg.Guard != nil {
		// Peers that show no valid token or order proof cannot keep
		// clients that do out (admit).
		cfg.Net.EvictUnproven = true
	}
	if d, ok := cfg.DRAM.(*DRAM); ok {
		// Compaction scans every key: not on an event loop (dram_compact.go).
		d.SetBackgroundCompaction(true)
	}
	n.pf, _ = cfg.DRAM.(prefetcher)
	for _, t := range []Tier{cfg.DRAM, cfg.NVMe} {
		if o, ok := t.(ownedTier); ok {
			o.setOwners(n.ownerOf)
		}
	}
	n.unfinishedCap = unfinishedCaps(cfg)
	n.jobs.init()
	if cfg.RevokeLinger > 0 {
		n.jobs.linger = cfg.RevokeLinger
	}
	n.incarnation = rand.Uint64() | 1
	n.jobs.await.Store(cfg.AwaitSync)
	n.jobs.loops = cfg.Net.Loops
	if n.jobs.loops <= 0 {
		n.jobs.loops = runtime.NumCPU() // netio's default
	}
	if g, ok := cfg.Guard.(*TokenGuard); ok {
		n.cfg.Guard = g.bind(&n.jobs)
	}
	n.vers = newVersionTable()
	n.vers.ownerOf = n.ownerOf
	n.vers.max = versionBudget(cfg)
	n.mx.init(cfg.Net.Loops)
	n.startWorkers(cfg.Workers)
	srv, err := netio.Listen(cfg.Listen, cfg.Net, n)
	if err != nil {
		n.stopWorkers()
		return nil, fmt.Errorf("dataplane: listen %s: %w", cfg.Listen, err)
	}
	n.srv = srv
	bound := srv.Addr().String()
	n.advert.CompareAndSwap(nil, &bound) // orders name it until SetAdvertised
	return n, nil
}

func (n *Node) startWorkers(count int) {
	if count <= 0 {
		count = 64
	}
	n.work = make(chan func(), count*4)
	n.workUp = true
	n.startLanes()
	for i := 0; i < count; i++ {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for f := range n.work {
				f()
			}
		}()
	}
}

func (n *Node) stopWorkers() {
	n.workMu.Lock()
	n.workUp = false
	close(n.work)
	n.lanes.close()
	n.workMu.Unlock()
	n.wg.Wait()
}

// Addr is the address the node listens on.
func (n *Node) Addr() net.Addr { return n.srv.Addr() }

// Close stops the event loops and the workers. The tiers stay open: their
// owner closes them.
func (n *Node) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	err := n.srv.Close()
	n.stopWorkers()
	n.bg.close()
	n.vers.close()
	return err
}

// SetDraining makes the node refuse new puts with wire.CodeDraining while
// still serving reads and deletes.
func (n *Node) SetDraining(on bool) { n.drain.Store(on) }

// AwaitCommits returns once no put that passed its checks at commit
// before the call is still committing, or with ctx's error. Called after
// SetDraining(true), it returns when every put admitted before the drain
// has stored its value or failed, so a count of the node's values taken
// after it misses none of them: a put counts itself (jobEntry.inCommit)
// before it reads the drain flag. Before, a draining node's drainer could
// count no values left while an NVMe write admitted before the drain was
// still under way, call the drain done, and the value was lost with the
// node. Puts refused meanwhile count for the instant of their check, so
// a flood of them delays the return by microseconds, not indefinitely.
// Only a node with a TokenGuard counts its puts (they have job entries).
func (n *Node) AwaitCommits(ctx context.Context) error {
	return awaitNone(ctx, func() bool { return n.jobs.committing() > 0 })
}

// AwaitMoveCommits returns once no put of job admitted at a map epoch
// older than epoch (the map a move goes by) is still committing, or with
// ctx's error. A put checks at commit that its job's epoch is still the
// one it was admitted at (Node.publish: refused, the SDK puts it again by
// the new map), so once this returns, no put of an older map stores a
// value: a count of the job's misplaced values taken after it misses
// none. Before, a put admitted by the older map and still being written
// when the node's mover counted nothing left was stored after the move
// was reported done, where the new map's readers do not look. The new
// map's puts are not waited for; those admitted epochSlots map changes or
// more before epoch are counted with them and not waited for either.
func (n *Node) AwaitMoveCommits(ctx context.Context, job string, epoch uint64) error {
	e := n.jobs.lookup([]byte(job))
	if e == nil {
		return nil
	}
	return awaitNone(ctx, func() bool { return e.committingBefore(epoch) })
}

// awaitNone polls busy, 50 us apart at first and 5 ms at most, until it
// reports false or ctx ends.
func awaitNone(ctx context.Context, busy func() bool) error {
	for pause := 50 * time.Microsecond; busy(); pause = min(2*pause, 5*time.Millisecond) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	return nil
}

// SetEpoch records the current placement-map epoch of a job as the
// controller gives it; requests routed with an older epoch are refused with
// wire.CodeStaleEpoch. Clients' epochs are never learned (jobtable.go).
func (n *Node) SetEpoch(job string, epoch uint64) { n.jobs.setEpoch(job, epoch) }

// SyncWanted delivers a value when a request showed the node's job table
// behind its controller: it named a job's map epoch newer than the table
// holds (refused, CodeStaleEpoch naming the table's epoch), or a job the
// table did not hold yet (taken as pending). The agent heartbeats early
// on it, so the table catches up within a round trip to the controller.
// One value is buffered and the sends never block, so a flood of such
// requests costs the loops nothing and leaves one wake-up waiting; the
// receiver bounds how often it acts on them (metaclient.NodeLoop.Wake).
func (n *Node) SyncWanted() <-chan struct{} { return n.jobs.wake }

// Incarnation is a random number, not 0, drawn when the node was made:
// the node's registration carries it, and the controller takes another at
// a known address for a restart (an empty node) and has the jobs that had
// it lose it, once the node answers it at its address (wire.OpIncarnation,
// proved with the guard's secret): so the node listens before it
// registers.
func (n *Node) Incarnation() uint64 { return n.incarnation }

// AwaitSync makes the node refuse every job until its job table has
// synced with a controller (the first complete snapshot an ack brings):
// wire.CodeStaleEpoch, so a client fetches its job's map again. The agent
// calls it before it registers the node; a node without a controller
// never calls it and serves any job its guard admits.
func (n *Node) AwaitSync() { n.jobs.await.Store(true) }

// Tiers returns the node's tiers, DRAM first.
func (n *Node) Tiers() []Tier {
	var ts []Tier
	for _, t := range []Tier{n.cfg.DRAM, n.cfg.NVMe} {
		if t != nil {
			ts = append(ts, t)
		}
	}
	return ts
}

// Stats are a node's request counters.
type Stats struct {
	Requests, Errors, BytesIn, BytesOut uint64
	Net                                 netio.Stats
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	st := Stats{Net: n.srv.Stats()}
	for i := range n.stats.loops {
		l := &n.stats.loops[i]
		st.Requests += l.requests.Load()
		st.Errors += l.errors.Load()
		st.BytesIn += l.bytesIn.Load()
		st.BytesOut += l.bytesOut.Load()
	}
	return st
}

// JobTraffic is one job's use of a node: the value (payload) bytes the
// node received for it (puts) and sent for it (gets) since the job was
// first counted here, and the bytes it holds on the node now (all tiers).
type JobTraffic struct {
	Job               string
	BytesIn, BytesOut uint64
	Held              int64
}

// JobTraffic returns the counters of every job that has sent a request to
// this node (jobtraffic.go), in no order; a job whose entry left the job
// table is no longer listed, and a new job under the same id starts from
// zero. Requests of a job the table has no entry for (a node without a
// controller, or not synced yet) are in Stats only.
func (n *Node) JobTraffic() []JobTraffic {
	ts := n.jobs.countedJobs()
	out := make([]JobTraffic, len(ts))
	for i, t := range ts {
		in, o := t.totals()
		out[i] = JobTraffic{Job: t.job, BytesIn: in, BytesOut: o, Held: n.jobUsage([]byte(t.job))}
	}
	return out
}

// DropJob deletes a job's values from every tier (keeping persistent ones
// when asked); it returns the values and bytes freed. On a node with a
// guard it is the controller's order for a deregistered job: the job is
// revoked first, so its requests are refused (its reads answer busy)
// while its data goes, and is revoked or retired when the drop ends
// (jobtable.go), and it returns what it freed with what the node's own
// drops of the job freed before it (dropRevokedData); a standalone node
// forgets the job.
func (n *Node) DropJob(job []byte, keepPersistent bool) Dropped {
	if n.cfg.Guard == nil {
		freed := n.dropTiers(job, keepPersistent).add(n.dropLeased(job))
		n.jobs.forget(string(job))
		n.vers.dropJob(job)
		return freed
	}
	n.jobs.revokeOrder(string(job), time.Now(), !keepPersistent)
	return n.dropRevokedData(job, keepPersistent, true)
}

// dropRevokedData drops a revoked job's data (keeping persistent values
// when asked) and its versions, then ends its dropping state (dropped):
// deferred, so that no drop leaves the job dropping. The node's own drop
// (order false: a heartbeat said the job was revoked) keeps what it freed
// for the controller's next order (jobEntry.unreported), whose drop
// returns it with its own: a node that heard of a deregistration from a
// heartbeat dropped the job at once, and the order that followed found
// nothing left, so the deregistration reported the values short (a new
// user's trial: a 200 KB put, then deregister, reported 0 dropped, 3
// times of several). A drop of the node's own still under way when the
// order's ends is reported by the next order, if any: the drops run side
// by side (an order is not kept waiting on a slow device).
func (n *Node) dropRevokedData(job []byte, keepPersistent, order bool) Dropped {
	e := n.jobs.lookup(job)
	if !n.jobs.awaitCommits(string(job), commitWait) {
		n.log.Warn("a revoked job's puts were still committing when its drop began; what they store is dropped or kept at the next check",
			"job", string(job), "waited", commitWait)
	}
	defer func() { n.jobs.dropped(string(job), n.jobUsage(job)) }()
	freed := n.dropTiers(job, keepPersistent).add(n.dropLeased(job))
	n.vers.dropJob(job)
	if e == nil {
		return freed
	}
	e.dropMu.Lock()
	defer e.dropMu.Unlock()
	if !order {
		e.unreported = e.unreported.add(freed)
		return freed
	}
	freed, e.unreported = freed.add(e.unreported), Dropped{}
	return freed
}

// dropLeased deletes the chunks of the job's versions still leased here,
// persist-after-job ones too, and returns the bytes freed: the job has
// ended, so no writer can confirm them any more (a confirm of a revoked
// or retired job is refused), and no manifest will name them. Before, a
// writer killed during a large persisted put left its chunks counted in
// the job's persisted bytes (deregistration's and status's figures) for a
// chunk lease, 60 s, though no listing showed them (a new user's trial:
// 38-180 MiB a run).
func (n *Node) dropLeased(job []byte) Dropped {
	before := n.jobUsage(job)
	var values int
	for k, keys := range n.vers.takeLeasedOf(string(job)) {
		if t := n.tierOf(k.tier); t != nil {
			values += deleteKeys(t, job, keys)
		}
	}
	return Dropped{Values: int64(values), Bytes: max(before-n.jobUsage(job), 0)}
}

func (n *Node) dropTiers(job []byte, keepPersistent bool) Dropped {
	var freed Dropped
	for _, t := range n.Tiers() {
		freed = freed.add(t.DropJob(job, keepPersistent))
	}
	return freed
}

// jobUsage is a job's bytes on every tier.
func (n *Node) jobUsage(job []byte) int64 {
	var b int64
	for _, t := range n.Tiers() {
		b += t.JobUsage(job)
	}
	return b
}

// JobSync is where a heartbeat says the node's job table is: the
// controller revision, and a snapshot being received (wire.Heartbeat's
// Since, SnapRev, SnapAfter).
func (n *Node) JobSync() (since, snapRev, snapAfter uint64) { return n.jobs.syncPoint() }

// ApplyAck applies a heartbeat ack's job-table changes (package
// controller, changes.go): entries and epochs are updated in place, new
// jobs entered with one copy of each touched shard, revoked jobs refused
// and then their data dropped (persistent values stay, see jobtable.go)
// on goroutines of their own (bgdrop.go), so that a long drop does not
// hold the next heartbeat back; a drop still running of a job the ack
// lists live ends first. Its cost follows the ack's size, not the
// table's (but for such a wait). Revocations past their
// linger are swept first: the controller takes a node that dropped a live
// job's data by its order back into the job's map once the linger has
// passed (controller/dead.go), and the ack that says so must find the
// job forgotten. Before, when that ack was the first the node applied past
// the linger (it had been silent a few seconds, frozen or cut off), the
// revoked entry ignored it (same gen) and was then removed: the job, back
// in the node's map, was refused as revoked on it for good (a hostile
// trial: 50 of 190 acknowledged keys unreadable, the map stuck joining).
func (n *Node) ApplyAck(ack *wire.NodeAck) {
	now := time.Now()
	n.sweepRevoked(now)
	n.bg.awaitListed(ack.Jobs)
	for _, job := range n.jobs.apply(ack, now) {
		n.bg.start(job, func() { n.dropRevoked(job) })
	}
	for _, job := range n.jobs.takeLearned() {
		n.ownerLearned(job)
	}
}

// dropRevoked drops a revoked job's data, keeping persistent values.
func (n *Node) dropRevoked(job string) {
	freed := n.dropRevokedData([]byte(job), true, false)
	if freed.Bytes > 0 {
		n.log.Info("dropped a revoked job's data", "job", job, "values", freed.Values, "bytes", freed.Bytes)
	}
}

// commitWait bounds a revoked job's drop's wait for its puts still
// committing (jobTable.awaitCommits): a DRAM commit takes microseconds, an
// NVMe one a device write behind the worker queue. A variable for tests.
var commitWait = 2 * time.Second

// sweepRevoked drops again what puts already admitted when their job was
// revoked may have stored, removes entries revoked RevokeLinger ago, and
// checks a few retired jobs (jobtable.go).
func (n *Node) sweepRevoked(now time.Time) {
	for _, x := range n.jobs.expiredRevocations(now) {
		b := []byte(x.job)
		n.dropTiers(b, !x.all)
		n.vers.dropJob(b)
	}
	for _, r := range n.jobs.retiredBatch(retiredChecks) {
		b := []byte(r.job)
		used := n.jobUsage(b)
		if used > r.held {
			// A put admitted before the revocation may have landed
			// since: drop what is not persistent, then look again.
			n.dropTiers(b, true)
			used = n.jobUsage(b)
		}
		if used > r.held {
			// Persistent values of puts checked before the revocation
			// and committed after the drop (its wait for them gave up:
			// awaitCommits). No put is admitted after the revocation, so
			// they were acknowledged: kept. Before, the job lost every
			// persistent value here.
			n.log.Warn("a revoked job's persistent values landed after its drop; kept", "job", r.job,
				"bytes", used, "kept_before", r.held)
			n.jobs.keepLate(r.job, used)
		}
		n.jobs.unretire(r.job, used)
	}
}

// PlacedJobs lists the live jobs whose map holds this node (the controller
// gave their epoch), for a draining node to move.
func (n *Node) PlacedJobs() []string { return n.jobs.placed() }

// JobToken derives the token of a live job from its entry (a draining node
// needs it to fetch the job's map and to put the job's values on their new
// owners; no token travels to nodes). It needs a TokenGuard.
func (n *Node) JobToken(job string) ([]byte, bool) {
	g, ok := n.cfg.Guard.(*TokenGuard)
	if !ok {
		return nil, false
	}
	c, ok := n.jobs.claims(job)
	if !ok {
		return nil, false
	}
	return g.jobToken(job, c), true
}

// requestMetaSlack is what a request's flatbuffer holds beyond its
// strings and vectors: the root offset, the table and its vtable, the
// scalars, each vector's length and padding. 2,661 bytes encode the
// largest request of the default limits, of which 2,559 are the job,
// key, token and cursor.
const requestMetaSlack = 1024

// requestMeta is the most metadata a request may carry under lim: its
// job, key, list cursor and token at their limits, and the flatbuffer's
// own bytes (requestMetaSlack), or lim.MaxMeta if that is less. The
// frame limit (64 KiB by default) is far above it, and a header
// announcing up to that much made the node keep a 128 KiB buffer for a
// connection that sent all of it but one byte: 9,900 such connections,
// with no token, took a node from 44 MB to 735 MB of RSS for the idle
// timeout (2 min).
func requestMeta(lim *wire.Limits) int {
	return min(lim.MaxMeta, lim.MaxJobLen+2*lim.MaxKeyLen+lim.MaxToken+requestMetaSlack)
}
