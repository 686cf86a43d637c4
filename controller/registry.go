package controller

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/wire"
)

// Tier kinds as the wire.Tier numbers that TierStat.Kind and
// PlacementMap.Tier carry.
const (
	kindDRAM = uint8(wire.TierDRAM)
	kindNVMe = uint8(wire.TierNVMe)
)

// kindName names a TierStat.Kind or PlacementMap.Tier number (wire.Tier).
func kindName(k uint8) string { return wire.Tier(k).String() }

// Controller holds the node and job registries and serves the control
// protocol. Its methods are safe for concurrent use; the exported registry
// methods are what the network handlers call after authenticating the
// peer, and may be called in-process (where the caller is trusted).
type Controller struct {
	cfg Config
	// heard counts the heartbeats handled, for the sweep loop to tell a
	// tick's slow work from a stall inside it (sweepDone).
	heard atomic.Uint64
	// caID is the CA saved in the state's Meta: Config.CAID, else the
	// one restored (a controller without TLS keeps it).
	caID string
	// largeFrames is the metadata bytes of the large requests all
	// connections hold under way (admitLarge).
	largeFrames atomic.Int64
	// unprovenFrames is the part of largeFrames held by connections
	// that have not proved the node role (session.proven).
	unprovenFrames atomic.Int64
	// listings holds a token for each listing being built (listings.go).
	listings chan struct{}
	// expiryDrops runs one expired batch's drop orders at a time
	// (expireBatch).
	expiryDrops sync.Mutex

	mu sync.Mutex // guards everything below but auto and srv
	// endingMany: jobs are ending by the batch (expireBatch), which fits
	// the kept final maps to their bound once at its end (fitEndedLocked).
	endingMany bool
	nodes      map[string]*node
	// contact is what the controller has heard of its nodes since New
	// (dead.go: Deaf, lossHeldLocked).
	contact contact
	// settle is the wait of registrations for the nodes restored alive
	// (awaitRestored).
	settle settle
	jobs   map[string]*job
	seq    uint64
	// gone holds the nodes that finished a drain and left, with the time
	// they left and their incarnation: one still running (not stopped by
	// an orchestrator) is told to stop when it registers again, so a
	// drained node stays out (goneLocked).
	gone        map[string]retiredNode
	drainsEnded []wire.RetiredNode // the latest drain ends, for the status (drainEndedLocked)
	retireHooks []RetireHook
	retired     []retirement // retirements saved whose hooks have not run (drainTick)

	// Indexes that keep every operation's cost independent of the number
	// of jobs (see changes.go): the node-visible changes by revision, the
	// live jobs by registration, each node's jobs and allotments, the
	// clients' registrations, the jobs by expiry.
	rev     uint64
	log     changeLog
	order   jobOrder
	loads   map[string]*nodeLoad
	clients map[string]*client
	expiry  expiryHeap
	// registering is the need of the registrations between the
	// autoscaler's reservation and their entry or refusal (pend), which
	// reserve counts against the nodes' room.
	registering Need
	registrants int // the pends registering sums

	// Durable state (persist.go) and orphan reconciliation (orphans.go).
	st      persister
	tombs   tombs
	ended   endedJobs                         // ended jobs' final maps (ended.go)
	forgot  forgotLog                         // the final maps the bound forgot, for the log (ended.go)
	orphans map[string]map[string]*orphanSeen // by node address, then job id

	// Dead nodes that left maps (dead.go): the jobs that list each as
	// lost, and the drop orders due to those that came back.
	lostFrom  map[string]map[*job]struct{}
	lostDrops []lostDrop
	// cleanDue are the returned nodes that dropped a job's data by order
	// and keep none of it, with when they will have forgotten the job.
	cleanDue map[lostDrop]cleanDue
	// endedDrops are the drop orders queued to returned lost nodes for
	// the persisted values of ended jobs (ended_lost.go), by when.
	endedDrops map[lostDrop]time.Time

	// Jobs whose maps are changing (elastic.go).
	moving map[*job]struct{}

	auto atomic.Pointer[Autoscaler]

	prof *profileBook // job profiles (profile.go)

	srv server

	orphanDrops, orphanBytes  atomic.Uint64 // drop orders sent for orphans, and their bytes
	sweptVersions, sweptBytes atomic.Uint64 // ended jobs' unnamed chunk versions dropped, and their bytes (sweep.go)
	sweeps                    chan struct{} // a slot per sweep running (maxSweeps)
	// unswept are the ended jobs whose sweep waits for their nodes, or
	// for another attempt (sweepDeferred; in memory: a restore enters
	// every ended job's). Guarded by mu.
	unswept map[string]*pendingSweep

	regs regCounts // job registrations by outcome, for /metrics (metrics.go)

	// Restart checks (incarnation.go): the question to the node serving at
	// an address, and the checks in flight (at most maxProbes).
	askInc   incarnationAsker
	probes   chan struct{}
	refusals refusalWarnings // throttles their warnings
}

// node is a registered storage node.
type node struct {
	addr  string
	state wire.NodeState
	tiers []wire.TierStat
	// tiersKept: tiers came from a heartbeat kept for the figures
	// (not an early or hurried one), whose per-job bytes jobLoads holds
	// (noteFreed).
	tiersKept bool
	cores     uint32
	rx, tx    float64
	cpu       float64
	metrics   []wire.Metric
	lastSeen  time.Time
	deadSince time.Time
	// leaseEnd bounds when the node stops serving its jobs by the leases
	// it was given (the latest end of any ack's, counted from the ack:
	// a frozen node may not have read the newest): a draining node dead
	// of silence is not retired as lost before it (checkDrainsLocked).
	// silent: the node is dead of silence (the sweep), not by request.
	leaseEnd    time.Time
	silent      bool
	hist        history
	jobLoads    jobLoads          // per-job figures of its last heartbeats (jobload.go)
	drain       *drainState       // set while draining
	drainEnd    *wire.RetiredNode // how its last drain ended when its restart ended it (restartedLocked); stored
	persisted   persistedReport   // persisted values of ended jobs it keeps (drain.go)
	since       uint64            // the revision its job table was at in its last heartbeat
	incarnation uint64            // its process's, from its registration or the state (0: unknown)
	hurried     bool              // its last ack asked for the next heartbeat at once
	restored    bool              // read from the durable state, not synced with this run yet
	unheard     bool              // read from the durable state, no registration or heartbeat from it this run yet
}

