package dataplane

import (
	"context"
	"crypto/subtle"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/internal/token"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/wire"
)

// The job table: what a node knows of each job, learned from the
// controller only (package controller, changes.go, describes the protocol).
//
// Every live job of the cluster has an entry, with its gen and expiry (the
// claims of its token), its map epoch, and whether this node is out of the
// job's map (a controller from before wire.JobEpoch.Out sends epoch 0 for
// a node outside the map instead). The table is at a controller revision
// (since): every job registered at or before it is in the table or gone.
// So, on a node that has synced with its controller:
//
//   - a request for a job with no entry is refused (CodeRevoked);
//   - before that first sync, a node that has a controller (Node.AwaitSync,
//     which the agent calls) refuses every job it has no entry for as if
//     the client's map were stale (the node may have restarted at an
//     address a client's old map names, and cannot tell a job it is out
//     of from one it is in), except one registered after the revision of
//     the snapshot under way (whose first page the registration's ack
//     brings);
//   - a token whose job has no entry passes the guard only when its gen is
//     after the table's revision (the job is newer than the node's last
//     word from the controller, at most a heartbeat old); the job gets a
//     pending entry, which the next heartbeats confirm or revoke;
//   - a client's epoch is refused when older than the entry's (epoch 0
//     included), and never stored: a client cannot move a node's epoch;
//     except that a request for one key at the epoch of the map handed
//     out before the entry's, for a key this node owns under both, is
//     taken while the controller says so (keptKeys, kept.go);
//   - a client's epoch newer than the entry's is refused too, naming the
//     entry's (CodeStaleEpoch, an epoch older than the client's, which the
//     SDKs take as "the node is behind" and send the same map again after
//     a pause), and the node's agent is woken to heartbeat at once
//     (SyncWanted), so the node learns the new epoch within a round trip
//     to the controller. The controller hands a map out only once its
//     nodes have confirmed its epoch (controller/elastic.go), so an honest
//     client meets this rarely (a late heartbeat past the controller's
//     confirm wait); taking the epoch on the client's word instead let
//     any holder of a valid token write to a node outside its job's map
//     (one serving only other jobs) by claiming a future epoch. A
//     chunked put's confirm and a version's drop are taken at any epoch
//     not older than the entry's (they touch only what the writer put
//     there, see opConfirm);
//   - a pending entry (a job the controller has not listed yet) has no
//     epoch and takes any read: its requests wake the agent too, so the
//     node learns within one early heartbeat (milliseconds) whether it is
//     in the job's map. Its puts are refused as by a node behind
//     (errPendingStore) until the controller has listed the job, for up
//     to pendingStoreHold: a value stored on a node outside the job's map
//     would be where no reader looks, counted nowhere and moved by no
//     drain (before, only persisted puts were refused so; a hostile
//     trial's fresh jobs filled a node outside their maps);
//   - on a node whose lease has lapsed (lease.go) every live job's
//     request is refused as if the node were behind (errLapsed: a stale
//     epoch naming 0), and the agent is woken;
//   - on a node out of the job's map, the entry's epoch too is refused: a
//     client routing by that map or an older one has no business here (it
//     holds a map from before the node left, whose writes would land where
//     no reader looks, as after the node restarted with an empty table).
//
// A revoked job (the controller says so, or the controller's drop order
// arrives) is marked first, so every request of it is refused from then
// on, then its data is dropped (values put with persist-after-job stay).
// While the drop runs (it may take seconds: hundreds of thousands of
// temporary values) the job is dropping: its puts are refused as a
// revoked job's, and its reads, listings and deletes answer CodeBusy
// (errDropping: retry), never CodeRevoked, which a deregistered job's
// SDK takes for "this node holds none of the job's values" while this
// node may still hold persisted ones. When the drop ends the job is
// revoked (nothing remains) or retired (persistent values remain): every
// path that marks a job dropping drops its data and then calls dropped.
// The drop first waits for the job's puts that passed their check at
// commit before the revocation (awaitCommits), so what they store is
// dropped with the rest or kept with the persistent values. A revoked
// entry stays for the node's RevokeLinger (wire.RevokeLinger), after
// which what a put that was already past the check may have stored is
// dropped too (persistent values as well when the order dropped every
// value: dropAll), and the entry goes. A retired job's token may still read its persistent values
// (TestClusterPersistAfterJob in package pocket), and store none: a
// retired job found above what it held (a commit that outlasted the
// drop's wait) loses what is not persistent, and keeps the persistent
// values, acknowledged as they were (Node.sweepRevoked).
//
// A job that may hold data here and that a snapshot from the controller
// does not list is orphaned, not revoked: its requests are refused
// (errJobGone) but its data stays, and every heartbeat reports it as held
// (orphans, held.go) until the controller orders it dropped (the ack's
// Drop: after the controller's orphan grace, or at once for a job it
// revoked) or lists it again with the same gen (a controller restarted on
// its own state after one that had lost it), which makes it live again.
//
// Reads are on every request, from every loop, without a lock: the table
// is jobShards copy-on-write maps of entries whose fields are atomics.
// Writers (the agent applying a heartbeat ack, the guard adding a pending
// job, a drop order) serialize on mu; an ack's changes copy each touched
// shard once, and changes to existing entries (epochs, revocation) are
// made in place, so a heartbeat costs what it changes, not the table's
// size.

