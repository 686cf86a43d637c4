package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/wire"
)

// Moving values when one job's map changes
//
// The controller grows a job by adding a node to its map marked joining,
// and shrinks it by marking a node draining in that map only (the node
// stays active for its other jobs); either bumps the job's epoch, which
// reaches each node of the map in its heartbeat ack (the job table). The
// mover checks every job whose epoch changed: it fetches the job's map
// and, when the map has a joining or draining node, waits for the puts
// admitted by older maps still being written (a put whose payload came
// after the epoch changed is refused: dataplane.Node.AwaitMoveCommits),
// then moves the job's values
// whose owner changed to their owner under the live set (the map without
// its draining nodes, as clients place puts: pocket/drain.go), keeping
// those this node still owns (dataplane.MigrateJob.Self). A node draining
// in the map owns none, so all its values of the job go. It then counts
// what is left (dataplane.Node.Misplaced; chunks of a version its writer
// has not confirmed yet wait until it has, dataplane/migrate.go) and
// reports it in its heartbeats (wire.MoveReport: job, the map's epoch,
// values left), checking again
// every moveRetry until nothing is left. The controller finishes the
// change (joining -> active, or the leaving node out of the map; another
// epoch) once every non-joining live node of the map has reported 0 left
// for an epoch at or after the change's. A later map without a joining or
// draining node, or the job's revocation, ends the report.
//
// A map older than the epoch the table holds is one the controller has
// not published yet (it publishes once every node of the map knows the
// epoch): the mover asks again after moveUnpublished rather than move by
// an older map. A node joining the map holds nothing to move. A node that
// drains from the whole cluster leaves every move to its drainer
// (drain.go): the two never run at once.

const (
	// firstEpoch is a job's epoch at registration: a map with no change
	// in it (controller/registry.go).
	firstEpoch = 1
	// moveRetry is the pause before checking a job again while values
	// are left (an owner refused, a put landed meanwhile).
	moveRetry = 500 * time.Millisecond
	// moveUnpublished is the pause before fetching a map again when the
	// controller hands out an epoch older than the node's.
	moveUnpublished = 200 * time.Millisecond
	// moveCommitWait bounds a move's wait for the older maps' puts still
	// being written (dataplane.Node.AwaitMoveCommits); past it, the move
	// reports values left and tries again after moveRetry.
	moveCommitWait = 2 * time.Second
)

// mapSource fetches a job's current placement map; *metaclient.Client is
// one.
type mapSource interface {
	GetMap(ctx context.Context, job string, tok []byte) (*wire.PlacementMap, error)
}

// mover moves the values of jobs whose maps changed, one job at a time,
// from a queue the heartbeat acks fill (onAck).
type mover struct {
	self string // this node's address in the jobs' maps
	node *dataplane.Node
	ctl  mapSource
	data dataplane.Sender
	log  *slog.Logger

	mu       sync.Mutex
	draining bool                   // the node drains cluster-wide: the drainer moves
	cancel   context.CancelFunc     // the check in progress, if any ...
	checked  chan struct{}          // ... closed when it has ended
	epochs   map[string]uint64      // job -> its epoch in the job table (> 0: in its map)
	queue    []string               // jobs to check, each once
	queued   map[string]bool        // jobs in queue
	retries  map[string]*time.Timer // jobs to queue again later
	reports  map[string]moveEntry   // the latest report of each job moving
	notes    repeats                // its repeated warnings (repeatEvery)
	seq      uint64                 // reports recorded so far
	wake     chan struct{}          // a job was queued

	stopped context.CancelFunc
	wg      sync.WaitGroup
}

// moveEntry is a job's latest report and when the job's first was
// recorded (reports are sent oldest first).
type moveEntry struct {
	rep   wire.MoveReport
	seq   uint64
	since time.Time // when this node began moving by the report's epoch
}

func newMover(n *dataplane.Node, ctl mapSource, data dataplane.Sender, self string, log *slog.Logger) *mover {
	return &mover{self: self, node: n, ctl: ctl, data: data, log: log,
		epochs: map[string]uint64{}, queued: map[string]bool{}, retries: map[string]*time.Timer{},
		reports: map[string]moveEntry{}, wake: make(chan struct{}, 1)}
}

