package pocket

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// target is one request's destination and the job fields it carries.
type target struct {
	addr string
	old  string // the owner under the whole map when it drains (drain.go)
	// oldDead is the old owner when the map marks it dead (old is then
	// ""): it may hold the key's value, and come back (deadOldDo).
	oldDead string
	dead    bool
	// leaving: the request goes to a node the map marks draining, which
	// may be stopped once its values have moved (mapChanged).
	leaving bool
	// none: the map has no node (an ended job's final map whose every
	// node was lost since it ended); addr is "".
	none  bool
	job   []byte
	token []byte
	epoch uint64
	flags uint16
}

// route picks the node of (key, chunk) from the current map: its owner
// among the nodes that are not draining, and, when that differs, its owner
// among the nodes that are not joining, which may still hold the value
// (see drain.go).
func (j *Job) route(key []byte, chunk uint32) target {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if len(j.m.Nodes) == 0 {
		return target{none: true}
	}
	addr := j.live.Node(j.live.Pick(key, chunk)).ID
	t := target{addr: addr, dead: j.m.Dead[addr], job: j.jobBytes, token: j.m.Token, epoch: j.m.Epoch, flags: j.m.Tier.Flags()}
	if j.live != j.set || j.prior != j.set {
		// A dead old owner is not asked, but its key is not taken for
		// absent either (deadOldDo). A retired job keeps it as the old
		// owner, to answer gone (ErrLost) for a key that may have been
		// there (retiredKeyDo).
		switch o := j.prior.Node(j.prior.Pick(key, chunk)).ID; {
		case o == addr:
		case !j.m.Dead[o] || j.retired.Load():
			t.old, t.leaving = o, j.m.Draining[o]
		default:
			t.oldDead = o
		}
	}
	return t
}

// errEndedNoNode refuses a put to an ended job whose map has no node left.
var errEndedNoNode = &wire.Error{Code: wire.CodeRevoked,
	Msg: "the job has ended: its persist-after-job values are read-only, and no node of its final map is left (each was lost since it ended)"}

// noNodeErr is the answer to a request of (op, key, chunk) on a map with
// no node (target.none): an ended job whose every node's process went
// away since it ended (package controller, ended_lost.go). Its keys are
// lost and it takes no put; a delete is answered as a node that holds
// none answers (keyAnswer), so that a named delete in RemoveAll counts it
// as nothing there, as on a map with nodes left.
func (j *Job) noNodeErr(op wire.Op, key []byte, chunk uint32) error {
	none := &wire.Error{Code: wire.CodeNotFound, Msg: "no node of the ended job's map is left"}
	switch op {
	case wire.OpPut:
		return errEndedNoNode
	case wire.OpDelete:
		return none
	}
	return j.lostErr(key, chunk, none)
}

// targets lists every node of the map, for fan-out calls.
func (j *Job) targets() []target {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return targetsOf(j.m, j.jobBytes)
}

// targetsOf is every node of map m as a target; job is m.Job as bytes.
func targetsOf(m Map, job []byte) []target {
	ts := make([]target, len(m.Nodes))
	for i, n := range m.Nodes {
		ts[i] = target{addr: n.Addr, dead: m.Dead[n.Addr], job: job, token: m.Token, epoch: m.Epoch, flags: m.Tier.Flags()}
	}
	return ts
}

// refresh fetches the job's map again after a node said ours is stale.
func (j *Job) refresh(ctx context.Context) error {
	if j.s.ctl == nil {
		return ErrNoController
	}
	m := j.snapshot()
	nm, err := j.s.ctl.GetMap(ctx, m.Job, m.Token)
	if err != nil {
		return err
	}
	j.adopt(nm)
	return nil
}

// movedOnLive fetches the job's map after a node answered revoked to a
// request routed with the map of epoch used, and reports whether the job
// lives on with a newer map (adopted): the node dropped the job while it
// lives on (it was lost and came back: controller/dead.go). A job the
// controller has ended (its final map) leaves the handle as it was, and
// the node's answer stands.
func (j *Job) movedOnLive(ctx context.Context, used uint64) bool {
	m := j.snapshot()
	nm, err := j.s.ctl.GetMap(ctx, m.Job, m.Token)
	if err != nil || nm.Ended {
		return false
	}
	j.adopt(nm)
	return j.snapshot().Epoch > used
}