const jobShards = 64

// retiredChecks is how many retired jobs each ack checks.
const retiredChecks = 16

// Entry states.
const (
	stateLive     uint32 = iota // listed by the controller
	statePending                // a valid token the controller has not listed yet
	stateRevoked                // deregistered or expired: refused
	stateRetired                // revoked, persistent values remain: readable
	stateOrphan                 // unknown to the controller, data kept: refused
	stateDropping               // revoked, its data being dropped: busy, then revoked or retired
)

// jobEntry is one job. The atomics are read by the loops; the rest is
// touched under jobTable.mu only.
type jobEntry struct {
	epoch   atomic.Uint64 // the job's map epoch, from the controller; 0: unknown
	out     atomic.Bool   // this node is not in the job's map at epoch
	gen     atomic.Uint64 // the token's gen
	expires atomic.Int64  // Unix ms; 0: never
	state   atomic.Uint32
	// expiredEnd: the job was revoked with its token expired (expires
	// passed): it ended by expiry, and its refusals say so (endedErr).
	expiredEnd atomic.Bool
	used       atomic.Bool                     // a request of the job was admitted here
	tok        atomic.Pointer[[token.Len]byte] // a token that passed the full check
	traffic    atomic.Pointer[jobTraffic]      // its value bytes here (jobtraffic.go); nil until counted
	kept       atomic.Pointer[keptKeys]        // the older map's requests it still takes (keptKeys); nil: none
	// owner is who registered the job (wire.JobEpoch.Owner), prefixed
	// ownerPrefix: what its tokens' proven connections count against
	// (proveFor); nil: not said.
	owner atomic.Pointer[[]byte]
	// atEpoch counts its puts past their check at commit (stored) whose
	// commit has not ended, by the map epoch they were admitted at,
	// modulo epochSlots (admittedAt): a drop waits for them all
	// (awaitCommits, inCommit), a move by a newer map for those of older
	// epochs (Node.AwaitMoveCommits) while the new map's puts go on.
	atEpoch [epochSlots]atomic.Int32
	// unreported is what the node's own drops of the job, once revoked,
	// freed since the controller's last drop order (Node.dropRevokedData),
	// under dropMu.
	dropMu     sync.Mutex
	unreported Dropped

	// waiters are the connections that showed a valid token while the
	// job was pending, to prove for its owner once the table names it
	// (owner.go: awaitOwner); under waitMu.
	waitMu  sync.Mutex
	waiters []*netio.Conn
	waited  bool // the owner came: no more waiters are kept

	pendingAt time.Time // when it was entered pending (addPending)
	seen      uint64    // the snapshot that last listed it
	revokedAt time.Time // when it was revoked
	held      int64     // retired: bytes it held once dropped
	// dropAll: an order revoked it to drop every value, persistent ones
	// too (a node the job lost: what it holds of the job is stale), so
	// the drop again past the linger drops them too.
	dropAll bool
	// tiers are the tiers its puts may go to (wire.JobEpoch.Tiers, bit
	// 1<<tier; 0: any): admit refuses others (wrongTier). Last, among
	// the cold fields, so the hot ones keep their places.
	tiers atomic.Uint32
	// full: its client stores past its byte quota (wire.JobEpoch.OverQuota):
	// admit refuses its puts (overQuota).
	full atomic.Bool
	// maxBytes bounds its owner's jobs' bytes on this node, all tiers
	// (wire.JobEpoch.MaxBytes; 0: none): admit refuses a put past it
	// (errOverNodeQuota).
	maxBytes atomic.Int64
}

// jobTable is a node's job table.
type jobTable struct {
	seed   maphash.Seed
	shards [jobShards]atomic.Pointer[map[string]*jobEntry]
	synced atomic.Bool   // a controller's snapshot was applied
	await  atomic.Bool   // refuse every job until synced (a node with a controller)
	since  atomic.Uint64 // the controller revision the table is at

	wake  chan struct{} // one buffered wake-up for the agent (SyncWanted)
	lease nodeLease     // the node's lease (lease.go)

	mu        sync.Mutex // serializes writers; guards the fields below
	snapRev   uint64     // a snapshot being received: its revision
	snapAfter uint64     // ... and the gen of the last job received
	snapID    uint64     // count of snapshots started
	pending   map[string]*jobEntry
	revoked   map[string]*jobEntry // revoked or retired, not yet removed
	retiredAt []string             // retired jobs, checked in turn
	orphans   map[string]*jobEntry // orphaned jobs (see above)
	// learned lists the jobs whose owner the table named or changed
	// since takeLearned (owner.go: Node.ownerLearned).
	learned []string

	// linger is how long a revoked entry stays (refusing) before its job
	// is dropped a second time and the entry removed
	// (NodeConfig.RevokeLinger).
	linger time.Duration

	// Per-job traffic (jobtraffic.go): the slots per job (the node's
	// event loops, set before it serves), and the jobs counted so far.
	loops   int
	trafMu  sync.Mutex // guards counted
	counted []*jobTraffic
}