// job is a registered job.
type job struct {
	id, name   string
	hints      wire.JobHints
	tier       uint8
	epoch      uint64
	nodes      []wire.MapNode  // State is filled from the registry when read
	lost       []wire.LostNode // nodes that left the map dead, oldest first (dead.go)
	allocMbps  float64
	allocBytes int64
	created    time.Time
	expires    time.Time // zero: never
	gen        uint64    // the revision that registered it (in its token)
	token      []byte
	client     string  // the peer that registered it ("" in-process)
	tenant     string  // the tenant that registered it ("" without TLS; tenant.go)
	revoked    bool    // deregistered or expired
	logged     *logJob // what the change log holds of it (changes.go)
	saved      bool    // a write of the store holds its record (persist.go)
	heapIdx    int     // position in expiryHeap, -1 when not in it
	// overQuota: its client stores past its byte quota and the nodes
	// refuse its puts (wire.JobEpoch.OverQuota), since quotaAt
	// (quotafull.go).
	overQuota bool
	quotaAt   time.Time
	// noQuota: its client's quota does not apply to it (the operator's
	// registration over TLS, or in-process), so it does not count
	// against its client's byte quota, nor is it marked or bounded.
	noQuota bool

	// Maps that change under the running job (elastic.go): the change in
	// progress, the nodes growth added, when the map last changed, the
	// revision of its latest epoch, and the map clients are handed.
	move       *move
	grown      int
	lostAt     time.Time // its latest loss of a node in this run (refill.go waits refillDelay after it)
	drainedAt  time.Time // its latest node retired by a drain that moved everything (refill.go; stored)
	lastChange time.Time
	undone     map[string]time.Time // nodes whose change of its map was undone, and when (undo.go)
	epochRev   uint64
	bumped     time.Time
	pub        *wire.PlacementMap
	// losing are the nodes of its map that the map takes keys from
	// (ownerBehindLocked), each with the revision that began it and the
	// lease the node held then; savedEpoch is the epoch of its record
	// as last saved (flushJob).
	losing     map[string]loss
	savedEpoch uint64
	// lostClean are the lost nodes known to hold none of the job's data
	// (restarted since, or dropped it by order and forgot the job:
	// dead.go), which the job may adopt again when no
	// other node is left to it; saved with the job (state.LostNode.Clean:
	// before, a restarted controller knew none clean, and refused a drain
	// with advice to restart nodes that had restarted already).
	lostClean map[string]bool
}

// nodeLoad is what the registry knows per node address about the jobs
// placed there: the jobs, and their allotments summed by weight.
type nodeLoad struct {
	jobs  map[*job]struct{}
	mbps  float64
	bytes map[uint8]int64 // by tier kind
	// shares is each job's share of its byte allotment here (byteShares),
	// as accountLocked added it; unused, by tier kind, what of those
	// shares the jobs have not used (heldBytesLocked), valid while
	// unusedOK: a placement or a heartbeat of the node clears it.
	shares   map[*job]int64
	unused   map[uint8]int64
	unusedOK bool
}

// New returns a controller with the registries of Config.Store (empty
// without one, or when the store is new). It starts the dead-node sweeper;
// Close stops it (and does not close the store). It fails when the store
// cannot be read.
func New(cfg Config) (*Controller, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctl := &Controller{cfg: c, caID: c.CAID, nodes: map[string]*node{}, jobs: map[string]*job{}, seq: c.FirstJobSeq,
		gone: map[string]retiredNode{}, loads: map[string]*nodeLoad{}, clients: map[string]*client{},
		orphans: map[string]map[string]*orphanSeen{}, lostFrom: map[string]map[*job]struct{}{}, moving: map[*job]struct{}{},
		probes: make(chan struct{}, maxProbes), sweeps: make(chan struct{}, maxSweeps), unswept: map[string]*pendingSweep{},
		listings: make(chan struct{}, maxListings)}
	ctl.askInc = ctl.askIncarnation
	if ctl.seq == 0 {
		ctl.seq = randomSeq()
	}
	now := time.Now()
	ctl.contact.started = now
	ctl.initRevisions(now)
	ctl.prof = newProfileBook(c.ProfileRuns, c.MaxProfiles, c.Store != nil)
	if c.Store != nil {
		ctl.st = persister{store: c.Store, jobs: map[string]struct{}{}, saved: map[string]state.Node{}}
		if err := ctl.restore(now); err != nil {
			return nil, fmt.Errorf("controller: state: %w", err)
		}
	}
	if m := c.MaxMbpsPerClient; m > 0 && m < c.Policy.PerLambdaMbps {
		c.Logger.Warn("controller: MaxMbpsPerClient is below one lambda's bandwidth: every job registered without hints, or with a lambdas hint, will be refused",
			"max_mbps_per_client", m, "per_lambda_mbps", c.Policy.PerLambdaMbps)
	}
	ctl.srv.init(c.Logger)
	ctl.srv.goroutine(ctl.sweepLoop)
	return ctl, nil
}

// randomSeq returns a start for job numbers in [1, 1e9).
func randomSeq() uint64 {
	return 1 + randomUint64()%999_999_999
}

// randomUint64 is 8 bytes of crypto/rand (1 if it fails).
func randomUint64() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 1
	}
	return binary.LittleEndian.Uint64(b[:])
}

// maxJobNumber bounds a random job number: [1, 1e12), 12 digits at most.
const maxJobNumber = 999_999_999_999

// newJobIDLocked is the id of a new job of name: "name-N". N is drawn at
// random in [1, 1e12) and is not the number of any job the controller
// holds (live, ended, or a tombstone); with Config.FirstJobSeq it is the
// next of the counter instead, for tests. Before, N was always the
// counter's next, from a random start: a tenant could count the jobs
// every other tenant registered between two of its own (a hostile trial),
// and a controller restored from an older copy of its state handed out
// again the ids it had given since.
func (c *Controller) newJobIDLocked(name string) string {
	if c.cfg.FirstJobSeq != 0 {
		id := name + "-" + strconv.FormatUint(c.seq, 10)
		c.seq++
		return id
	}
	for {
		id := name + "-" + strconv.FormatUint(1+randomUint64()%maxJobNumber, 10)
		if !c.jobIDHeldLocked(id) {
			return id
		}
	}
}

// jobIDHeldLocked reports whether id names a job the controller holds:
// registered, ended with a final map kept, or a tombstone.
func (c *Controller) jobIDHeldLocked(id string) bool {
	return c.jobs[id] != nil || c.ended.ids[id] != nil || c.tombs.ids[id] != nil
}

// ---- nodes ----

// RegisterNode adds or refreshes a node. It trusts its caller: the network
// handler checks the node's proof (or certificate) first.
func (c *Controller) RegisterNode(reg *wire.NodeRegister) (*wire.NodeAck, error) {
	if why := state.AddrProblem(reg.Addr); why != "" {
		return nil, wire.Errorf(wire.CodeBadKey, "node address %q: %s", reg.Addr, why)
	}
	ack, err := c.registerChecked(reg)
	if err != nil {
		if errors.Is(err, wire.ErrDraining) {
			// The order to stop follows from the node's retirement, and
			// cannot be taken back (the node exits for good): it goes out
			// once the retirement is saved.
			if ferr := c.flush(); ferr != nil {
				return nil, ferr
			}
		}
		return nil, err
	}
	if err := c.flush(); err != nil { // then the returned node's drop orders (dead.go)
		return nil, err
	}
	return ack, nil
}