// adopt takes nm, a map the controller handed out, unless a fetch made
// later set a newer one meanwhile.
func (j *Job) adopt(nm Map) {
	if nm.Epoch < j.snapshot().Epoch {
		return // a fetch made after this one set a newer map meanwhile
	}
	j.setMap(nm)
	if nm.Ended {
		// It ended meanwhile: from now on it reads its persisted values.
		j.retired.Store(true)
	}
}

// reqExtra are the request fields a few calls set beyond job, key, token
// and epoch.
type reqExtra struct {
	version    uint64
	objectSize int64
	// deletedOld, set by doReq for a delete of one key, is set true by
	// deleteBoth when an attempt deleted at the key's old owner and then
	// failed at its live owner (refused, or not sent): the attempt that
	// follows on a newer map finds nothing, and its "not found" (by
	// version, "conflict") is not the call's answer.
	deletedOld *bool
}

// do sends one request for (key, chunk), refreshing the map and retrying
// (up to mapRetries times) when a node reports the map stale or itself
// draining (the client's map predates the change), or cannot be reached
// while the map changed (mapChanged; only a request that certainly did
// not reach the node, or that resendable allows, is sent again then).
func (j *Job) do(ctx context.Context, op wire.Op, flags uint16, key []byte, chunk uint32, payload, dst []byte) (client.Reply, error) {
	r, _, err := j.doReq(ctx, op, flags, key, chunk, reqExtra{}, payload, dst)
	return r, err
}

// doReq is do with extra request fields; it also returns the node that
// answered.
func (j *Job) doReq(ctx context.Context, op wire.Op, flags uint16, key []byte, chunk uint32, x reqExtra, payload, dst []byte) (client.Reply, string, error) {
	var deletedOld bool
	if op == wire.OpDelete && flags&wire.FlagPrefix == 0 {
		x.deletedOld = &deletedOld
	}
	for attempt := 0; ; attempt++ {
		if err := givenUp(ctx); err != nil && !deletedOld {
			// Nothing of it reached a node, or what did certainly
			// changed nothing or is to be sent again: the call ends
			// unsent. A delete that removed the key's older copy at its
			// old owner goes on to its owner.
			return client.Reply{}, "", err
		}
		t := j.route(key, chunk)
		var r client.Reply
		var err error
		switch {
		case t.none:
			return r, "", j.noNodeErr(op, key, chunk)
		case t.old != "" && j.retired.Load():
			// Either owner may hold it; either may be gone.
			r, err = j.retiredKeyDo(ctx, t, op, flags, key, x, payload, dst)
		case t.dead && j.retired.Load():
			err = goneErr(t.addr) // found gone (gone.go)
		case t.dead:
			err = deadNodeErr(t.addr)
		case t.old != "":
			r, err = j.drainDo(ctx, t, op, flags, key, x, payload, dst)
		case t.oldDead != "":
			r, err = j.deadOldDo(ctx, t, op, flags, key, x, payload, dst)
		default:
			req := wire.Request{Job: t.job, Key: key, Token: t.token, Epoch: t.epoch, Version: x.version, ObjectSize: x.objectSize}
			send := func() (client.Reply, error) {
				return j.keyPatient(ctx, func() (client.Reply, error) {
					return j.s.data.Do(ctx, t.addr, op, flags|t.flags, &req, payload, dst)
				})
			}
			r, err = j.goneCheck(ctx, t.addr, resendable(op, flags), func() (client.Reply, error) { return j.resendLost(ctx, op, flags, send) })
			err = j.keyAnswer(op, flags, t.addr, err)
		}
		if chunk == 0 && !readOnly(op, flags) {
			j.fenceSilent(string(key), flags&wire.FlagPrefix != 0, err)
		}
		if errors.Is(err, errGivenUp) {
			return r, t.addr, err
		}
		if resendable(op, flags) || unexecuted(err) {
			var again bool
			if again, err = j.mapChanged(ctx, err, t.epoch, t.leaving, attempt); again {
				continue
			}
		}
		if chunk == 0 && settles(op, flags) {
			var named uint64
			if op == wire.OpDelete && err == nil {
				named = r.Meta.Version // its caller drops it
			}
			j.settleUndropped(ctx, key, named)
		}
		if deletedOld && (errors.Is(err, wire.ErrNotFound) || errors.Is(err, wire.ErrConflict)) {
			// An earlier attempt deleted the key at its old owner (and
			// dropped the manifest it removed there, or left it to
			// undropped).
			return client.Reply{}, t.addr, nil
		}
		return r, t.addr, err
	}
}