func (j *jobTable) init() {
	j.linger = wire.RevokeLinger
	j.seed = maphash.MakeSeed()
	j.wake = make(chan struct{}, 1)
	j.lease.base = time.Now()
	for i := range j.shards {
		m := map[string]*jobEntry{}
		j.shards[i].Store(&m)
	}
	j.pending = map[string]*jobEntry{}
	j.revoked = map[string]*jobEntry{}
	j.orphans = map[string]*jobEntry{}
}

func (j *jobTable) shard(job []byte) *atomic.Pointer[map[string]*jobEntry] {
	return &j.shards[maphash.Bytes(j.seed, job)%jobShards]
}

// lookup returns a job's entry, nil when it has none. It does not allocate.
func (j *jobTable) lookup(job []byte) *jobEntry {
	return (*j.shard(job).Load())[string(job)]
}

// entryCache is one connection's last lookup: the job's name, the shard
// it hashed to, the shard's map then, and the entry (nil: none). The
// shards' maps are never changed once published (tableEdit copies), so
// while the shard still holds that map the entry is what lookup would
// return. A connection's requests name one job, as a rule: hashing its
// name and reading the map for each was about 140 of a pipelined get's
// 3,500 user-space instructions (callgrind).
type entryCache struct {
	name  []byte
	shard *atomic.Pointer[map[string]*jobEntry]
	m     *map[string]*jobEntry
	e     *jobEntry
}

// lookupVia is lookup through cache c, which it updates.
func (j *jobTable) lookupVia(c *entryCache, job []byte) *jobEntry {
	if c.shard != nil && string(c.name) == string(job) && c.shard.Load() == c.m {
		return c.e
	}
	sh := j.shard(job)
	m := sh.Load()
	e := (*m)[string(job)]
	c.name, c.shard, c.m, c.e = append(c.name[:0], job...), sh, m, e
	return e
}

// Errors of the per-request check. Static, so refusing allocates nothing.
var (
	errRevoked = &wire.Error{Code: wire.CodeRevoked, Msg: "the job's token was revoked: the job was deregistered, or its token expired and the controller dropped it"}
	errRetired = &wire.Error{Code: wire.CodeRevoked, Msg: "the job was deregistered: its persist-after-job values are read-only (get, list, delete)"}
	// errDropping is busy, not revoked: the node may hold persisted
	// values of the job, readable once the drop ends.
	errDropping = &wire.Error{Code: wire.CodeBusy,
		Msg: "the job was deregistered and its values are being dropped; its persist-after-job values are readable when that ends: retry"}
	errExpired = &wire.Error{Code: wire.CodeRevoked, Msg: "the job's token has expired"}
	errJobGone = &wire.Error{Code: wire.CodeRevoked,
		Msg: "the job is not live on this cluster (deregistered, expired, or registered with an earlier controller)"}
	errUnsynced = &wire.Error{Code: wire.CodeStaleEpoch,
		Msg: "the node has not synced its job table with the controller yet; fetch the job's map again"}
)

// expiredErr is the refusal of a job whose token expired at ms (Unix ms),
// naming the time (errExpired when ms is 0). It allocates: expiry is rare.
func expiredErr(ms int64) error {
	if ms <= 0 {
		return errExpired
	}
	return &wire.Error{Code: wire.CodeRevoked, Msg: expiredText(ms)}
}