// registerNode adds or refreshes reg's node. A known address registering
// with another incarnation is a restart only once the node serving there
// confirmed it (confirmed, incarnation.go); until then it answers a
// *restartClaim and changes nothing.
func (c *Controller) registerNode(reg *wire.NodeRegister, confirmed bool) (*wire.NodeAck, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clean, err := c.goneLocked(reg)
	if err != nil {
		return nil, err
	}
	n, ok := c.nodes[reg.Addr]
	restarted := ok && reg.Incarnation != 0 && n.incarnation != 0 && reg.Incarnation != n.incarnation
	if restarted && !confirmed {
		return nil, &restartClaim{old: n.incarnation}
	}
	c.heardLocked(reg.Addr, !ok || n.state == wire.NodeDead, time.Now())
	c.dirtyNodesLocked()
	switch {
	case !ok:
		n = &node{addr: reg.Addr, state: wire.NodeActive}
		c.nodes[reg.Addr] = n
		c.cfg.Logger.Info("controller: node registered", "node", reg.Addr, "tiers", tierSummary(reg.Tiers))
		if clean {
			c.cleanReturnLocked(reg.Addr)
		} else {
			c.unknownReturnLocked(reg.Addr)
		}
	case restarted:
		// Restarted: it holds nothing, so no lost job's data needs
		// dropping there (a drop order would make it refuse the job as
		// revoked rather than as out of date).
		c.restartedLocked(n)
	default:
		if n.state == wire.NodeDead {
			c.aliveLocked(n, "registered again")
		}
		c.returnedLocked(reg.Addr)
	}
	if reg.Incarnation != 0 {
		// A registration without one (a node of an older version) leaves
		// the known incarnation, so a later restart is still seen.
		n.incarnation = reg.Incarnation
	}
	n.tiers = append([]wire.TierStat(nil), reg.Tiers...)
	n.cores = reg.Cores
	c.heardNodeLocked(n, time.Now())
	// The job table's first page comes with the registration (the node
	// serves no job it has not heard of before: dataplane.Node.AwaitSync);
	// More asks for the rest at once.
	ack := &wire.NodeAck{Known: true, State: n.state, Heartbeat: c.cfg.HeartbeatInterval, Lease: c.grantLeaseLocked(n)}
	c.snapshotLocked(reg.Addr, 0, 0, ack)
	c.extendLossesLocked(n, ack)
	return ack, nil
}

// Heartbeat records a node's report and answers with the node's state and
// the job-table changes since the heartbeat's revision (changes.go). An
// unknown node gets Known=false and must register again. It trusts its
// caller, as RegisterNode does. The ack also names the held jobs
// (hb.Held) the node must drop (orphans.go).
func (c *Controller) Heartbeat(hb *wire.Heartbeat) (*wire.NodeAck, error) {
	ack := c.heartbeat(hb)
	if err := c.flush(); err != nil { // then the returned node's drop orders (dead.go)
		return nil, err
	}
	return ack, nil
}

func (c *Controller) heartbeat(hb *wire.Heartbeat) *wire.NodeAck {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[hb.Addr]
	if !ok {
		return &wire.NodeAck{Known: false, Heartbeat: c.cfg.HeartbeatInterval}
	}
	c.heardLocked(n.addr, n.state == wire.NodeDead, time.Now())
	c.heard.Add(1)
	switch {
	case n.state == wire.NodeDead:
		c.aliveLocked(n, "heartbeat resumed")
		c.returnedLocked(n.addr)
	case n.unheard:
		// First heard in this run: the drop orders an earlier run sent it
		// went with their wait for the node to forget the job
		// (cleanDueLocked), so they go again.
		c.returnedLocked(n.addr)
	}
	if len(hb.Tiers) > 0 {
		n.tiers = append(n.tiers[:0], hb.Tiers...)
	}
	now := time.Now()
	// A heartbeat sent at once because the last ack asked for it (More)
	// has rates over a sliver of time: a burst reads as a spike. Its
	// figures are kept out of the rates and the history the policies read.
	// So are an early heartbeat's (hb.Early: a request showed the node's
	// table behind), always: clients can cause them, up to one per
	// metaclient.DefaultWakeGap, and the node's next heartbeat covers its
	// interval.
	kept := !hb.Early && (!n.hurried || n.hist.n == 0)
	if len(hb.Tiers) > 0 {
		n.tiersKept = kept
	}
	if kept {
		n.rx, n.tx, n.cpu = hb.RxMbps, hb.TxMbps, hb.CPUPercent
		n.metrics = hb.Metrics
		n.jobLoads.add(hb.Loads, hb.Incarnation != 0)
		if l := c.loads[n.addr]; l != nil {
			l.unusedOK = false // the jobs' bytes there changed (heldBytesLocked)
		}
		c.recordLocked(n, now)
		c.prof.observeNode(n, c.loads[n.addr], c.nodeMbps(n), now, c.dirtyJobLocked)
	}
	c.heardNodeLocked(n, now)
	if n.incarnation == 0 && hb.Incarnation != 0 {
		// A node whose incarnation the registry does not know (restored
		// from a state written before incarnations were stored) teaches it
		// with its heartbeats, so that a later restart of it is seen
		// (registerNode); it is stored from then on.
		n.incarnation = hb.Incarnation
		c.dirtyNodesLocked()
	}
	n.persisted = persistedOf(hb)
	c.endedLostDropsLocked(n, now)
	c.drainReportLocked(n, hb, kept)
	// A delta ack (not a snapshot) follows from a revision this run logged.
	delta := hb.SnapRev == 0 && c.coversLocked(hb.Since)
	if delta {
		n.since, n.restored = hb.Since, false
	}
	c.moveReportsLocked(n, hb.Moves)
	ack := &wire.NodeAck{Known: true, State: n.state, Heartbeat: c.cfg.HeartbeatInterval, Lease: c.grantLeaseLocked(n)}
	c.jobTableLocked(n.addr, hb, ack)
	c.extendLossesLocked(n, ack)
	for _, e := range ack.Jobs {
		if delta && e.Epoch > 0 {
			// A map with this node changed: confirm at once, so the
			// controller can hand the map out (publishedLocked).
			ack.More = true
			break
		}
	}
	// An early heartbeat between two others leaves the next one hurried
	// if it was (the node's schedule is the regular one's).
	n.hurried = ack.More || hb.Early && n.hurried
	c.orphansLocked(n.addr, hb.Held, ack, n.lastSeen)
	return ack
}

// setStateLocked changes a node's state and bumps the epoch of every job
// that has the node in its map.
func (c *Controller) setStateLocked(n *node, s wire.NodeState, why string) {
	if n.state == s {
		return
	}
	c.cfg.Logger.Info("controller: node state", "node", n.addr, "from", n.state.String(), "to", s.String(), "why", why)
	n.state, n.silent = s, false
	c.dirtyNodesLocked()
	if s == wire.NodeDead {
		n.deadSince = time.Now()
	}
	if l := c.loads[n.addr]; l != nil {
		for j := range l.jobs {
			c.bumpLocked(j)
		}
	}
}

// SetNodeState sets a registered node's state. It returns CodeNotFound
// for an unknown node. Draining goes through Drain, which also moves the
// node's data and retires it.
func (c *Controller) SetNodeState(addr string, s wire.NodeState) error {
	c.mu.Lock()
	n, ok := c.nodes[addr]
	if !ok {
		c.mu.Unlock()
		return wire.Errorf(wire.CodeNotFound, "node %s is not registered", addr)
	}
	c.setStateLocked(n, s, "set by request")
	c.mu.Unlock()
	return c.flush()
}

// sweepLoop marks silent nodes dead, forgets long-dead ones and expires
// jobs until the controller closes.
func (c *Controller) sweepLoop() {
	every := min(c.cfg.HeartbeatInterval, c.cfg.DeadAfter/4)
	t := time.NewTicker(every)
	defer t.Stop()
	done := time.Now()
	for {
		select {
		case <-c.srv.done:
			return
		case <-t.C:
			start, heard := time.Now(), c.heard.Load()
			c.sweepTick(start, done, every)
			done = sweepDone(start, time.Now(), every, c.heard.Load() != heard)
		}
	}
}