// lostResends bounds how often resendLost sends a request again on the
// same map after its connection was lost.
const lostResends = 2

// resendLost calls send, and sends a read (readOnly: a get that deletes
// nothing, a stat, a listing's page, a usage request) again, up to
// lostResends times, while its node closed or reset its connection after
// the request may have been written (lostAfterSend) and the caller has not
// given up: the
// node was there a moment ago, and a node that cut one connection
// (evicting it at its connection limit, or a proxy's reset) most likely
// serves the next. Before, such a get failed with "connection lost"
// unless the job's map had changed meanwhile (mapChanged): a flood that
// made a node evict a job's connections failed 0-11 of about 19,000 gets
// in a trial. A node that is gone refuses the new connection
// (client.Refused), which ends the resends at once and leaves the call to
// mapChanged. A connection failed on silence (the node frozen or cut
// off) is not such a loss: a read sent again would wait out another
// silence (a hostile check: a frozen node's get took 3x Config.Silence).
// A retired job's requests are sent again by goneCheck already. A chunk
// put, which resendable also allows on a new map, is not sent again
// here: its second copy would answer "exists" from the same node and fail
// the put, where the lost one fails it unavailable.
func (j *Job) resendLost(ctx context.Context, op wire.Op, flags uint16, send func() (client.Reply, error)) (client.Reply, error) {
	r, err := send()
	if !readOnly(op, flags) {
		return r, err
	}
	for i := 0; i < lostResends && lostAfterSend(err) && !j.retired.Load(); i++ {
		if givenUp(ctx) != nil || ctx.Err() != nil {
			break
		}
		r, err = send()
	}
	return r, err
}

// readOnly reports whether the request (op, flags) changes nothing at
// its node, so that doing it twice is doing it once.
func readOnly(op wire.Op, flags uint16) bool {
	switch op {
	case wire.OpGet:
		return flags&wire.FlagDeleteAfterRead == 0
	case wire.OpStat, wire.OpList, wire.OpUsage:
		return true
	}
	return false
}

// lostAfterSend reports whether err is a connection its node closed or
// reset once the request may have been written (client.ClosedByNode, not
// marked not sent): its outcome unknown, the node there a moment ago.
func lostAfterSend(err error) bool {
	return client.ClosedByNode(err) && !client.NotSent(err)
}

// deadNodeAdvice follows "node ADDR is dead" in the error of a request
// for a key of a node the job's map marks dead (ErrUnavailable, sent to
// no node): the node stays in the map, its keys unavailable, until the
// controller has seen it dead for its grace (controller.Config
// .DeadNodeGrace, pocket controller's --dead-node-grace, 30 s by default)
// and takes it out of the map (lost.go). The map does not carry the
// grace, so the advice gives the default.
const deadNodeAdvice = "its keys are unavailable until the controller declares it lost (once it has been dead for " +
	"the controller's --dead-node-grace, 30 s by default, while another node of the cluster is alive) and takes it out of the job's map; retry then: " +
	"puts go to the job's other nodes, and gets of the values it held answer lost"

// deadNodeErr is the error of a request for a key of the dead node addr.
func deadNodeErr(addr string) error {
	return client.MarkNotSent(&wire.Error{Code: wire.CodeUnavailable, Msg: "node " + addr + " is dead: " + deadNodeAdvice})
}