// expiredText is "the job's token expired at TIME" (RFC 3339, UTC).
func expiredText(ms int64) string {
	return "the job's token expired at " + time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// endedErr is err, the refusal of a revoked, retired or dropping job
// (errRevoked, errRetired, errDropping), or, when the job ended by its
// token's expiry (expiredEnd), the same code saying so, with the time:
// those say "deregistered", which the job was not.
func (e *jobEntry) endedErr(err *wire.Error) error {
	if !e.expiredEnd.Load() {
		return err
	}
	var tail string
	switch err {
	case errRetired:
		tail = "the job ended; its persist-after-job values are read-only (get, list, delete)"
	case errDropping:
		tail = "the job ended and its values are being dropped; its persist-after-job values are readable when that ends: retry"
	default:
		tail = "the job ended and its values were dropped (but those put with persist-after-job, where a node keeps them)"
	}
	return &wire.Error{Code: err.Code, Msg: expiredText(e.expires.Load()) + ": " + tail}
}

// stored reports whether a put admitted for the job may still be
// published: false once the job is revoked, dropping, retired or
// orphaned (the put began before the revocation and must not add to what
// the job keeps).
func (e *jobEntry) stored() bool {
	if e == nil {
		return true
	}
	switch e.state.Load() {
	case stateRevoked, stateDropping, stateRetired, stateOrphan:
		return false
	}
	return true
}

// retired reports whether the job is retired here.
func (j *jobTable) retired(job []byte) bool {
	e := j.lookup(job)
	return e != nil && e.state.Load() == stateRetired
}

// opClass says what a request does to a job's values, for the checks of
// revoked and retired jobs.
type opClass uint8

const (
	opRead   opClass = iota // get, stat, list, usage
	opRemove                // delete, delete-after-read
	opStore                 // put
	// opStorePersist is a put of a value that outlives its job
	// (wire.FlagPersist): a store that a pending entry refuses.
	opStorePersist
	// A chunked put's confirm and a version's drop go where the writer
	// put the chunks, which may be a node that has left the job's map
	// since (it keeps a leased chunk until confirmed or dropped): a store
	// and a remove that a node out of the map takes at any epoch.
	opConfirm
	opDropVersion
)

// check runs on every request that may store: it refuses a revoked,
// expired or (on a synced node) unknown job, an epoch older than the one
// the controller gave (or equal to it, on a node out of the job's map),
// and a newer one, which is not learned but wakes the agent (SyncWanted).
func (j *jobTable) check(job []byte, epoch uint64) error { return j.checkOp(job, epoch, opStore) }

// checkOp checks a request of class op. A revoked job's requests are all
// refused. A retired job (revoked, its persist-after-job values remain)
// may read and remove them, never store: its values are read-only. A
// dropping job's stores are refused as a revoked job's, its other
// requests answer busy until the drop ends (errDropping).
func (j *jobTable) checkOp(job []byte, epoch uint64, op opClass) error {
	_, _, err := j.checkFound(j.lookup(job), epoch, op, nil)
	return err
}

// checkEntryVia is checkOp looking the job up through cache c
// (lookupVia), returning the job's entry (nil when the table has none,
// for a put to check again at commit: stored) and the entry's map epoch
// the request was checked against (0: none, any taken).
// key is the request's one key (a get, stat, put, delete or
// delete-after-read), nil for a request of many (a listing, a usage, a
// prefix delete): a request for one key is also taken at the epoch of the
// map handed out before the entry's when the key is the node's under
// both (keptKeys).
func (j *jobTable) checkEntryVia(c *entryCache, job []byte, epoch uint64, op opClass, key []byte) (*jobEntry, uint64, error) {
	return j.checkFound(j.lookupVia(c, job), epoch, op, key)
}

// checkFound is checkEntryVia of the job whose entry is e (nil: none).
func (j *jobTable) checkFound(e *jobEntry, epoch uint64, op opClass, key []byte) (*jobEntry, uint64, error) {
	if e == nil {
		switch {
		case j.synced.Load():
			return e, 0, errJobGone
		case j.await.Load():
			return e, 0, errUnsynced
		}
		return e, 0, nil
	}
	// used before state: a revocation stores the state, then reads used,
	// so either this request sees the revocation or the revocation sees
	// that the job may have data here.
	if !e.used.Load() {
		e.used.Store(true)
	}
	switch e.state.Load() {
	case stateRevoked:
		return e, 0, e.endedErr(errRevoked)
	case stateOrphan:
		return e, 0, errJobGone
	case stateDropping:
		if op == opStore || op == opStorePersist || op == opConfirm {
			return e, 0, e.endedErr(errRevoked)
		}
		return e, 0, e.endedErr(errDropping)
	case stateRetired:
		if op == opStore || op == opStorePersist || op == opConfirm {
			return e, 0, e.endedErr(errRetired)
		}
		return e, 0, nil
	}
	if j.lease.lapsed() {
		j.wantSync()
		return e, 0, errLapsed
	}
	if (op == opStore || op == opStorePersist) && e.state.Load() == statePending && (j.synced.Load() || j.await.Load()) &&
		time.Since(e.pendingAt) < pendingStoreHold {
		// A job the controller has not listed here yet may not be in
		// this node's map: a value stored here would stay where the
		// job's map does not look, counted nowhere, and a drain of the
		// node would not move it. A hostile trial's fresh jobs put 96
		// MiB so on a node serving another tenant's job alone, whose
		// puts then failed "no space", and a scale-in retired a node as
		// having "moved all its data" with 80 MiB of them on it (before,
		// only persisted values were held back here: one left 28.6 MiB
		// on a node outside its new job's map, holding its drains for
		// good). The node asks now (addPending woke the agent) and the
		// client sends it again after a pause, as to a node behind: a
		// new job's first puts on a node wait a heartbeat's round trip
		// to the controller and the client's pause. A node without a
		// controller (never synced, not awaiting) has no one to ask: it
		// takes them; so does one whose controller has not answered
		// within pendingStoreHold (cut off from it, the node serves
		// until its lease lapses: lease.go), as before.
		j.wantSync()
		return e, 0, errPendingStore
	}
	if exp := e.expires.Load(); exp != 0 && time.Now().UnixMilli() >= exp {
		return e, 0, expiredErr(exp)
	}
	cur := e.epoch.Load()
	return e, cur, j.checkEpoch(e, cur, epoch, op, key)
}

// checkEpoch checks a request's map epoch against the job's entry (see the
// table's doc): older (or equal, out of the map) is stale, unless the
// request is one the entry keeps taking (keptKeys: errKept, which the
// caller takes for a pass once the key holds no manifest); newer is the node
// behind, refused naming the entry's epoch, and the agent is woken to
// catch up. cur is the entry's epoch, loaded once by the caller, which
// keeps it for the put's check at commit (putRef.epoch). An entry without
// an epoch (pending) takes any.
func (j *jobTable) checkEpoch(e *jobEntry, cur, epoch uint64, op opClass, key []byte) error {
	if cur == 0 {
		return nil
	}
	// A chunked put's confirm and a version's drop go where the writer
	// put the chunks, in the map or not (opConfirm).
	version := op == opConfirm || op == opDropVersion
	out := e.out.Load() && !version
	switch {
	case epoch == cur && !out, epoch > cur && version:
		return nil
	case epoch > cur:
		j.wantSync()
		return &wire.Error{Code: wire.CodeStaleEpoch, Epoch: cur,
			Msg: "this node has not heard of the job's map epoch yet (it is behind its controller, and catching up); send the request again shortly"}
	case out:
		return &wire.Error{Code: wire.CodeStaleEpoch, Epoch: cur,
			Msg: "this node is not in the job's placement map; fetch the job's map again"}
	case e.kept.Load() != nil && e.keeps(cur, epoch, op, key):
		return errKept
	}
	return &wire.Error{Code: wire.CodeStaleEpoch, Epoch: cur, Msg: "placement map is stale; fetch the job's map again"}
}

// pendingStoreHold is how long a pending entry refuses puts
// (errPendingStore): well past a heartbeat's round trip to a
// responsive controller (an early heartbeat; milliseconds), and within
// the SDKs' resends to a node behind (60, 120, 240 ms pauses, so the
// third goes 420 ms on).
const pendingStoreHold = 300 * time.Millisecond

// errPendingStore refuses a put of a job the node has not heard of from
// its controller yet (a pending entry): as a node behind (a stale epoch
// naming 0), which the SDKs send again shortly.
var errPendingStore = &wire.Error{Code: wire.CodeStaleEpoch,
	Msg: "this node has not heard of the job from its controller yet (it is asking now); send the request again shortly"}

// wantSync wakes the agent to heartbeat now (SyncWanted), without blocking:
// one wake-up waits at most, however many requests ask.
func (j *jobTable) wantSync() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// setEpoch stores the job's map epoch and whether this node is out of the
// map. A node joining the map stops being out before its epoch moves, and
// one leaving is out only after, so a loop reading the two in between
// never refuses a client of the map the node is in.
func (e *jobEntry) setEpoch(epoch uint64, out bool) {
	if !out {
		e.out.Store(false)
	}
	e.epoch.Store(epoch)
	if out {
		e.out.Store(true)
	}
}

// admit is the guard's half: tok is a valid token for job with claims c.
// It refuses a revoked or expired job, and on a synced node a job it does
// not know whose gen is not after its revision; it enters a job it does
// not know yet as pending. A token that passed is remembered in the entry
// (verified reports whether tok is that one, for the fast path).
func (j *jobTable) admit(job []byte, c token.Claims, tok []byte) error {
	if c.Expired(time.Now()) {
		return expiredErr(c.ExpiresMs())
	}
	e := j.lookup(job)
	if e == nil {
		var err error
		if e, err = j.addPending(job, c); err != nil {
			return err
		}
	}
	switch e.state.Load() {
	case stateRevoked:
		return errRevoked
	case stateOrphan:
		return errJobGone
	case stateRetired, stateDropping:
		return nil // checkEntry answers by the request's class
	}
	if g := e.gen.Load(); g != 0 && g != c.Gen {
		return errJobGone // another job of the same name, from another controller run
	}
	var t [token.Len]byte
	copy(t[:], tok)
	e.tok.Store(&t)
	return nil
}

// verified reports whether tok is the token that last passed for job.
func (j *jobTable) verified(job, tok []byte) (*jobEntry, bool) {
	e := j.lookup(job)
	if e == nil || len(tok) != token.Len {
		return e, false
	}
	t := e.tok.Load()
	return e, t != nil && subtle.ConstantTimeCompare(t[:], tok) == 1
}

// addPending enters a job the controller has not listed (yet).
func (j *jobTable) addPending(job []byte, c token.Claims) (*jobEntry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ed := j.edit()
	if e := ed.get(string(job)); e != nil {
		return e, nil // added meanwhile
	}
	if !j.synced.Load() && j.await.Load() && (j.snapRev == 0 || c.Gen <= j.snapRev) {
		return nil, errUnsynced // a job the snapshot under way may still list
	}
	if j.synced.Load() && c.Gen <= j.since.Load() {
		return nil, errJobGone
	}
	e := &jobEntry{pendingAt: time.Now()}
	e.gen.Store(c.Gen)
	e.expires.Store(c.ExpiresMs())
	e.state.Store(statePending)
	ed.put(string(job), e)
	ed.commit()
	j.pending[string(job)] = e
	j.wantSync() // learn the job (its epoch, whether the node is in its map) now
	return e, nil
}

// setEpoch records a job's epoch as the controller gives it.
func (j *jobTable) setEpoch(job string, epoch uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ed := j.edit()
	e := ed.get(job)
	if e == nil {
		e = &jobEntry{}
		ed.put(job, e)
		ed.commit()
	}
	e.epoch.Store(epoch)
}

// forget removes a job's entry (a standalone node's drop).
func (j *jobTable) forget(job string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ed := j.edit()
	if ed.get(job) != nil {
		ed.del(job)
		ed.commit()
	}
	delete(j.pending, job)
	delete(j.revoked, job)
	delete(j.orphans, job)
}

// syncPoint is what a heartbeat tells the controller: the table's
// revision, and the snapshot being received if any.
func (j *jobTable) syncPoint() (since, snapRev, snapAfter uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.since.Load(), j.snapRev, j.snapAfter
}

// revokeLocked marks a job revoked and reports whether it may hold data
// here: then it is left dropping, and the caller must drop its data and
// call dropped, which ends that state. A job that was never admitted here
// (no entry, or never used) holds nothing and is revoked at once.
func (j *jobTable) revokeLocked(ed *tableEdit, job string, now time.Time) bool {
	e := ed.get(job)
	if e == nil {
		return false // never admitted here: no data
	}
	switch e.state.Load() {
	case stateRevoked, stateDropping, stateRetired:
		return false // revoked already; a drop under way ends with dropped
	}
	// Dropping before used is read: a request that marks the entry used
	// after this read sees the state and stores nothing.
	if exp := e.expires.Load(); exp != 0 && now.UnixMilli() >= exp {
		e.expiredEnd.Store(true) // it ended by its token's expiry
	}
	e.state.Store(stateDropping)
	e.revokedAt = now
	delete(j.pending, job)
	delete(j.orphans, job)
	j.revoked[job] = e
	if !e.used.Load() {
		e.state.Store(stateRevoked)
		return false
	}
	return true
}

// orphanLocked marks a job the controller does not list orphaned when it
// may hold data here, else revokes it (nothing to keep). It reports
// whether the job is left dropping (a request used it meanwhile: see
// revokeLocked), for the caller to drop.
func (j *jobTable) orphanLocked(ed *tableEdit, job string, e *jobEntry, now time.Time) bool {
	if !e.used.Load() {
		return j.revokeLocked(ed, job, now)
	}
	e.state.Store(stateOrphan)
	delete(j.pending, job)
	j.orphans[job] = e
	return false
}

// upsertLocked enters a live job as the controller lists it. It reports
// whether an orphaned job's data under the same id, from another job (its
// gen differs), must be dropped first.
func (j *jobTable) upsertLocked(ed *tableEdit, je *wire.JobEpoch, snap uint64) (dropOld bool) {
	e := ed.get(je.Job)
	if e == nil {
		e = &jobEntry{}
		ed.put(je.Job, e)
	}
	if e.state.Load() == statePending && je.Owner == "" {
		// Listed with no owner (an older controller): its waiting
		// connections are proven for the job (Node.proveWaiters).
		j.learned = append(j.learned, je.Job)
	}
	switch e.state.Load() {
	case stateOrphan:
		delete(j.orphans, je.Job)
		if e.gen.Load() != je.Gen {
			// Another job under the orphan's id: the orphan's data goes.
			e = &jobEntry{}
			ed.put(je.Job, e)
			dropOld = true
		}
	case stateRevoked, stateDropping, stateRetired:
		if e.gen.Load() == je.Gen {
			return false // the controller's word is older than the revocation
		}
		// A new job under a revoked job's id (another controller run).
		e = &jobEntry{}
		ed.put(je.Job, e)
		delete(j.revoked, je.Job)
	}
	e.gen.Store(je.Gen)
	e.tiers.Store(uint32(je.Tiers))
	e.full.Store(je.OverQuota)
	e.maxBytes.Store(je.MaxBytes)
	e.expires.Store(unixMs(je.Expires))
	j.setOwnerLocked(je.Job, e, je.Owner)
	// Before the epoch moves: a loop that reads the older epoch finds
	// keptKeys for another one, and takes nothing by it.
	e.keep(je)
	e.setEpoch(je.Epoch, je.Out)
	e.state.Store(stateLive)
	e.seen = snap
	delete(j.pending, je.Job)
	return dropOld
}

// setOwnerLocked records e's owner (jobEntry.setOwner), and job in
// learned when it changed; mu is held.
func (j *jobTable) setOwnerLocked(job string, e *jobEntry, owner string) {
	if e.setOwner(owner) {
		j.learned = append(j.learned, job)
	}
}

// takeLearned returns the jobs whose owner changed since its last call,
// and those listed with no owner while pending.
func (j *jobTable) takeLearned() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := j.learned
	j.learned = nil
	return out
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixMilli(), 1)
}