// sweepDone is when a sweep tick that began at start and ended at end
// counts as done, for the next tick's lateness (sweepTick): end, but
// start when the work took a period or more with no heartbeat heard
// meanwhile. The controller then did not run, or could not hear (stopped
// inside the tick, its lock held): the next tick, due at once, would
// otherwise sweep before reading the heartbeats waiting in its sockets
// (a hostile trial held the controller 10 s inside drainTick with a
// debugger: 1-3 heartbeating nodes marked dead in 5 of 8 runs, each back
// within 7 ms). A slow tick while heartbeats go on beside it (a slow
// flush) is not excused: that would put off marking dead a node that
// stopped heartbeating.
func sweepDone(start, end time.Time, every time.Duration, heard bool) time.Time {
	if end.Sub(start) >= every && !heard {
		return start
	}
	return end
}

// sweepTick is the sweep loop's work at a tick at now, the loop's work at
// the one before having ended at done, ticks every apart: a tick a
// period late or more is a stall of the controller's, excused first
// (excuseStall). The work's own time is not counted (a slow flush, which
// heartbeats go on beside): excusing it would put off marking dead a node
// that stopped heartbeating while the controller kept running slowly.
func (c *Controller) sweepTick(now, done time.Time, every time.Duration) {
	if late := now.Sub(done) - every; late >= every {
		c.excuseStall(now, late)
	}
	c.sweep(now)
	c.drainTick(now)
	c.movesTick(now)
	c.quotaTick(now)
	c.expireJobs(now)
	c.sweepDeferred(now)
	c.mu.Lock()
	c.dirtyNodesLocked() // a drain may have retired a node
	c.mu.Unlock()
	_ = c.flush() // logged; retried at the next tick
}

// excuseStall keeps the sweep from judging nodes by late, how long past
// its due time the sweep loop's tick came: time the controller did not
// run (its process stopped, or not scheduled), in which the heartbeats it
// could have heard wait in its sockets. A live node's last heartbeat
// moves late later, at most to now and never back; a dead node's death
// moves as much, so its grace (DeadNodeGrace) and ForgetAfter do not run
// out on the stall; a drain's deadline moves as much, and is at least two
// heartbeats from now, so that the node is heard before it is judged.
// Before, a controller that had not run for longer than DeadAfter could
// mark every node dead at its first sweep, before it read their
// heartbeats, and retire a draining node as lost at a deadline that
// passed while it was stopped; excusing live nodes alone would have let
// it lose a dead node that came back during the stall (a review).
func (c *Controller) excuseStall(now time.Time, late time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	shift := func(t time.Time) time.Time { // late later, at most to now, never back
		if s := t.Add(late); s.Before(now) {
			return s
		}
		return later(t, now)
	}
	for _, n := range c.nodes {
		if n.state == wire.NodeDead {
			n.deadSince = shift(n.deadSince)
		} else {
			n.lastSeen = shift(n.lastSeen)
		}
		if d := n.drain; d != nil {
			// The drain's time is given back whole: it cannot move
			// values meanwhile (its node fetches maps here). Before,
			// only two heartbeats from the return were: a hostile
			// trial's drain with 15 s to run, the controller stopped
			// 12-20 s from its start, ended with its node lost and up
			// to 295 of 2,000 values with it.
			d.deadline = later(d.deadline.Add(late), now.Add(2*c.cfg.HeartbeatInterval))
		}
	}
	c.cfg.Logger.Warn("controller: its sweep ran late: it did not run meanwhile (stopped, or not scheduled); nodes are judged from its return",
		"late", late.Round(time.Millisecond))
}

func (c *Controller) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, n := range c.nodes {
		switch {
		case n.state != wire.NodeDead && now.Sub(n.lastSeen) > c.cfg.DeadAfter:
			why := fmt.Sprintf("no heartbeat for %v", now.Sub(n.lastSeen).Round(time.Millisecond))
			if n.unheard {
				// Its lastSeen is the restore grace's end, not a heartbeat.
				why = fmt.Sprintf("restored from the state and not heard from since, %v beyond its first-heartbeat grace", now.Sub(n.lastSeen).Round(time.Millisecond))
			}
			c.setStateLocked(n, wire.NodeDead, why)
			n.silent = true
		case n.state == wire.NodeDead && now.Sub(n.deadSince) > c.cfg.ForgetAfter && !c.inAnyJobLocked(addr) && !c.inAnyEndedLocked(addr) &&
			(now.Sub(n.deadSince) > c.cfg.ForgetLostAfter || !c.namesLostLocked(addr)):
			c.cfg.Logger.Info("controller: node forgotten", "node", addr)
			delete(c.nodes, addr)
			delete(c.orphans, addr)
			c.dirtyNodesLocked()
		}
	}
	for addr, g := range c.gone {
		if now.Sub(g.at) > g.life(&c.cfg) {
			delete(c.gone, addr)
		}
	}
	c.evictDeadLocked(now)
	c.cleanDueLocked(now)
	c.refillLocked(now)
	c.sweepClientsLocked(now)
	c.pruneTombsLocked(now, c.cfg.tombLife())
	c.pruneEndedLocked()
}

func (c *Controller) inAnyJobLocked(addr string) bool {
	l := c.loads[addr]
	return l != nil && len(l.jobs) > 0
}

// inAnyEndedLocked reports whether addr is a node of a kept final map of
// an ended job (ended.go): a dead node there is not forgotten, since it
// may come back with the job's persisted values, and forgetting it would
// count it as keeping none and drop the map that finds them. The bound
// on kept maps (Config.MaxEndedJobs) bounds what this keeps.
func (c *Controller) inAnyEndedLocked(addr string) bool {
	for _, e := range c.ended.ids {
		if member, _ := e.names(addr); member {
			return true
		}
	}
	return false
}

func (j *job) has(addr string) bool {
	for i := range j.nodes {
		if j.nodes[i].Addr == addr {
			return true
		}
	}
	return false
}

// placeLocked sets a job's nodes, moving its allotment from the old nodes'
// loads to the new ones'. nil removes the job from every node.
func (c *Controller) placeLocked(j *job, nodes []wire.MapNode) {
	c.dirtyJobLocked(j.id)
	c.accountLocked(j, -1)
	j.nodes = nodes
	c.accountLocked(j, +1)
}

func (c *Controller) accountLocked(j *job, sign int) {
	shares := byteShares(j.allocBytes, j.nodes)
	for i, mn := range j.nodes {
		l := c.loads[mn.Addr]
		if l == nil {
			if sign < 0 {
				continue
			}
			l = &nodeLoad{jobs: map[*job]struct{}{}, bytes: map[uint8]int64{}, shares: map[*job]int64{}, unused: map[uint8]int64{}}
			c.loads[mn.Addr] = l
		}
		l.mbps += float64(sign) * j.allocMbps * mn.Weight
		l.bytes[j.tier] += int64(sign) * shares[i]
		share := shares[i]
		if sign > 0 {
			l.jobs[j] = struct{}{}
			l.shares[j] = share
		} else {
			share = l.shares[j]
			delete(l.jobs, j)
			delete(l.shares, j)
		}
		if n := c.nodes[mn.Addr]; l.unusedOK && n != nil {
			// The node's figures are those the sum was made with (a
			// heartbeat clears it): the job's part is added or taken.
			l.unused[j.tier] += int64(sign) * unusedShare(n, j, share)
		} else {
			l.unusedOK = false
		}
		if len(l.jobs) == 0 {
			delete(c.loads, mn.Addr) // also drops float rounding left over
		}
	}
}