// resendable reports whether a single-key request (op, flags) may be sent
// again (doReq, on a newer map) after its connection was lost once it may
// have been written (not unexecuted, version.go): whether doing it twice, with any other
// caller's writes between the two, is doing it once at the second time.
//
//   - Reads (get, stat) change nothing: yes.
//   - A chunk put (FlagChunk) writes a name of the writer's own version,
//     which no other writer shares and no reader reads before its manifest
//     is published: yes. If the first copy was stored, the second answers
//     "exists" (same node) or lands beside it (another node, left leased:
//     dropped by the put's abort or reclaimed by the lease), and the put
//     fails before publishing anything, or its confirm's count finds the
//     extra chunk and fails it the same way.
//   - A manifest put (step 4 of a chunked put) no: another writer may have
//     replaced the first copy meanwhile and dropped its chunks, and the
//     second copy republishes a version whose chunks are gone (gets fail
//     corrupt) and hands back the other writer's version, whose chunks the
//     put then drops; or the second copy is refused (no space, busy) and
//     the put, taking itself for failed, drops the chunks of the version
//     the first copy published (TestManifestResentAfterAnotherPut,
//     TestManifestResendRefused).
//   - A small put, or CreateDir's marker, no: a reader may have seen the
//     first copy, then another writer's value, then the second copy: one
//     put seen twice around another, which no order of the calls explains.
//   - A put with FlagIfAbsent or FlagIfVersion no: the second answer
//     ("exists", "conflict") would speak of the first copy, not of the
//     value the caller asked about.
//   - A delete of one key no: the second answers "not found" for a delete
//     that deleted, or deletes what another writer put after the first
//     (the same put-seen-twice); with FlagIfVersion (the end of a
//     delete-after-read) "not found", after which the reader takes the
//     value for another reader's and reads the key again, though its own
//     delete consumed the value.
//   - A get with FlagDeleteAfterRead no: the first copy may have read and
//     deleted the value, whose reply was lost; the second answers "not
//     found" (the value was taken, by this call), or takes a newer value.
//
// Requests not sent by doReq decide for themselves: confirm and
// drop-version (doAt; one version, the writer's own, so doing them twice
// is doing them once), and the fan-outs (listings, usage, prefix deletes,
// drop-version: each node's page is removed whole, and the reply names
// the manifests it removed, whose chunks are then dropped; a node names
// them again in the next prefix deletes that cover their prefix (and,
// after 15 s, in any) until their drop reaches it, so a reply lost costs
// no chunks while the node keeps them: dataplane/removed.go bounds how
// many, and a node that restarts forgets them) are sent again.
func resendable(op wire.Op, flags uint16) bool {
	switch op {
	case wire.OpGet:
		return flags&wire.FlagDeleteAfterRead == 0
	case wire.OpStat:
		return true
	case wire.OpPut:
		return flags&wire.FlagChunk != 0 && flags&(wire.FlagIfAbsent|wire.FlagIfVersion|wire.FlagManifest) == 0
	}
	return false
}