// apply brings the table to the ack's revision and returns the jobs to
// drop (newly revoked ones that may hold data here).
func (j *jobTable) apply(ack *wire.NodeAck, now time.Time) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if ack.Rev == 0 {
		return nil // a registration ack: the table comes with heartbeats
	}
	ed := j.edit()
	var drops []string
	if ack.Full {
		if j.snapRev != ack.Rev {
			j.snapRev, j.snapID = ack.Rev, j.snapID+1
		}
		for i := range ack.Jobs {
			if j.upsertLocked(ed, &ack.Jobs[i], j.snapID) {
				drops = append(drops, ack.Jobs[i].Job)
			}
		}
		j.snapAfter = ack.After
		if !ack.More {
			drops = append(drops, j.finishSnapshotLocked(ed, now)...)
		}
	} else if j.synced.Load() {
		for i := range ack.Jobs {
			je := &ack.Jobs[i]
			if je.Revoked {
				if e := ed.get(je.Job); e != nil {
					j.setOwnerLocked(je.Job, e, je.Owner) // its tokens still read persisted values
				}
				if j.revokeLocked(ed, je.Job, now) {
					drops = append(drops, je.Job)
				}
				continue
			}
			if j.upsertLocked(ed, je, 0) {
				drops = append(drops, je.Job)
			}
		}
		j.since.Store(ack.Rev)
		drops = append(drops, j.resolvePendingLocked(ed, ack.Rev, now)...)
	}
	ed.commit()
	return drops
}

