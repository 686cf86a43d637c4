package pocket

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/wire"
)

// objectWrite is one version of a chunked object being written: its chunks
// go out leased, then commit confirms them on every node that took some
// and publishes the manifest (see the package doc, "Object layout").
type objectWrite struct {
	j     *Job
	key   string
	ver   uint64
	flags uint16 // the put's options (persist)

	mu    sync.Mutex
	sent  map[string]uint64 // node -> chunks it took
	nodes []string          // the same nodes, in the order first used
}

func (j *Job) newObject(key string, flags uint16) *objectWrite {
	return &objectWrite{j: j, key: key, ver: newVersion(), flags: flags, sent: map[string]uint64{}}
}

// putChunk stores chunk i (1..n) leased on its node.
func (w *objectWrite) putChunk(ctx context.Context, i int, part []byte) error {
	key := wire.AppendChunkKey(nil, []byte(w.key), w.ver, i)
	flags := w.flags | wire.FlagChunk | wire.FlagLease
	_, addr, err := w.j.doReq(ctx, wire.OpPut, flags, key, uint32(i), reqExtra{version: w.ver}, part, nil)
	if err != nil {
		return err
	}
	w.mu.Lock()
	if w.sent[addr] == 0 {
		w.nodes = append(w.nodes, addr)
	}
	w.sent[addr]++
	w.mu.Unlock()
	return nil
}

// settle bounds how long the calls a put or delete must see to their end
// (a manifest's put, the cleanup of replaced chunks) run on after their
// caller's context has ended (outlive), so that a caller's cancellation
// cannot leave a manifest half-published or chunks unreclaimed. A variable
// for tests.
var settle = 10 * time.Second

// outlive returns a context that ctx's end does not cancel, for a call the
// SDK must see to its end: it ends settle after ctx ends (never, for a ctx
// that cannot end), or with its cancel. Before, such calls ran on a
// context of their own bounded by settle from their start, so a caller
// that gave a put 60 s had it fail after 10 s with "context deadline
// exceeded", its own deadline 50 s away, when a node was frozen that long
// (a new user's trial: a small put and a delete, which both took effect
// when the node resumed).
func outlive(ctx context.Context) (context.Context, context.CancelFunc) {
	sctx, cancel := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), callerKey{}, ctx))
	d := settle
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(d, cancel) })
	return sctx, func() {
		stop()
		cancel()
	}
}

// callerKey is the context value outlive sets: the caller's context,
// which givenUp reads.
type callerKey struct{}

// givenUp returns, for a call running on after its caller gave up
// (outlive), an error marked not sent when that caller's context has
// ended: such a call sends no request it has not sent yet (doReq), only
// sees the ones it sent to their end, and its cleanup, which runs on
// contexts of its own. Before, a put given up while it waited for a newer
// map (a map held back for a silent node) was sent once the map was out,
// up to settle later, and replaced values other clients had put and been
// told stored meanwhile (a trial: an acknowledged 41 read back as the
// given-up 40, 1 s after the caller's error).
func givenUp(ctx context.Context) error {
	caller, _ := ctx.Value(callerKey{}).(context.Context)
	if caller == nil || caller.Err() == nil {
		return nil
	}
	return fmt.Errorf("%w (%w)", caller.Err(), errGivenUp)
}

// errGivenUp is givenUp's error beside the caller's. It is no node's
// answer: no code, not marked not sent, so no step that goes on after a
// request that certainly did nothing (unexecuted: a read-and-delete going
// on to the live owner, goneCheck sending again) takes it for one; a
// review found a first version, marked unavailable and not sent, making
// a given-up consuming get take another client's newer value, and a
// retired job's given-up delete send to the live owner after its old
// owner's was cut short. A chunked put's commit drops its chunks on it.
var errGivenUp = errors.New("pocket: not sent: the caller gave up before the request was sent")