// mapChanged reports whether the caller, whose request used the map of
// epoch used and failed with err, should retry with a new map:
//
//   - err says the map is stale (or names a draining node) and the map
//     could be fetched again;
//   - err says a node is unavailable (dead in the map, refused or lost
//     connection) and the map has changed since: fetched by another call
//     meanwhile, or now (refreshUnavailable). The node may have left the
//     map; if the map is the same the request is not sent again. (doReq
//     asks only for a request that never reached the node or that may be
//     done twice: resendable);
//   - err says the node revoked the job, which this handle has not seen
//     end, and the map has changed since: the node dropped the job when
//     it came back after the job lost it;
//   - err says a node is unavailable and gone is set: the request went to
//     a node that is most likely gone for good and about to leave the map
//     (a draining node, which the controller retires once its values have
//     moved and scale-in then stops; for a fan-out, any node of the map),
//     and the map is fetched until the map without it is out
//     (refreshNewer: the controller hands it out once the other nodes
//     have learned it, a heartbeat or two after the retirement).
//
// A node that refuses the map with an epoch older than the request's
// (nodesBehind) is behind, not the map: it restarted and has not synced
// its job table yet, or its table missed the epoch (it is catching up
// now); the same map is sent again after behindWait(attempt), attempt
// being the call's retries so far, mapRetries times at most: from
// mapRetries on, mapChanged answers false.
//
// A failed refresh is folded into err's caller's view by returning false.
// The error returned is the one the call ends with if it is not sent
// again: err, or, when err's node asked for the map to be fetched (a
// stale epoch, draining) and the fetch failed, err saying so
// (fetchFailedErr).
func (j *Job) mapChanged(ctx context.Context, err error, used uint64, gone bool, attempt int) (bool, error) {
	if j.s.ctl == nil || err == nil || attempt >= mapRetries || ctx.Value(noControllerWait{}) != nil {
		return false, err // the last: a leased chunks' drop (abortUnconfirmed)
	}
	switch {
	case errors.Is(err, wire.ErrStaleEpoch) && nodesBehind(err, used):
		if knowsNoEpoch(err) {
			// A fetch that fails (the controller away past
			// ControllerWait) ends the call with the node's answer.
			// Before, each of the call's mapRetries attempts waited
			// for the controller again: a put to a node whose lease
			// had lapsed blocked 59 s with a 15 s wait (a trial).
			if ferr := j.refresh(ctx); ferr != nil {
				return false, fetchFailedErr(err, ferr)
			}
			if j.snapshot().Epoch > used {
				return true, err // the map moved on without the node
			}
			return sleepCtx(ctx, noEpochWait(attempt)), err
		}
		return sleepCtx(ctx, behindWait(attempt)), err
	case errors.Is(err, wire.ErrStaleEpoch):
		moved, ferr := j.refreshNewer(ctx, used)
		return moved, fetchFailedErr(err, ferr)
	case errors.Is(err, wire.ErrDraining):
		ferr := j.refresh(ctx)
		return ferr == nil, fetchFailedErr(err, ferr)
	case errors.Is(err, wire.ErrRevoked) && !j.retired.Load():
		// A node that dropped the job while it lives on (the node was
		// lost and came back: controller/dead.go) answers revoked to a
		// map from before; the controller's map says whether the job
		// ended or moved on without the node.
		return j.movedOnLive(ctx, used), err
	case errors.Is(err, wire.ErrUnavailable) && gone:
		moved, _ := j.refreshNewer(ctx, used)
		return moved, err
	case errors.Is(err, wire.ErrUnavailable):
		return j.refreshUnavailable(ctx, used), err
	}
	return false, err
}

// fetchFailedErr is the error of a call refused by a node that asked
// for the job's map to be fetched (err: a stale epoch, which names none
// when the node's lease had lapsed, or draining) after the SDK's fetch
// failed (ferr; nil: err alone): the node's advice was followed and the
// controller did not answer. It stays the node's error (errors.Is), with
// ferr's text only: the controller's unavailability is not the call's.
func fetchFailedErr(err, ferr error) error {
	if ferr == nil {
		return err
	}
	return fmt.Errorf("%w (the SDK asked the controller for the job's map and got no answer, so the request was not sent again: %v)", err, ferr)
}

// fanOutChanged is mapChanged for a request sent to every node of the map
// (a fan-out, a listing, a prefix delete), which may be sent again whole:
// a node of the map that cannot be reached has most likely drained and
// been stopped, or died, and the map without it (or marking it dead, which
// a fan-out skips) is handed out a heartbeat or two later (or DeadAfter
// after a crash), so the map is fetched until it is newer, within
// staleWait. Fetching it once, as a single-key request does, failed
// fan-outs for the second between a drained node's stop and the new map
// (a user saw 25,867 of 45,937 list calls fail in one drain). The price:
// a node the controller sees alive but this client cannot reach (a
// partition) fails a fan-out only after staleWait.
func (j *Job) fanOutChanged(ctx context.Context, err error, used uint64, attempt int) (bool, error) {
	return j.mapChanged(ctx, err, used, true, attempt)
}