// byteShares splits a job's allotment of total bytes over its nodes by
// weight, each share rounded so that they sum to total times the weights'
// sum exactly (total when the weights sum to 1): each node's share is the
// running sum rounded less the previous running sum rounded. Shares
// truncated one by one summed short, by up to a byte a node, and the
// spare capacity that sizing and its refusals name was that much too
// large ("536870914 bytes (0.5 GiB) spare" for 512 MiB). The split
// depends only on total and the nodes, so removing a job subtracts what
// adding it added.
func byteShares(total int64, nodes []wire.MapNode) []int64 {
	out := make([]int64, len(nodes))
	var cum float64
	var prev int64
	for i, mn := range nodes {
		cum += mn.Weight
		next := int64(math.Round(float64(total) * cum))
		out[i] = next - prev
		prev = next
	}
	return out
}

func tierSummary(ts []wire.TierStat) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d B %.0f Mb/s", kindName(t.Kind), t.CapacityBytes, t.Mbps)
	}
	return s
}

// ---- jobs ----

// maxNameLen leaves room in a job id for "-" and 20 digits.
const maxNameLen = wire.DefaultMaxJobLen - 21

// CheckJobName reports whether name may name a job (checkName), the
// controller's answer to a registration of it (a wire.CodeBadKey error),
// for a client to refuse it before asking.
func CheckJobName(name string) error { return checkName(name) }

// checkName accepts 1..maxNameLen bytes of letters, digits, '.', '_' and
// '-', the first a letter or a digit: names become path-like prefixes, log
// fields and command-line arguments (a job id starting with '-' reads as a
// flag to `pocket job deregister`), so nothing else.
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return wire.Errorf(wire.CodeBadKey, "job name must have 1 to %d bytes", maxNameLen)
	}
	if ch := name[0]; !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
		return wire.Errorf(wire.CodeBadKey, "job name %q: it must start with a letter or a digit", name)
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			return wire.Errorf(wire.CodeBadKey, "job name %q: only letters, digits, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

// RegisterJob sizes and places a new job and returns its map and token.
// It is the in-process form: the cluster's job limit applies, the
// per-client ones do not (see RegisterJobFrom).
func (c *Controller) RegisterJob(name string, h wire.JobHints) (*wire.PlacementMap, error) {
	return c.RegisterJobFrom("", &wire.JobRegister{Name: name, Hints: h})
}

// RegisterJobFrom registers a job for the client (a peer key, see
// peerKey; "" for in-process callers), within the client's and the
// cluster's limits (limits.go). Its cost does not grow with the number of
// jobs: it grows with the number of nodes.
func (c *Controller) RegisterJobFrom(client string, req *wire.JobRegister) (m *wire.PlacementMap, err error) {
	return c.RegisterJobFor(client, "", req)
}

// RegisterJobFor is RegisterJobFrom for a client of tenant (TenantOf its
// certificate; "" without TLS): the job's run is recorded in, and its
// size without hints comes from, the tenant's profile of its name
// (tenant.go), and it counts against the tenant's limits, not the
// address's (limitKey).
func (c *Controller) RegisterJobFor(client, tenant string, req *wire.JobRegister) (*wire.PlacementMap, error) {
	return c.registerJob(newRegistrant(client, tenant, false), req)
}

// registrant is who registers a job: the client its limits count against
// (limitKey), its tenant, and the client its allotment quota counts
// against ("" for none: the operator's, over TLS, set the quotas and
// register the cluster's jobs).
type registrant struct {
	client, tenant, quota string
	gone                  func() bool // whether the client has left (peerGone); nil: never
}

func newRegistrant(peer, tenant string, operator bool) registrant {
	r := registrant{client: limitKey(peer, tenant), tenant: tenant}
	if !operator {
		r.quota = r.client
	}
	return r
}

func (c *Controller) registerJob(who registrant, req *wire.JobRegister) (m *wire.PlacementMap, err error) {
	defer func() { c.countRegistration(err) }()
	defer func() { err = privateTo(who, req, err) }()
	if err := checkName(req.Name); err != nil {
		return nil, err
	}
	// The decoder checks the hints; in-process callers skip it.
	if err := req.Hints.Check(); err != nil {
		return nil, err
	}
	if err := c.cfg.Policy.checkLambdas(req.Hints); err != nil {
		return nil, err
	}
	var res reserved // the need reserve held, and why the job may lack nodes
	c.mu.Lock()
	err = c.admitLocked(who.client, time.Now())
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := c.awaitRestored(who); err != nil {
		return nil, err
	}
	if a := c.scaler(); a != nil {
		// Refuses, before it starts any node, a job the cluster could not
		// serve at its maximum or its client's quota does not allow
		// (reserve.go).
		r, err := a.reserve(req.Name, who.quota, ProfileKey(who.tenant, req.Name), req.Hints)
		defer c.unpend(r.pend) // a registration refused later lets go of it here
		if err != nil {
			return nil, err
		}
		res = r
	}
	if err := c.stillWanted(who); err != nil {
		return nil, err
	}
	m, j, err := c.enterJob(who, req, res.pend)
	if err != nil {
		return nil, withStartFailures(err, res.failed)
	}
	// A registration whose write fails hands out no token, so it must
	// leave no job: the job is withdrawn before any other write can store
	// it, unless an earlier write already holds it (then it stands, and
	// so does the answer).
	err = c.save(func() {
		if !j.saved {
			c.withdrawJobLocked(j)
		}
	})
	if err != nil {
		c.mu.Lock()
		saved := j.saved && !j.revoked
		c.mu.Unlock()
		if !saved {
			return nil, err
		}
	}
	m.Note = joinNotes(m.Note, res.note(), c.overAllottedNote(j, m.Sized, who.tenant == ""))
	return m, nil
}

// privateTo is a registration's error as who may read it: a tenant's
// "no space" names its need and no figure of the cluster's, nor does its
// refusal at MaxJobs. The sizing's and the autoscaler's refusals name the
// largest tier's spare bytes, exactly: a hostile trial's tenant followed
// between its registrations, to the byte, what other tenants stored and
// were allotted; the MaxJobs refusal told it how many jobs the others
// held. The operator reads the figures in the status.
func privateTo(who registrant, req *wire.JobRegister, err error) error {
	switch {
	case who.tenant == "":
		return err
	case errors.Is(err, wire.ErrNoSpace):
		return noSpaceTenant(Need{Bytes: req.Hints.CapacityBytes, LatencySensitive: req.Hints.LatencySensitive, Source: SizeHints})
	case errors.Is(err, wire.ErrLimit) && strings.HasPrefix(wire.ErrorOf(err).Msg, clusterFull):
		return wire.Errorf(wire.CodeLimit, clusterFull+"as many jobs as it takes (MaxJobs, --max-jobs): retry once some have ended")
	}
	return err
}

// overAllottedNote is a registration's note when the allotments on job
// j's nodes, its own (above 0) included, exceed those nodes' bandwidth: the
// controller reserves a hint as asked, so the jobs there may get less
// than allotted. Only pocket job register warned of it before, by a check
// of its own that needs the operator's certificate: a new user's Python
// job asking 1,000 lambdas (600,000 Mb/s) of a 24,000 Mb/s cluster was
// registered without a word. "" when they fit. sized is where the job's
// size came from, which the note names. Without figures (a tenant's
// registration) the note weighs the job's own allotment alone: whether
// others' allotments with it passed the bandwidth was a yes or no a
// tenant bisected, registering and ending jobs of a changing hint, to
// read another tenant's allotment exactly (a hostile trial: 15
// registrations).
func (c *Controller) overAllottedNote(j *job, sized wire.SizedFrom, figures bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var alloc, bw float64
	for _, mn := range j.nodes {
		n := c.nodes[mn.Addr]
		if n == nil {
			continue
		}
		bw += c.nodeMbps(n)
		if l := c.loads[mn.Addr]; l != nil && figures {
			alloc += l.mbps
		}
	}
	if !figures {
		alloc = j.allocMbps
	}
	if bw <= 0 || j.allocMbps <= 0 || alloc <= bw*(1+1e-9) {
		return "" // a job allotted no bandwidth gets no less of it
	}
	// Only a hinted job's allotment is the user's to lower; before, the
	// note blamed a hint for jobs sized by default or from their profile,
	// and then said "its profile, else the default" of either.
	why := "the job was sized by Pocket's default (no hints, no profile of its name); add nodes, or register it with hints"
	switch {
	case hinted(j.hints):
		why = "a hint is reserved as asked (add nodes, or ask for less)"
	case sized == wire.SizedProfile:
		why = "the job's size was learned from its name's profile; add nodes"
	}
	if !figures {
		return fmt.Sprintf("the job's allotment of %.0f Mb/s is more than its %d node(s) carry: it may get less than allotted; %s",
			j.allocMbps, len(j.nodes), why)
	}
	return fmt.Sprintf("the allotments on the job's %d node(s), its %.0f Mb/s included, come to %.0f of their %.0f Mb/s (%s): "+
		"the jobs there may get less than allotted; %s",
		len(j.nodes), j.allocMbps, alloc, bw, units.FormatFactor(alloc/bw), why)
}

// joinNotes joins a registration's notes, leaving out the empty ones.
func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "; ")
}