// startMover starts a mover over the controller's maps, sending values
// with its own data-plane client.
func startMover(ctx context.Context, n *dataplane.Node, ctl mapSource, self string, log *slog.Logger) *mover {
	data := client.New(client.Options{ConnsPerNode: 2})
	m := newMover(n, ctl, data, self, log)
	m.start(ctx, data.Close)
	return m
}

// start runs the worker until stop; closeData, when not nil, runs after.
func (m *mover) start(ctx context.Context, closeData func() error) {
	ctx, m.stopped = context.WithCancel(ctx)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.run(ctx)
		if closeData != nil {
			_ = closeData()
		}
	}()
}

// stop ends the worker and the pending retries, and waits.
func (m *mover) stop() {
	m.stopped()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for job, t := range m.retries {
		t.Stop()
		delete(m.retries, job)
	}
}

// onAck queues the jobs of an applied heartbeat ack whose epoch changed
// while this node is in their map, and forgets revoked jobs and jobs whose
// map no longer holds the node. A snapshot's last page also forgets the
// jobs the node's table no longer holds live.
//
// A job seen for the first time at its registration's epoch (firstEpoch)
// is checked only when the node holds some of its values: that map has no
// change in it, and a map that changes later changes its epoch. So a node
// that a job is registered on fetches no map for it; one GetMap per job
// and node follows each change of a map. A job seen first at a later epoch
// is checked: its map may be changing, and the controller ends the change
// only once every node of the map has reported, this one too, holding
// values or not (before, a node that first heard of a job at the epoch of
// a grow made right after registration, holding none of its values yet,
// never reported, and the grow never ended: TestPutsSpanMapChanges).
func (m *mover) onAck(ack *wire.NodeAck) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range ack.Jobs {
		je := &ack.Jobs[i]
		switch {
		case je.Revoked || je.Epoch == 0 || je.Out:
			m.forgetLocked(je.Job)
		case m.epochs[je.Job] != je.Epoch:
			_, seen := m.epochs[je.Job]
			m.epochs[je.Job] = je.Epoch
			if seen || je.Epoch > firstEpoch || m.holds(je.Job) {
				m.enqueueLocked(je.Job)
			}
		}
	}
	if ack.Full && !ack.More {
		for job := range m.epochs {
			if _, live := m.node.JobToken(job); !live {
				m.forgetLocked(job)
			}
		}
	}
}

// holds reports whether the node holds values of the job, in any tier.
func (m *mover) holds(job string) bool {
	for _, t := range m.node.Tiers() {
		if t.JobUsage([]byte(job)) > 0 {
			return true
		}
	}
	return false
}

// setDraining tells the mover whether the node drains cluster-wide. When
// it starts to, the check in progress is cancelled and waited for, so the
// drainer never moves beside it; when it stops, every job is checked again.
func (m *mover) setDraining(on bool) {
	m.mu.Lock()
	was, cancel, checked := m.draining, m.cancel, m.checked
	m.draining = on
	if was && !on {
		for job := range m.epochs {
			m.enqueueLocked(job)
		}
	}
	m.mu.Unlock()
	if on && !was && cancel != nil {
		cancel()
		<-checked
	}
}

// moveReports returns the recorded reports, oldest first, at most
// wire.MaxMoveReports.
func (m *mover) moveReports() []wire.MoveReport {
	m.mu.Lock()
	es := make([]moveEntry, 0, len(m.reports))
	for _, e := range m.reports {
		es = append(es, e)
	}
	m.mu.Unlock()
	if len(es) == 0 {
		return nil
	}
	slices.SortFunc(es, func(a, b moveEntry) int { return compareUint(a.seq, b.seq) })
	out := make([]wire.MoveReport, 0, min(len(es), wire.MaxMoveReports))
	for _, e := range es[:min(len(es), wire.MaxMoveReports)] {
		out = append(out, e.rep)
	}
	return out
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (m *mover) enqueueLocked(job string) {
	if m.queued[job] {
		return
	}
	m.queued[job] = true
	m.queue = append(m.queue, job)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *mover) forgetLocked(job string) {
	delete(m.epochs, job)
	delete(m.reports, job)
	if t := m.retries[job]; t != nil {
		t.Stop()
		delete(m.retries, job)
	}
}

// record keeps a job's latest report.
func (m *mover) record(rep wire.MoveReport) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.epochs[rep.Job]; !ok {
		return // forgotten meanwhile
	}
	e, ok := m.reports[rep.Job]
	if !ok {
		m.seq++
		e.seq = m.seq
	}
	if !ok || e.rep.Epoch != rep.Epoch {
		e.since = time.Now()
	}
	e.rep = rep
	m.reports[rep.Job] = e
}