// behindPause is the first pause before a request goes again, on the
// same map, to a node whose table is behind it (mapChanged); each later
// one doubles (behindWait): 60, 120, 240 and 480 ms over mapRetries, about
// a second in all, in which a restarted node registers and syncs. A node
// that knows the job and missed its epoch has been woken to heartbeat at
// once (dataplane.Node.SyncWanted, at most one early heartbeat per 50 ms)
// and serves the map a round trip to its controller later, so the first
// pause is usually the only one.
const behindPause = 60 * time.Millisecond

// behindWait is the pause before the retry that follows attempt earlier
// ones (0: the first).
func behindWait(attempt int) time.Duration { return behindPause << min(max(attempt, 0), mapRetries) }

// noEpochPause is the first pause before a request goes again to a node
// that knows no epoch of the job (knowsNoEpoch), after the map was
// fetched: most often a node that has not heard of a new job from its
// controller yet, which refuses its puts until it has (dataplane's
// errPendingStore) and heartbeats at once, so it knows the job about one
// round trip to the controller later, which the fetch took too. Later
// pauses are behindWait's. With behindPause first, a new job's first puts
// took 62 ms (median of 20 jobs, 8 puts each over 2 nodes) against 1 ms
// before nodes refused them.
const noEpochPause = 5 * time.Millisecond

// noEpochWait is the pause before the retry that follows attempt earlier
// ones (0: the first) to a node that knows no epoch of the job.
func noEpochWait(attempt int) time.Duration {
	if attempt <= 0 {
		return noEpochPause
	}
	return behindWait(attempt)
}

// nodesBehind reports whether err is a stale-epoch refusal naming an
// epoch older than used, or (a fan-out's joined errors) only such
// refusals: the nodes are behind the map, which is the newest they can be
// sent. Any other error among them (a node unavailable, draining, or
// ahead of the map) calls for a newer map instead.
func nodesBehind(err error, used uint64) bool {
	switch e := err.(type) {
	case *wire.Error:
		return e.Code == wire.CodeStaleEpoch && e.Epoch < used
	case interface{ Unwrap() []error }:
		errs := e.Unwrap()
		for _, c := range errs {
			if !nodesBehind(c, used) {
				return false
			}
		}
		return len(errs) > 0
	case interface{ Unwrap() error }:
		return nodesBehind(e.Unwrap(), used)
	}
	return false
}

// knowsNoEpoch reports whether err is, or (a fan-out's joined errors)
// holds, a stale-epoch refusal naming epoch 0: a node that knows no
// epoch of the job now, because its lease lapsed (dataplane/lease.go)
// or it has not synced its job table since it started. The map may have
// moved on without it (the controller took it for lost), so mapChanged
// fetches the map before it waits for the node.
func knowsNoEpoch(err error) bool {
	switch e := err.(type) {
	case *wire.Error:
		return e.Code == wire.CodeStaleEpoch && e.Epoch == 0
	case interface{ Unwrap() []error }:
		return slices.ContainsFunc(e.Unwrap(), knowsNoEpoch)
	case interface{ Unwrap() error }:
		return knowsNoEpoch(e.Unwrap())
	}
	return false
}

// sleepCtx waits d and reports true, or false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// mapRetries is how many times one call sends its request again with a
// newer map: a job whose map changes (a node joins or leaves) goes
// through two epochs per change, and a call may meet both.
const mapRetries = 4

// staleWait bounds how long refreshNewer waits for the controller to hand
// out a map newer than one a node called stale: the controller publishes a
// new epoch once every node of the map has learned it (a heartbeat or
// two), and a node learns it first.
const staleWait = 5 * time.Second