// startFailureNote is a registration's note (PlacementMap.Note) when
// nodes the autoscaler started for it did not come, but the job was
// entered all the same, over the nodes there are: it may run past the
// band there. Before, the reply did not say so (a hostile trial: 3,000 of
// a node's 1,000 Mb/s allotted after two such registrations, and only
// the log told why).
func startFailureNote(failed []error) string {
	return fmt.Sprintf("the autoscaler could not add %d node(s) it wanted for the job (%v): it is placed over the nodes there are, "+
		"which may carry less than it asked for; nothing starts them again", len(failed), failed[0])
}

// stillWanted refuses to enter a job whose token would reach nobody: its
// client left while nodes started for it (registrant.gone), or the
// controller is closing. Such a job was entered before; nobody could
// deregister it, and under a quota it held its tenant's allotment until
// its token expired (a hostile trial).
func (c *Controller) stillWanted(who registrant) error {
	if c.closing() {
		return wire.Errorf(wire.CodeClosed, "controller is shutting down: the job was not registered")
	}
	if who.gone != nil && who.gone() {
		return wire.Errorf(wire.CodeClosed, "the client left while nodes started for its job: the job was not registered")
	}
	return nil
}

// endUndelivered ends a job just registered whose reply, with its token,
// could not be written to its client (Controller.undoUndelivered): nobody
// could use or deregister it, and it held its nodes' capacity and its
// tenant's quota until its token expired. Before, a registration whose
// reply waited unread for evictMinIdle at MaxConns could be evicted with
// its job entered (a review of the eviction of unread replies).
func (c *Controller) endUndelivered(id string, tok []byte, why string) {
	ctx, cancel := c.closingContext()
	defer cancel()
	_, err := c.DeregisterJob(ctx, id, tok)
	c.cfg.Logger.Warn("controller: job ended: its registration's reply "+why+", so its client has no token",
		"job", id, "err", err)
}

// withStartFailures adds to a refused registration's error why nodes the
// autoscaler started for it did not come (the first failure, and how
// many), keeping its code. Before, such a registration failed "no space"
// and only the log said that no node could start (a spent --node-ports
// range, say).
func withStartFailures(err error, failed []error) error {
	if len(failed) == 0 {
		return err
	}
	msg := err.Error()
	var we *wire.Error
	if errors.As(err, &we) {
		msg = we.Msg
	}
	return wire.Errorf(wire.CodeOf(err), "%s (the autoscaler could not add %d node(s) it wanted for the job: %v)", msg, len(failed), failed[0])
}

// withdrawJobLocked takes out a job whose registration was not saved,
// undoing addJobLocked: its allotment, its client's slot, its place in
// the indexes and any trace of it in the profile book go. Its token was
// never handed out, so no tombstone or final map is kept and no run is
// recorded. Revisions only grow, and a node may have heard of the job
// from an ack in between, so its revocation is logged; its record is
// marked, so a write that reached the store after all (an etcd timeout
// can hide a commit) is deleted by the next one.
func (c *Controller) withdrawJobLocked(j *job) {
	c.unindexJobLocked(j)
	delete(c.moving, j)
	delete(c.prof.traces, j.id)
	j.revoked = true
	c.logLocked(chRevoke, j)
	c.dirtyJobLocked(j.id)
	c.cfg.Logger.Warn("controller: job withdrawn: its registration was not saved", "job", j.id)
}

// enterJob sizes, places and enters a job under c.mu. What hold held
// against the client's quota is let go first: the job's own allotment
// takes its place.
func (c *Controller) enterJob(who registrant, req *wire.JobRegister, hold *pend) (*wire.PlacementMap, *job, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unpendLocked(hold)
	if err := c.countLocked(who.client); err != nil { // others may have registered meanwhile
		return nil, nil, err
	}
	p, kind, source, err := c.sizeJobForLocked(c.prof, who.quota, ProfileKey(who.tenant, req.Name), req, who.tenant != "")
	if err != nil {
		return nil, nil, err
	}
	if source == SizeDefault || source == SizeProfile {
		p.mbps = c.allotLearnedLocked(p, kind)
	}
	id := c.newJobIDLocked(req.Name)
	now := time.Now()
	j := &job{id: id, name: req.Name, hints: req.Hints, tier: kind, epoch: 1, allocMbps: p.mbps, allocBytes: p.bytes,
		created: now, expires: c.expiryFor(now, req.TTL), client: who.client, tenant: who.tenant, heapIdx: -1, noQuota: who.quota == ""}
	c.addJobLocked(j, p.nodes)
	j.pub = c.mapLocked(j)
	c.cfg.Logger.Info("controller: job registered", "job", id, "nodes", len(p.nodes), "tier", kindName(kind),
		"mbps", math.Round(p.mbps), "bytes", p.bytes, "size", source, "bound", map[bool]string{true: "throughput", false: "capacity"}[p.throughput])
	// The reply alone says the allotment and its source; the map other
	// replies hand out (j.pub) does not.
	reply := *j.pub
	reply.AllocMbps, reply.AllocBytes, reply.Sized = j.allocMbps, j.allocBytes, sizedFrom(source)
	reply.Quota = c.quotaReplyLocked(who.quota)
	reply.Note = unreservedNote(p)
	return &reply, j, nil
}

// sizedFrom is the wire form of a size's source (SizeHints, ...).
func sizedFrom(source string) wire.SizedFrom {
	switch source {
	case SizeHints:
		return wire.SizedHints
	case SizeProfile:
		return wire.SizedProfile
	case SizeDefault:
		return wire.SizedDefault
	}
	return wire.SizedUnsaid
}