// finishSnapshotLocked ends a snapshot: every entry it did not list whose
// gen is not after its revision is unknown to the controller: orphaned
// when it may hold data here (kept until the controller orders it
// dropped), else revoked. It returns the jobs left dropping, to drop.
func (j *jobTable) finishSnapshotLocked(ed *tableEdit, now time.Time) []string {
	rev := j.snapRev
	var drops []string
	for i := range j.shards {
		for job, e := range *j.shards[i].Load() {
			switch e.state.Load() {
			case stateLive, statePending:
				if e.seen != j.snapID && e.gen.Load() <= rev && j.orphanLocked(ed, job, e, now) {
					drops = append(drops, job)
				}
			}
		}
	}
	j.since.Store(rev)
	j.snapRev, j.snapAfter = 0, 0
	j.synced.Store(true)
	return drops
}

// resolvePendingLocked revokes the pending jobs the controller should have
// listed by rev and did not: their tokens were never (or no longer) live.
func (j *jobTable) resolvePendingLocked(ed *tableEdit, rev uint64, now time.Time) []string {
	var drops []string
	for job, e := range j.pending {
		if e.gen.Load() <= rev && j.revokeLocked(ed, job, now) {
			drops = append(drops, job)
		}
	}
	return drops
}

// tableEdit batches changes to the shards: each touched shard is copied
// once and the copies published together by commit.
type tableEdit struct {
	t      *jobTable
	copies [jobShards]map[string]*jobEntry
}