// commit confirms every chunk (a node that lost some, or let their lease
// run out, fails the put), then publishes the manifest, the put's one
// visible step, and drops the chunks of the version it replaced. A put that
// fails before the manifest drops its own chunks, as does one whose
// manifest put certainly changed nothing (refused, or never sent). One
// whose manifest put may have been written and got no reply (a lost
// connection, the settle bound) has an unknown outcome: the manifest may
// be published, so nothing is dropped, neither its chunks nor those of
// the version it may have replaced, which is unknown (the package doc's
// "What is not reclaimed"). That manifest put is never sent again
// (resendable): a second copy could republish the version over another
// writer's, or be refused while the first copy stands.
func (w *objectWrite) commit(ctx context.Context, m wire.Manifest) error {
	if err := w.j.fences.await(ctx, w.key, false); err != nil {
		w.abortUnconfirmed()
		return err
	}
	if err := w.confirm(ctx); err != nil {
		w.abort()
		return err
	}
	sctx, cancel := outlive(ctx)
	defer cancel()
	x := reqExtra{version: w.ver, objectSize: m.Size}
	r, _, err := w.j.doReq(sctx, wire.OpPut, w.flags|wire.FlagManifest, []byte(w.key), 0, x, wire.AppendManifest(nil, m), nil)
	switch {
	case err != nil && (unexecuted(err) || errors.Is(err, errGivenUp)):
		w.abort()
		return err
	case err != nil:
		return fmt.Errorf("manifest of version %016x: outcome unknown (the value may be stored; its chunks are kept): %w", w.ver, err)
	}
	if r.Meta.Version != w.ver {
		// The version replaced is this one only when this very manifest
		// was put before (TestManifestPutAgainKeepsItsChunks commits
		// twice): dropping it would empty the value just published.
		w.j.dropReplaced(r.Meta.Version)
	}
	return nil
}

// unexecuted reports whether err says the request certainly changed
// nothing: a node answered it with a refusal, or it never reached the node
// (client.NotSent). A connection lost after it was written, or a context
// that ended meanwhile, leaves that open. A call given up (errGivenUp,
// which may wrap the node's busy refusal) is not reported: the callers
// that go on after an unexecuted request (to another owner, another map)
// must stop there.
func unexecuted(err error) bool {
	var we *wire.Error
	return !errors.Is(err, errGivenUp) &&
		(client.NotSent(err) || errors.As(err, &we) && we.Code != wire.CodeUnavailable && we.Code != wire.CodeClosed)
}