// expiryFor is when a token issued now with the requested lifetime ends
// (zero: never), after the defaults and the cap of Config.
func (c *Controller) expiryFor(now time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		ttl = c.cfg.TokenTTL
	}
	if m := c.cfg.MaxTokenTTL; m > 0 && (ttl <= 0 || ttl > m) {
		ttl = m
	}
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(ttl).Truncate(time.Millisecond)
}

// addJobLocked enters a new job in every index and logs it (changes.go);
// its token carries the revision that did.
func (c *Controller) addJobLocked(j *job, nodes []wire.MapNode) {
	j.gen = c.logLocked(chAdd, j)
	j.token = token.SignJob(c.cfg.Secret, []byte(j.id), token.Claims{Gen: j.gen, Expires: j.expires})
	c.jobs[j.id] = j
	c.order.add(j)
	c.placeLocked(j, nodes)
	c.expiry.add(j)
	c.holdLocked(j, 1)
}

// unindexJobLocked takes a job out of the job table, the registration
// order, its nodes' allotments, the lost-node index and the expiry queue,
// and gives its client's slot back: what entering it added.
func (c *Controller) unindexJobLocked(j *job) {
	delete(c.jobs, j.id)
	c.order.remove(j)
	c.placeLocked(j, nil)
	c.unindexLostLocked(j)
	c.expiry.remove(j)
	c.holdLocked(j, -1)
}

// removeJobLocked takes a job out of every index, logs its revocation and
// returns the nodes that held its data.
func (c *Controller) removeJobLocked(j *job) []wire.MapNode {
	targets := c.mapLocked(j).Nodes
	// The final map kept for its persisted values is the one clients were
	// handed last, as the credential Deregister's caller takes (ended.go).
	final := c.publishedLocked(j)
	if final == nil {
		final = c.mapLocked(j)
	}
	c.unindexJobLocked(j)
	j.revoked = true
	rev := c.logLocked(chRevoke, j)
	now := time.Now()
	c.tombs.add(&tomb{id: j.id, name: j.name, gen: j.gen, at: now})
	c.endJobLocked(j, final, rev, now)
	c.prof.end(j, now)
	c.dirtyJobLocked(j.id)
	return targets
}

// bumpLocked gives a job's map a new epoch and logs it for its nodes.
func (c *Controller) bumpLocked(j *job) {
	c.dirtyJobLocked(j.id)
	j.epoch++
	j.epochRev, j.bumped = c.logLocked(chEpoch, j), time.Now()
	c.noteLosingLocked(j)
	c.liftQuotaLocked(j)
}

func (n *node) tier(kind uint8) *wire.TierStat {
	for i := range n.tiers {
		if n.tiers[i].Kind == kind {
			return &n.tiers[i]
		}
	}
	return nil
}

// deviceFailing reports whether the node's last heartbeat said its tier of
// kind has a failing device (wire.MetricDeviceFailingPrefix): no job is
// placed there while it does. Before, a hostile trial's node whose NVMe
// device had turned read-only (every put failed) or shrunk (741 of 1,696
// gets failed) kept getting new jobs.
func (n *node) deviceFailing(kind uint8) bool {
	name := wire.MetricDeviceFailingPrefix + wire.Tier(kind).String()
	for _, m := range n.metrics {
		if m.Name == name && m.Value >= 1 {
			return true
		}
	}
	return false
}

// candidatesLocked lists the active nodes with a tier of kind and their
// spare resources (step 3 of the policy).
func (c *Controller) candidatesLocked(kind uint8) []candidate {
	return c.candidatesUnderLocked(kind, 1)
}

// candidatesUnderLocked is candidatesLocked with each node's spare
// bandwidth and bytes counted under high (a fraction of its Mb/s and of
// its tier's capacity): a new job is placed with the band the autoscaler
// keeps (bandHigh), as reserve counts the nodes it starts for the job, so
// that they are all used.
func (c *Controller) candidatesUnderLocked(kind uint8, high float64) []candidate {
	var out []candidate
	for addr, n := range c.nodes {
		t := n.tier(kind)
		if n.state != wire.NodeActive || t == nil || n.deviceFailing(kind) {
			continue
		}
		mbps := t.Mbps
		if mbps <= 0 {
			mbps = c.cfg.Policy.NodeMbps
		}
		var allocMbps float64
		if l := c.loads[addr]; l != nil {
			allocMbps = l.mbps
		}
		busy := max(n.rx, n.tx, allocMbps)
		used := c.heldBytesLocked(n, t)
		limit := t.CapacityBytes
		if high < 1 {
			limit = int64(high * float64(t.CapacityBytes))
		}
		out = append(out, candidate{addr: addr, spareMbps: max(0, high*mbps-busy), spareBytes: max(0, limit-used),
			wholeBytes: max(0, t.CapacityBytes-used), unheard: n.unheard})
	}
	return out
}

// totalBytes is the node's allotted bytes over all tiers, as the sizing
// has always counted them.
func (l *nodeLoad) totalBytes() int64 {
	var b int64
	for _, v := range l.bytes {
		b += v
	}
	return b
}

// allocationsLocked returns the jobs' allotments per node, by weight.
func (c *Controller) allocationsLocked() (map[string]float64, map[string]int64) {
	mbps, bytes := make(map[string]float64, len(c.loads)), make(map[string]int64, len(c.loads))
	for addr, l := range c.loads {
		mbps[addr] = l.mbps
		bytes[addr] = l.totalBytes()
	}
	return mbps, bytes
}

// mapLocked copies a job's map with each node's current state.
func (c *Controller) mapLocked(j *job) *wire.PlacementMap {
	m := &wire.PlacementMap{Job: j.id, Tier: j.tier, Epoch: j.epoch, Token: j.token, Expires: j.expires,
		Nodes: append([]wire.MapNode(nil), j.nodes...), Lost: append([]wire.LostNode(nil), j.lost...)}
	for i := range m.Nodes {
		role := m.Nodes[i].State
		m.Nodes[i].State = wire.NodeDead
		if n, ok := c.nodes[m.Nodes[i].Addr]; ok {
			m.Nodes[i].State = n.state
			if n.state == wire.NodeActive && (role == wire.NodeJoining || role == wire.NodeDraining) {
				m.Nodes[i].State = role // joining or leaving this job's map only
			}
		}
	}
	return m
}

// lookupLocked returns a job after checking its token: a valid token of
// the job's own registration, not expired.
func (c *Controller) lookupLocked(id string, tok []byte) (*job, error) {
	// The token is checked first: a caller without one for id learns
	// nothing of whether id is registered (ids are a name and a counter,
	// easy to guess).
	claims, ok := token.ParseJob(c.cfg.Secret, []byte(id), tok)
	if !ok {
		return nil, badToken(id)
	}
	j, ok := c.jobs[id]
	if !ok {
		return nil, c.endedJobErrLocked(id, claims)
	}
	if claims.Gen != j.gen {
		return nil, badToken(id)
	}
	if claims.Expired(time.Now()) {
		return nil, wire.Errorf(wire.CodeRevoked, "job %s: token expired at %s", id, claims.Expires.UTC().Format(time.RFC3339))
	}
	return j, nil
}