// refreshNewer fetches the map after a node said the map of epoch used is
// stale, again and again (with growing pauses, within staleWait) while the
// controller still hands out that epoch, and reports whether the map is
// now newer; a fetch that fails ends the wait, its error returned.
//
// The callers of one Job share the fetches: while a fetch is younger than
// the pause the caller just slept, it looks at the map that fetch brought
// instead of asking again, so a job's many goroutines cost the controller
// a few fetches per epoch, not a few per caller.
func (j *Job) refreshNewer(ctx context.Context, used uint64) (bool, error) {
	deadline := time.Now().Add(staleWait)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		if j.snapshot().Epoch > used {
			return true, nil
		}
		j.staleMu.Lock()
		var err error
		// A fetch older than the pause just slept (wait/2) is this
		// caller's to renew; a younger one, another caller's, is shared.
		if j.snapshot().Epoch <= used && time.Since(j.staleFetch) >= wait/2 {
			err = j.refresh(ctx)
			j.staleFetch = time.Now()
		}
		j.staleMu.Unlock()
		if err != nil {
			return false, err
		}
		if j.snapshot().Epoch > used || time.Now().After(deadline) {
			return j.snapshot().Epoch > used, nil
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(wait):
		}
	}
}

// refreshLater fetches the job's map in the background after a call
// failed with err: its caller's context ended (context.DeadlineExceeded
// or Canceled: the node did not answer in time) or a node was
// unavailable to a request not sent again (a put whose connection was
// lost: mapChanged fetches the map only for a request it may send
// again). A node that stops without closing its connections (frozen,
// SIGSTOP, cut off) is never refused, so its calls only time out;
// without this a Job kept sending to it after the controller had marked
// it dead or taken it out of the map, while a Job opened anew routed
// around it. At most one such fetch runs at a time, none within
// refreshGap of the last map set, each bounded by laterFetchWait.
func (j *Job) refreshLater(err error) {
	if err == nil || j.s.ctl == nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, wire.ErrUnavailable)) {
		return
	}
	j.mu.RLock()
	fetched := j.fetched
	j.mu.RUnlock()
	if time.Since(fetched) < refreshGap || !j.laterFetch.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer j.laterFetch.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), laterFetchWait)
		defer cancel()
		_ = j.refresh(ctx) // a failure leaves the map as it was; the next timeout tries again
	}()
}

// laterFetchWait bounds a background map fetch (refreshLater).
const laterFetchWait = 5 * time.Second

// refreshGap is the least time between two map fetches a job makes
// because a node was unavailable, so that the requests of many callers to
// a dead node do not each ask the controller.
const refreshGap = 500 * time.Millisecond

// refreshUnavailable fetches the map after a node was unavailable to a
// request made with the map of epoch used, unless the map has changed
// since or was fetched less than refreshGap ago, and reports whether the
// map's epoch is now another.
func (j *Job) refreshUnavailable(ctx context.Context, used uint64) bool {
	j.mu.RLock()
	epoch, fetched := j.m.Epoch, j.fetched
	j.mu.RUnlock()
	if epoch != used {
		return true
	}
	if time.Since(fetched) < refreshGap {
		return false
	}
	if j.refresh(ctx) != nil {
		return false
	}
	return j.snapshot().Epoch != used
}

// doAt sends a keyless request (confirm, drop-version) to one node,
// refreshing the map and retrying (mapRetries) on a stale epoch.
func (j *Job) doAt(ctx context.Context, addr string, op wire.Op, flags uint16, x reqExtra) (client.Reply, error) {
	for attempt := 0; ; attempt++ {
		t := j.targetOf(addr)
		req := wire.Request{Job: t.job, Token: t.token, Epoch: t.epoch, Version: x.version}
		r, err := j.s.data.Do(ctx, addr, op, flags|t.flags, &req, nil, nil)
		var again bool
		if again, err = j.mapChanged(ctx, err, t.epoch, t.leaving, attempt); again {
			continue
		}
		return r, err
	}
}

// targetOf is the target for a node named directly.
func (j *Job) targetOf(addr string) target {
	j.mu.RLock()
	defer j.mu.RUnlock()
	return target{addr: addr, dead: j.m.Dead[addr], leaving: j.m.Draining[addr], job: j.jobBytes, token: j.m.Token, epoch: j.m.Epoch, flags: j.m.Tier.Flags()}
}