func (j *jobTable) edit() *tableEdit { return &tableEdit{t: j} }

func (ed *tableEdit) index(job string) int {
	return int(maphash.String(ed.t.seed, job) % jobShards)
}

func (ed *tableEdit) get(job string) *jobEntry {
	i := ed.index(job)
	if m := ed.copies[i]; m != nil {
		return m[job]
	}
	return (*ed.t.shards[i].Load())[job]
}

func (ed *tableEdit) writable(i int) map[string]*jobEntry {
	if ed.copies[i] == nil {
		old := *ed.t.shards[i].Load()
		m := make(map[string]*jobEntry, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		ed.copies[i] = m
	}
	return ed.copies[i]
}

func (ed *tableEdit) put(job string, e *jobEntry) { ed.writable(ed.index(job))[job] = e }

func (ed *tableEdit) del(job string) { delete(ed.writable(ed.index(job)), job) }

func (ed *tableEdit) commit() {
	for i := range ed.copies {
		if m := ed.copies[i]; m != nil {
			p := new(map[string]*jobEntry)
			*p = m
			ed.t.shards[i].Store(p)
			ed.copies[i] = nil
		}
	}
}

// revokeOrder revokes a job on the controller's drop order, entering it if
// the table has no entry (so it is refused until the entry lingers out).
// The job is left dropping unless it was revoked already; the caller drops
// its data and then calls dropped.
func (j *jobTable) revokeOrder(job string, now time.Time, all bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	ed := j.edit()
	e := ed.get(job)
	if e == nil {
		e = &jobEntry{}
		e.used.Store(true)
		ed.put(job, e)
	}
	e.dropAll = e.dropAll || all
	j.revokeLocked(ed, job, now)
	ed.commit()
}

// dropped records that a revoked job's data was dropped and that held
// bytes (its persistent values) remain: such a job is retired. A job left
// dropping with none held is revoked. Called after every drop of a
// revoked job, it ends the dropping state whichever drop ends first (a
// second revocation's drop, or a drop order, may run beside the first).
func (j *jobTable) dropped(job string, held int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.revoked[job]
	if e == nil {
		return
	}
	switch st := e.state.Load(); {
	case st == stateRetired:
	case held > 0:
		e.held = held
		e.state.Store(stateRetired)
		j.retiredAt = append(j.retiredAt, job)
	case st == stateDropping:
		e.state.Store(stateRevoked)
	}
}

// awaitCommits waits, at most d, until no put of job (revoked: its state
// stored before this is called) is between its check at commit and the
// commit's end (jobEntry.inCommit), and reports whether none is. A put
// counts itself before it reads the state, and the revocation stores the
// state before this reads the count, so a put either sees the revocation
// (and stores nothing) or is waited for: the drop that follows then
// drops it, or counts it among the persistent values the job keeps.
// Before, an NVMe commit that passed its check while the drop ran landed
// after it, and the retired job, found holding more than it kept, lost
// every persistent value (a hostile trial: 20 of 20 in 10 of 11 runs).
func (j *jobTable) awaitCommits(job string, d time.Duration) bool {
	j.mu.Lock()
	e := j.revoked[job]
	j.mu.Unlock()
	if e == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return awaitNone(ctx, func() bool { return e.inCommit() > 0 }) == nil
}

// inCommit is how many puts of e are between their check at commit and
// the commit's end, whatever their epoch. A put raises its slot before
// it reads the job's state, so a reader that stored the state before it
// sums the slots misses no put that did not see the state (Go's atomics
// are sequentially consistent). One count per put: before, a put also
// raised and lowered a job-wide counter beside its epoch's.
func (e *jobEntry) inCommit() int32 {
	var n int32
	for i := range e.atEpoch {
		n += e.atEpoch[i].Load()
	}
	return n
}

// epochSlots is how many map epochs of a job jobEntry.atEpoch tells
// apart: a put still committing after its job's map changed this many
// times since its admission is counted with the newest's puts.
const epochSlots = 8

// admittedAt is the counter of puts admitted at map epoch epoch.
func (e *jobEntry) admittedAt(epoch uint64) *atomic.Int32 { return &e.atEpoch[epoch%epochSlots] }

// committingBefore reports whether a put of e admitted at a map epoch
// other than epoch (modulo epochSlots) is between its check at commit
// and the commit's end.
func (e *jobEntry) committingBefore(epoch uint64) bool {
	for i := range e.atEpoch {
		if uint64(i) != epoch%epochSlots && e.atEpoch[i].Load() > 0 {
			return true
		}
	}
	return false
}

// committing is how many puts of the listed jobs are between their
// check at commit and the commit's end (jobEntry.inCommit), refused ones
// among them for the instant of their check.
func (j *jobTable) committing() int32 {
	var n int32
	for i := range j.shards {
		for _, e := range *j.shards[i].Load() {
			n += e.inCommit()
		}
	}
	return n
}

// expiredRevocations removes the revoked (not retired) entries older than
// the linger and returns those of them that may hold data, to be dropped
// again (persistent values too when the order said so: dropAll).
func (j *jobTable) expiredRevocations(now time.Time) []expiredJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	var again []expiredJob
	ed := j.edit()
	for job, e := range j.revoked {
		if e.state.Load() != stateRevoked || now.Sub(e.revokedAt) < j.linger {
			continue
		}
		if e.used.Load() {
			again = append(again, expiredJob{job: job, all: e.dropAll})
		}
		delete(j.revoked, job)
		if ed.get(job) == e {
			ed.del(job)
		}
	}
	ed.commit()
	return again
}