// endedJobErrLocked is the refusal of a token the secret verifies for id, a job
// this cluster registered, that is no longer live and whose final map is
// not kept (endedJob.errEnded says more when it is): CodeUnknownJob, as
// before, saying how the job may have ended. Before, it read "job ID is
// not registered", and a new user could not tell a job whose token had
// expired seconds before from a mistyped id.
func (c *Controller) endedJobErrLocked(id string, claims token.Claims) error {
	how, dropped := "was deregistered", "Its data was dropped"
	switch {
	case claims.Expired(time.Now()):
		how = "ended when its token expired at " + claims.Expires.UTC().Format(time.RFC3339)
	case c.cfg.Store == nil:
		// The nodes keep a job's data through a restart of a controller
		// without state for its orphan grace (a hostile trial read "was
		// dropped" of values the nodes still held).
		how = "was deregistered, or this controller, which keeps no state, restarted since it was registered"
		dropped = "Its data was dropped, or, if the controller restarted, the nodes drop it once they have reported it for the controller's --orphan-grace"
	}
	return wire.Errorf(wire.CodeUnknownJob, "job %s is not registered: it %s. %s, and its final map is "+
		"no longer kept (it persisted nothing, its persisted values were all deleted since, or the bound of kept final maps, "+
		"MaxEndedJobs, pushed it out: the controller's log says which), "+
		"so no credential can be made "+
		"for it now; one printed before still reads what it put with persist-after-job", id, how, dropped)
}

// badToken is the refusal of a token that does not grant job id, the same
// whether or not id is registered.
func badToken(id string) error {
	return wire.Errorf(wire.CodeBadToken, "token does not grant job %s", id)
}

// GetMap returns a job's current map; tok must be the job's token.
func (c *Controller) GetMap(id string, tok []byte) (*wire.PlacementMap, error) {
	m, err := c.publishedMap(id, tok)
	if err != nil && !errors.Is(err, wire.ErrUnknownJob) {
		return nil, err
	}
	// The epoch may come from a change not saved yet (a node died), and so
	// may the job's absence (its deregistration or expiry, whose write
	// failed: a restart would have it live), which tells the client the
	// job ended. Both mark the job's record (dirtyJobLocked).
	if err := c.flushJob(id); err != nil {
		return nil, err
	}
	return m, err
}

// DeregisterJob forgets a job, revokes its token (every node refuses it
// from its next heartbeat on, and drops what the job still holds) and has
// each of its live nodes drop the job's values now (except persistent
// ones). tok must be the job's token. The job is forgotten even when some
// nodes cannot be reached; the result counts them in Failed and names them
// in Message.
func (c *Controller) DeregisterJob(ctx context.Context, id string, tok []byte) (*wire.DropResult, error) {
	c.mu.Lock()
	j, err := c.lookupLocked(id, tok)
	if err != nil {
		if e := c.endedLocked(id, tok); e != nil && errors.Is(err, wire.ErrUnknownJob) {
			err = e.errEnded()
		}
		c.mu.Unlock()
		if errors.Is(err, wire.ErrUnknownJob) {
			// The job's end (an earlier deregistration answered "state not
			// saved", an expiry) is answered once it is saved.
			if ferr := c.flush(); ferr != nil {
				return nil, ferr
			}
		}
		return nil, err
	}
	return c.deregisterUnlock(ctx, j, "its client")
}

// EndJob is DeregisterJob by the operator's authority, without the job's
// token: for a job whose token its client lost, whose allotment would
// otherwise stay held until the token expires, or for good without a
// lifetime. The caller proved the cluster secret (endJobRequest). Its
// persist-after-job values stay, as after a deregistration. A job not
// live answers CodeUnknownJob, saying whether it ended already.
func (c *Controller) EndJob(ctx context.Context, id string) (*wire.DropResult, error) {
	c.mu.Lock()
	j, ok := c.jobs[id]
	if !ok {
		ended := c.ended.ids[id] != nil || c.tombs.ids[id] != nil
		c.mu.Unlock()
		// The job's end may not be saved yet (see DeregisterJob).
		if err := c.flush(); err != nil {
			return nil, err
		}
		if ended {
			return nil, wire.Errorf(wire.CodeUnknownJob, "job %s has ended already", id)
		}
		return nil, wire.Errorf(wire.CodeUnknownJob, "no job %s is registered", id)
	}
	return c.deregisterUnlock(ctx, j, "the operator")
}

// deregisterUnlock forgets live job j, revokes its token and has its
// nodes drop its values (DeregisterJob), by the authority of who (for the
// log). It is called with c.mu held and releases it.
func (c *Controller) deregisterUnlock(ctx context.Context, j *job, who string) (*wire.DropResult, error) {
	id, tier := j.id, j.tier
	targets := c.removeJobLocked(j)
	c.mu.Unlock()
	if err := c.flush(); err != nil {
		// Forgotten here, not in the store: after a restart the job is
		// back and its client may deregister it again.
		return nil, err
	}
	res, mayKeep := c.dropAll(ctx, id, tier, targets)
	c.cfg.Logger.Info("controller: job deregistered", "job", id, "by", who, "nodes", res.Nodes, "values", res.Values,
		"bytes", res.Bytes, "failed", res.Failed)
	c.sweepAfterDrop(id, res, mayKeep, targets)
	return res, nil
}

// expireJobs deregisters the jobs whose tokens have expired: their tokens
// are revoked and their data dropped as if their clients had deregistered.
func (c *Controller) expireJobs(now time.Time) {
	for c.expireBatch(now) {
	}
}

// expireBatchLen is how many jobs expireBatch ends under one hold of the
// lock: a hostile re-check's 81,856 jobs registered with one TTL expired
// in one hold of over 30 s, and every node's heartbeat, waiting for the
// lock, timed out until their leases lapsed.
const expireBatchLen = 512

// expireBatch ends up to expireBatchLen jobs whose tokens have expired by
// now, and reports whether more may be due.
func (c *Controller) expireBatch(now time.Time) bool {
	c.mu.Lock()
	var gone []*job
	var targets [][]wire.MapNode
	c.endingMany = true
	for len(gone) < expireBatchLen {
		j := c.expiry.peek()
		if j == nil || now.Before(j.expires) {
			break
		}
		targets = append(targets, c.removeJobLocked(j))
		gone = append(gone, j)
	}
	c.endingMany = false
	c.fitEndedLocked()
	if len(gone) == 0 {
		c.mu.Unlock()
		return false
	}
	// The nodes drop the data anyway when the revocation reaches them; the
	// drop orders only make it sooner, so they do not hold up the sweeper.
	// They go once the expiries are saved (afterSave): a controller
	// restarted on a store that still holds a job live must not find its
	// data dropped.
	c.afterSaveLocked(func() {
		c.srv.goroutine(func() {
			// One batch's drop orders at a time, as when one goroutine
			// sent every expired job's.
			c.expiryDrops.Lock()
			defer c.expiryDrops.Unlock()
			for i, j := range gone {
				ctx, cancel := c.closingContext()
				res, mayKeep := c.dropAll(ctx, j.id, j.tier, targets[i])
				cancel()
				c.cfg.Logger.Info("controller: job expired", "job", j.id, "expires", j.expires.UTC().Format(time.RFC3339),
					"nodes", res.Nodes, "values", res.Values, "failed", res.Failed)
				c.sweepAfterDrop(j.id, res, mayKeep, targets[i])
			}
		})
	})
	c.mu.Unlock()
	return len(gone) == expireBatchLen
}