// fanOut sends the same request to every live node of the job at once and
// returns each node's reply in map order. A dead node's data is gone with
// it, so skipping it loses nothing. When a node says the map is stale, or
// cannot be reached, the map is fetched again (fanOutChanged) and the
// whole fan-out retried (mapRetries).
func (j *Job) fanOut(ctx context.Context, op wire.Op, flags uint16, req wire.Request) ([]client.Reply, error) {
	for attempt := 0; ; attempt++ {
		used := j.snapshot().Epoch
		replies, err := j.fanOutOnce(ctx, op, flags, req)
		var again bool
		if again, err = j.fanOutChanged(ctx, err, used, attempt); again {
			continue
		}
		return replies, err
	}
}

// patientOp reports whether a fan-out request waits out busy: version
// requests (confirm, drop-version) and prefix deletes, which a node
// refuses while a value they concern is being moved.
func patientOp(op wire.Op, flags uint16) bool {
	return op == wire.OpConfirm || op == wire.OpDropVersion || (op == wire.OpDelete && flags&wire.FlagPrefix != 0)
}

// fanOutExcept is fanOut (flags 0) to every node but those in skip.
func (j *Job) fanOutExcept(ctx context.Context, op wire.Op, req wire.Request, skip []string) ([]client.Reply, error) {
	for attempt := 0; ; attempt++ {
		used := j.snapshot().Epoch
		replies, err := j.fanOutOnce(ctx, op, 0, req, skip...)
		var again bool
		if again, err = j.fanOutChanged(ctx, err, used, attempt); again {
			continue
		}
		return replies, err
	}
}

// fanOutOnce sends req to every live node of the map but those in skip,
// at once (sendAll).
func (j *Job) fanOutOnce(ctx context.Context, op wire.Op, flags uint16, req wire.Request, skip ...string) ([]client.Reply, error) {
	ts := j.targets()
	ts = slices.DeleteFunc(ts, func(t target) bool { return t.dead || slices.Contains(skip, t.addr) })
	return j.sendAll(ctx, ts, op, flags, req)
}

// sendAll sends req, with each target's job fields, to every target in
// parallel and returns each one's reply in the order of ts, and their
// errors joined. Version requests and prefix deletes wait out busy
// (patientOp), a retired job's other requests too (retiredPatient); a
// retired job's node that refuses connections is dialed again until it
// counts as gone (goneCheck), and then, like one that answers revoked,
// holds none of its values.
func (j *Job) sendAll(ctx context.Context, ts []target, op wire.Op, flags uint16, req wire.Request) ([]client.Reply, error) {
	replies := make([]client.Reply, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := req
			r.Job, r.Token, r.Epoch = t.job, t.token, t.epoch
			do := func() (client.Reply, error) { return j.s.data.Do(ctx, t.addr, op, flags|t.flags, &r, nil, nil) }
			if patientOp(op, flags) {
				// A version request or prefix delete meets busy while
				// a value it concerns is being moved: it waits the move
				// out, or the value that arrives after it would be missed.
				replies[i], errs[i] = j.goneCheck(ctx, t.addr, false, func() (client.Reply, error) { return untilNotBusy(ctx, do) })
			} else {
				send := func() (client.Reply, error) { return j.retiredPatient(ctx, do) }
				replies[i], errs[i] = j.goneCheck(ctx, t.addr, true, func() (client.Reply, error) { return j.resendLost(ctx, op, flags, send) })
			}
			if j.holdsNone(errs[i]) {
				replies[i], errs[i] = client.Reply{}, nil
			}
			if errs[i] != nil && !strings.Contains(errs[i].Error(), t.addr) {
				// Each node's failure names its node (a context that
				// ended says nothing of where).
				errs[i] = fmt.Errorf("node %s: %w", t.addr, errs[i])
			}
		}()
	}
	wg.Wait()
	return replies, errors.Join(errs...)
}