// dropReport ends a job's report; its epoch stays known.
func (m *mover) dropReport(job string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.reports, job)
}

// forget forgets a job the controller no longer lists live.
func (m *mover) forget(job string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgetLocked(job)
}

// retryAfter queues the job again after d, unless a retry is pending.
func (m *mover) retryAfter(job string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.retries[job] != nil {
		return
	}
	m.retries[job] = time.AfterFunc(d, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.retries[job] == nil {
			return // forgotten or stopped
		}
		delete(m.retries, job)
		m.enqueueLocked(job)
	})
}

// run checks queued jobs until ctx ends.
func (m *mover) run(ctx context.Context) {
	for {
		job, ok := m.next(ctx)
		if !ok {
			return
		}
		if d := m.checkJob(ctx, job); d > 0 {
			m.retryAfter(job, d)
		}
	}
}

// next takes the first queued job, waiting for one.
func (m *mover) next(ctx context.Context) (string, bool) {
	for {
		m.mu.Lock()
		if len(m.queue) > 0 {
			job := m.queue[0]
			m.queue[0] = ""
			m.queue = m.queue[1:]
			delete(m.queued, job)
			m.mu.Unlock()
			return job, true
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-m.wake:
		}
	}
}

// checkJob checks one job, cancellable by setDraining, and returns when
// to check it again (0: not until its epoch changes).
func (m *mover) checkJob(ctx context.Context, job string) time.Duration {
	m.mu.Lock()
	epoch, known := m.epochs[job]
	if !known || m.draining {
		m.mu.Unlock()
		return 0
	}
	ctx, cancel := context.WithCancel(ctx)
	checked := make(chan struct{})
	m.cancel, m.checked = cancel, checked
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.cancel, m.checked = nil, nil
		m.mu.Unlock()
		cancel()
		close(checked)
	}()
	return m.check(ctx, job, epoch)
}

// check fetches the job's map and moves by it (moveByMap); epoch is the
// job's epoch in the node's table.
func (m *mover) check(ctx context.Context, job string, epoch uint64) time.Duration {
	tok, ok := m.node.JobToken(job)
	if !ok {
		m.forget(job) // revoked: the node drops its data
		return 0
	}
	mp, err := m.ctl.GetMap(ctx, job, tok)
	switch {
	case errors.Is(err, wire.ErrUnknownJob):
		m.forget(job)
		return 0
	case err != nil:
		if ok, held := m.notes.due("fetch/"+job, time.Now()); ok && ctx.Err() == nil {
			m.log.Warn("move: cannot fetch the job's map", "job", job, "err", err, "repeated", held)
		}
		return moveRetry
	case mp.Epoch < epoch:
		return moveUnpublished // not published yet
	}
	rep, moving, err := moveByMap(ctx, m.node, mp, m.data, m.self, m.leaseDeadline(job, mp.Epoch), m.log)
	if !moving {
		m.dropReport(job)
		return 0
	}
	m.record(rep)
	if err != nil && ctx.Err() == nil {
		noteUnfinished(m.log, &m.notes, "move", job, mp.Epoch, rep.Left, err)
	}
	if rep.Left > 0 {
		return moveRetry
	}
	return 0
}