// confirm ends the chunks' leases, one request per node that took chunks,
// each of which must hold exactly the chunks it took (fewer: a lease ran
// out, and the put fails). Nodes never move a chunk of a version that is
// still leased (dataplane/migrate.go, "Leased chunks stay"), so the count
// holds whatever changes the job's map goes through meanwhile, a node
// joining or leaving the map or draining from the cluster: a node leaves
// a map only once its values have moved, which waits for this confirm.
// The request follows the map to its new epoch (doAt) and waits out a node
// that answers busy (doAtPatient).
func (w *objectWrite) confirm(ctx context.Context) error {
	errs := make([]error, len(w.nodes))
	var wg sync.WaitGroup
	for i, addr := range w.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := w.j.doAtPatient(ctx, addr, wire.OpConfirm, reqExtra{version: w.ver})
			if err == nil && r.Meta.Count != w.sent[addr] {
				err = fmt.Errorf("%w: node %s holds %d of the %d chunks it took (its chunk lease expired, or the node restarted or left the job's map and its chunks went with it): nothing was published, put the value again", wire.ErrConflict, addr, r.Meta.Count, w.sent[addr])
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// abort drops the version's chunks everywhere, on a context of its own.
func (w *objectWrite) abort() {
	w.j.dropVersion(w.ver)
}

// abortUnconfirmed is abort before any chunk was confirmed: a node's
// chunk lease frees what the drop does not reach, so the drop does not
// wait for an away controller (noControllerWait). Before, a chunked put
// to nodes whose leases had lapsed with the controller down waited for it
// twice, once for its chunk puts and again for their drop (a trial: 6 s
// with a 3 s ControllerWait, where every other call waited 3 s).
func (w *objectWrite) abortUnconfirmed() {
	w.j.dropVersionCtx(context.WithValue(context.Background(), noControllerWait{}, true), w.ver)
}

// noControllerWait is a context value: a request refused as stale, by a
// node whose lease lapsed or that moved on, ends with that refusal,
// without fetching the job's map from the controller (mapChanged).
type noControllerWait struct{}

// dropReplaced drops the chunks of a replaced or removed manifest's
// version (0: there was none).
func (j *Job) dropReplaced(ver uint64) {
	if ver != 0 {
		j.dropVersion(ver)
	}
}

// dropVersion deletes every chunk of version ver on every live node of the
// job. It runs on a context of its own: it is cleanup that a caller's
// cancellation must not cut short. A node that cannot be reached keeps its
// chunks until the job ends (they are confirmed, so no lease frees them).
//
// While a node drains, its chunks of ver may be on their way to their new
// owners (dataplane/migrate.go): the draining node answers busy until no
// chunk of ver is in flight, so the drop is sent there first, waiting that
// out, and only then to the others, where every moved chunk has arrived.
func (j *Job) dropVersion(ver uint64) { j.dropVersionCtx(context.Background(), ver) }

// dropVersionCtx is dropVersion on parent's values (not its end).
func (j *Job) dropVersionCtx(parent context.Context, ver uint64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), settle)
	defer cancel()
	_, _ = j.drainingFirst(ctx, wire.OpDropVersion, ver)
}

// drainingFirst sends a version request (drop-version) to every live node
// of the job in passes (drainingFirstOnce), again whole while the job's
// map changed during the last one (up to mapRetries times more, within
// ctx), and returns the last pass's replies.
//
// A pass orders the nodes by the map it starts with, and values move by
// the map the nodes hold: when the map changes meanwhile (a node that
// joined a job's map leaves it again, so values that were moving to it
// now move away from it), chunks of the version can move onto a node
// after the pass asked it. Its mark of the version as dropped refuses
// them for one chunk lease only (dataplane/versions.go), and a change can
// outlast that: TestHistoryGrowShrink found a chunk moved there 265 ms
// after the drop, under its 200 ms lease, left until the job ended
// (TestDropSpansMapChange). A pass that ends on the map it started with
// met no such change: a node that had moved on to a newer map refuses a
// request of the older one as stale, and the refusal fetches the newer map.
func (j *Job) drainingFirst(ctx context.Context, op wire.Op, ver uint64) ([]client.Reply, error) {
	for pass := 0; ; pass++ {
		used := j.snapshot().Epoch
		replies, err := j.drainingFirstOnce(ctx, op, ver)
		if pass == mapRetries || ctx.Err() != nil || j.snapshot().Epoch == used {
			return replies, err
		}
	}
}

// drainingFirstOnce is one pass of drainingFirst: the nodes group by group
// in the order values move between them (movePhases): the nodes values
// leave (draining ones, and while a node joins every node that is not
// joining), all of a group at once and each waiting while it answers busy
// (a chunk of the version is being moved), before the next group; the
// last group, which by then holds every chunk that moved to it, and any
// node a newer map added meanwhile, as a fan-out. It returns the replies
// that came.
func (j *Job) drainingFirstOnce(ctx context.Context, op wire.Op, ver uint64) ([]client.Reply, error) {
	phases := j.movePhases()
	var replies []client.Reply
	var asked []string
	var errs []error
	for _, ts := range phases[:max(len(phases)-1, 0)] {
		rs := make([]client.Reply, len(ts))
		es := make([]error, len(ts))
		var wg sync.WaitGroup
		for i, t := range ts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rs[i], es[i] = j.doAtPatient(ctx, t.addr, op, reqExtra{version: ver})
			}()
			asked = append(asked, t.addr)
		}
		wg.Wait()
		replies, errs = append(replies, rs...), append(errs, es...)
	}
	rest, err := j.fanOutExcept(ctx, op, wire.Request{Version: ver}, asked)
	return append(replies, rest...), errors.Join(append(errs, err)...)
}