// expiredJob is a job whose revocation lingered out, to drop again: every
// value when all, else all but the persistent ones.
type expiredJob struct {
	job string
	all bool
}

// retiredJob is a retired job to check and the bytes it may hold.
type retiredJob struct {
	job  string
	held int64
}

// retiredBatch returns up to k retired jobs, in turn.
func (j *jobTable) retiredBatch(k int) []retiredJob {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []retiredJob
	for len(out) < k && len(j.retiredAt) > 0 {
		job := j.retiredAt[0]
		j.retiredAt = j.retiredAt[1:]
		e := j.revoked[job]
		if e == nil || e.state.Load() != stateRetired {
			continue
		}
		out = append(out, retiredJob{job: job, held: e.held})
	}
	return out
}

// keepLate raises a retired job's bytes held to used: persistent values
// of puts admitted before its revocation landed after its drop.
func (j *jobTable) keepLate(job string, used int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.revoked[job]; e != nil && e.state.Load() == stateRetired {
		e.held = max(e.held, used)
	}
}

// unretire updates a retired job after a check: with used bytes left it
// stays retired (and may hold no more than that), with none its entry goes
// and its token is refused like any revoked one's.
func (j *jobTable) unretire(job string, used int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.revoked[job]
	if e == nil || e.state.Load() != stateRetired {
		return
	}
	if used > 0 {
		e.held = min(e.held, used)
		j.retiredAt = append(j.retiredAt, job)
		return
	}
	delete(j.revoked, job)
	ed := j.edit()
	if ed.get(job) == e {
		ed.del(job)
		ed.commit()
	}
}

// ended lists the jobs whose persist-after-job values may stay here after
// their end: retired ones, and dropping ones (the drop keeps them).
func (j *jobTable) ended() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for job, e := range j.revoked {
		switch e.state.Load() {
		case stateRetired, stateDropping:
			out = append(out, job)
		}
	}
	return out
}

// placed lists the live jobs with an epoch whose maps this node is in.
func (j *jobTable) placed() []string {
	var out []string
	for i := range j.shards {
		for job, e := range *j.shards[i].Load() {
			if e.state.Load() == stateLive && e.epoch.Load() != 0 && !e.out.Load() {
				out = append(out, job)
			}
		}
	}
	return out
}

// heldBatch returns up to k orphaned jobs, from a random point of the
// set each time, so every one is reported within a few heartbeats.
func (j *jobTable) heldBatch(k int) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]string, 0, min(k, len(j.orphans)))
	for job := range j.orphans {
		if len(out) == k {
			break
		}
		out = append(out, job)
	}
	return out
}

// droppable reports whether the controller's drop order for a held job
// may be carried out: the job is orphaned, revoked (dropping or retired
// included) or has no entry. A job
// the table holds live or pending (the controller listed it, or a token
// newer than the table) is never dropped on such an order.
func (j *jobTable) droppable(job string) bool {
	e := j.lookup([]byte(job))
	if e == nil {
		return true
	}
	switch e.state.Load() {
	case stateLive, statePending:
		return false
	}
	return true
}

// claims returns a live job's token claims.
func (j *jobTable) claims(job string) (token.Claims, bool) {
	e := j.lookup([]byte(job))
	if e == nil || e.state.Load() != stateLive {
		return token.Claims{}, false
	}
	c := token.Claims{Gen: e.gen.Load()}
	if ms := e.expires.Load(); ms > 0 {
		c.Expires = time.UnixMilli(ms)
	}
	return c, true
}