// noteUnfinished logs a move (what: "move", "drain") of job by epoch
// that ended with err and left values still to move. It warns "not fully
// moved yet" only when that is so. A new user's trial read, at a
// deregistration, `WARN msg="move: job not fully moved yet" left=0
// err="... token revoked: the job was deregistered during the put"`: the
// job had ended while its values moved, the node had dropped them, and
// nothing was left, yet the line warned that the move was unfinished.
func noteUnfinished(log *slog.Logger, notes *repeats, what, job string, epoch uint64, left int64, err error) {
	attrs := []any{"job", job}
	if epoch != 0 { // a drain moves by the map of the moment, whichever its epoch
		attrs = append(attrs, "epoch", epoch)
	}
	attrs = append(attrs, "left", left, "err", err)
	switch {
	case errors.Is(err, wire.ErrRevoked) || errors.Is(err, wire.ErrUnknownJob):
		log.Info(what+": stopped: the job ended during its move (deregistered, or its token expired); its values go with it", attrs...)
	case left == 0:
		log.Info(what+": nothing of the job is left to move; a value failed on the way and is gone from this node since", attrs...)
	default:
		if ok, held := notes.due(what+"/"+job, time.Now()); ok {
			log.Warn(what+": job not fully moved yet", append(attrs, "repeated", held)...)
		}
	}
}

// leaseDeadline is when the move of job by epoch stops waiting for leased
// chunks (dataplane.MigrateJob.LeaseDeadline): one chunk lease after this
// node began moving by that epoch (now, when it has not yet).
func (m *mover) leaseDeadline(job string, epoch uint64) time.Time {
	m.mu.Lock()
	e, ok := m.reports[job]
	m.mu.Unlock()
	since := time.Now()
	if ok && e.rep.Epoch == epoch {
		since = e.since
	}
	return since.Add(m.node.ChunkLease())
}

// moveByMap moves the node's values of a job whose map mp changed to their
// owners under mp's live set, keeping those self owns, and reports what is
// left; leased chunks it waits for until leaseDeadline. moving is false
// when mp has no joining or draining node, or when self is not in mp or
// joins it: this node has nothing to move and no report to make.
func moveByMap(ctx context.Context, n *dataplane.Node, mp *wire.PlacementMap, s dataplane.Sender, self string,
	leaseDeadline time.Time, log *slog.Logger) (rep wire.MoveReport, moving bool, err error) {
	if !changing(mp) {
		return wire.MoveReport{}, false, nil
	}
	i := slices.IndexFunc(mp.Nodes, func(mn wire.MapNode) bool { return mn.Addr == self })
	if i < 0 || mp.Nodes[i].State == wire.NodeJoining {
		return wire.MoveReport{}, false, nil
	}
	live := owners(mp)
	// The older maps' puts still being written are stored or refused
	// first, so the count below misses none of them.
	wctx, cancel := context.WithTimeout(ctx, moveCommitWait)
	err = n.AwaitMoveCommits(wctx, mp.Job, mp.Epoch)
	cancel()
	if err != nil {
		rep = wire.MoveReport{Job: mp.Job, Epoch: mp.Epoch, Left: max(1, n.Misplaced(mp.Job, live, self))}
		return rep, true, fmt.Errorf("puts admitted by an older map are still being written: %w", err)
	}
	mj := dataplane.MigrateJob{Job: mp.Job, Token: mp.Token, Epoch: mp.Epoch, Nodes: live, Self: self, LeaseDeadline: leaseDeadline}
	st, err := n.Migrate(ctx, mj, s, migrateParallel)
	if st.Moved+st.Skipped+st.Dropped > 0 { // failures alone: noteUnfinished says so
		log.Info("move: moved job data after its map changed", "job", mp.Job, "epoch", mp.Epoch,
			"moved", st.Moved, "bytes", st.Bytes, "already_there", st.Skipped, "failed", st.Failed,
			"leased", st.Leased, "dropped_unconfirmed", st.Dropped)
	}
	rep = wire.MoveReport{Job: mp.Job, Epoch: mp.Epoch, Left: n.Misplaced(mp.Job, live, self)}
	return rep, true, err
}

// changing reports whether a map has a joining or draining node.
func changing(mp *wire.PlacementMap) bool {
	return slices.ContainsFunc(mp.Nodes, func(mn wire.MapNode) bool {
		return mn.State == wire.NodeJoining || mn.State == wire.NodeDraining
	})
}