// doAtPatient is doAt retried while the node answers busy (untilNotBusy).
func (j *Job) doAtPatient(ctx context.Context, addr string, op wire.Op, x reqExtra) (client.Reply, error) {
	return untilNotBusy(ctx, func() (client.Reply, error) { return j.doAt(ctx, addr, op, 0, x) })
}

// untilNotBusy calls send again while it answers busy (a node is moving
// a value the request concerns: dataplane/migrate.go), backing off from 1
// to 50 ms, until ctx ends; it returns the last answer.
func untilNotBusy(ctx context.Context, send func() (client.Reply, error)) (client.Reply, error) {
	return untilNotBusyFor(ctx, 0, send)
}

// untilNotBusyFor is untilNotBusy that also gives up after limit (0: no
// limit), returning the last (busy) answer.
func untilNotBusyFor(ctx context.Context, limit time.Duration, send func() (client.Reply, error)) (client.Reply, error) {
	var deadline time.Time
	if limit > 0 {
		deadline = time.Now().Add(limit)
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		r, err := send()
		if !errors.Is(err, wire.ErrBusy) || !deadline.IsZero() && time.Now().After(deadline) {
			return r, err
		}
		select {
		case <-ctx.Done():
			// The caller's context ended while it waited out busy: its
			// error says so, and keeps the node's refusal (nothing was
			// done) for errors.Is and unexecuted.
			return r, fmt.Errorf("%w (the node had answered: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		if gerr := givenUp(ctx); gerr != nil {
			return r, fmt.Errorf("%w (the node had answered: %w)", gerr, err)
		}
	}
}

// dropWait bounds how long a retired job's request waits out a node that
// answers busy while it drops the job's temporary values (the job was
// deregistered moments ago: dataplane's dropping state, which ends with
// the drop). A DRAM tier dropped 400,000 8-byte values in 0.15 s on the
// 2-core test machine; a loaded node, an NVMe tier or tens of millions of
// values take longer, and a call whose ctx ends first fails busy.
const dropWait = 60 * time.Second

// retiredPatient sends a request of a retired job (holdsNone), again while
// the node answers busy, for up to dropWait: a node still dropping the
// job's temporary values may hold its persisted ones, and answers revoked
// (holds none) only once the drop has ended. A live job's request is sent
// once.
func (j *Job) retiredPatient(ctx context.Context, send func() (client.Reply, error)) (client.Reply, error) {
	if !j.retired.Load() {
		return send()
	}
	return untilNotBusyFor(ctx, dropWait, send)
}

// keyPatient sends a single-key request: a retired job's as
// retiredPatient; a live job's again while the node answers busy, for up
// to settle. A request refused busy did nothing: the node bounds the
// bytes of one job's puts still arriving (dataplane/unfinished.go), and a
// node's blocking tier the device calls in flight, whoever makes them.
// Before, only puts were sent again, and another job's flood of NVMe
// requests failed 10-38 % of a job's gets ("too many device operations in
// flight", a hostile trial).
func (j *Job) keyPatient(ctx context.Context, send func() (client.Reply, error)) (client.Reply, error) {
	if !j.retired.Load() {
		return untilNotBusyFor(ctx, settle, send)
	}
	return j.retiredPatient(ctx, send)
}

// listPatient sends a listing's page again while the node answers busy:
// a node queues only so many listings and prefix deletes at once
// (dataplane/lane.go) and refuses the rest busy. A retired job's page
// waits at most dropWait, as retiredPatient's.
func (j *Job) listPatient(ctx context.Context, send func() (client.Reply, error)) (client.Reply, error) {
	var limit time.Duration
	if j.retired.Load() {
		limit = dropWait
	}
	return untilNotBusyFor(ctx, limit, send)
}
