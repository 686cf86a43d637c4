package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pocketstore/pocket/client"
	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/internal/placement"
	"github.com/pocketstore/pocket/wire"
)

// drainRetry is the pause between passes over the jobs while values are
// left (an owner refused, a map changed under the pass).
const drainRetry = 500 * time.Millisecond

// migrateParallel is the number of values in flight to the new owners.
const migrateParallel = 8

// drainer moves the node's data away once the controller has ordered a
// drain: pass after pass over the jobs whose maps hold the node (its job
// table), each with a fresh map, until no value of those jobs is left here.
// It derives each job's token from the table (dataplane.Node.JobToken):
// no token travels to the node.
type drainer struct {
	self string // this node's address: never an owner of what it moves
	node *dataplane.Node
	ctl  mapSource
	data *client.Client
	log  *slog.Logger

	mu     sync.Mutex
	done   bool
	left   int64
	noRoom int64   // values the last pass could not move for lack of room
	notes  repeats // its repeated warnings (repeatEvery)

	// leaseDeadline ends the wait for leased chunks (one chunk lease
	// after the drain began; dataplane.MigrateJob.LeaseDeadline).
	leaseDeadline time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startDrainer(ctx context.Context, n *dataplane.Node, ctl mapSource, self string, log *slog.Logger) *drainer {
	ctx, cancel := context.WithCancel(ctx)
	d := &drainer{self: self, node: n, ctl: ctl, data: client.New(client.Options{ConnsPerNode: 2}), log: log, cancel: cancel, left: -1,
		leaseDeadline: time.Now().Add(n.ChunkLease())}
	d.wg.Add(1)
	go d.run(ctx)
	return d
}

func (d *drainer) stop() {
	d.cancel()
	d.wg.Wait()
	_ = d.data.Close()
}

// metrics are the heartbeat's drain figures. Done is reported only after a
// full pass found nothing left.
func (d *drainer) metrics() []wire.Metric {
	d.mu.Lock()
	defer d.mu.Unlock()
	done := 0.0
	if d.done {
		done = 1
	}
	ms := []wire.Metric{{Name: wire.MetricDrainDone, Value: done}}
	if d.left >= 0 {
		ms = append(ms, wire.Metric{Name: wire.MetricDrainLeft, Value: float64(d.left)},
			wire.Metric{Name: wire.MetricDrainNoRoom, Value: float64(d.noRoom)})
	}
	return ms
}

// run passes over the jobs until none of their values is left. It first
// waits for the puts admitted before the drain to end (the node set
// draining before the drainer started): a pass that counted no values
// while one of them was still being written would end the drain with
// that value left here (Node.AwaitCommits).
func (d *drainer) run(ctx context.Context) {
	defer d.wg.Done()
	if d.node.AwaitCommits(ctx) != nil {
		return
	}
	for ctx.Err() == nil {
		left, noRoom, whole := d.pass(ctx, d.node.PlacedJobs())
		d.mu.Lock()
		d.left, d.noRoom = left, nextNoRoom(d.noRoom, noRoom, whole)
		d.done = left == 0 && ctx.Err() == nil
		d.mu.Unlock()
		if left == 0 {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(drainRetry):
		}
	}
}

// nextNoRoom is the count of values without room to report after a pass
// that found got of them, the last reported being prev: a pass that did
// not reach every job's owners (whole false: no map, the controller away
// or this node marked dead in it meanwhile) does not lower it, since the
// count holds the drain past its deadline (a hostile re-check: after a
// 4 s stall, or a controller away 17 s, it read 0 and 26 values were
// lost).
func nextNoRoom(prev, got int64, whole bool) int64 {
	if whole {
		return got
	}
	return max(prev, got)
}

// pass moves every listed job's values and returns how many are left,
// how many of them their owners had no room for, and whether it tried
// every job's values with its map (whole: no map fetch failed). A job
// revoked meanwhile is the node's to drop, not to move.
func (d *drainer) pass(ctx context.Context, jobs []string) (left, noRoom int64, whole bool) {
	whole = true
	for _, job := range jobs {
		tok, ok := d.node.JobToken(job)
		if !ok {
			continue
		}
		st, err := d.moveJob(ctx, job, tok)
		noRoom += st.NoSpace
		if err != nil && !errors.Is(err, wire.ErrNoSpace) {
			whole = false
		}
		switch {
		case errors.Is(err, errNotDrainingYet):
			// The controller hands out the map with this node draining
			// once every node has heard of it: a pass or two.
			d.log.Debug("drain: job's map not out yet", "job", job, "err", err)
		case err != nil && ctx.Err() == nil:
			noteUnfinished(d.log, &d.notes, "drain", job, 0, d.node.JobValues(job), err)
		}
		left += d.node.JobValues(job)
	}
	return left, noRoom, whole
}

// errNotDrainingYet: the job's map the controller hands out does not show
// this node draining yet.
var errNotDrainingYet = errors.New("not draining in the job's map yet")

// moveJob fetches the job's map and moves its values to their owners.
func (d *drainer) moveJob(ctx context.Context, job string, tok []byte) (dataplane.MigrateStats, error) {
	m, err := d.ctl.GetMap(ctx, job, tok)
	if errors.Is(err, wire.ErrUnknownJob) {
		return dataplane.MigrateStats{}, nil // deregistered meanwhile; the drop order removes the data
	}
	if err != nil {
		return dataplane.MigrateStats{}, err
	}
	for _, n := range m.Nodes {
		if n.Addr == d.self && n.State != wire.NodeDraining {
			// Moving data by this map would send values where clients
			// do not look for them; wait for the controller's word.
			return dataplane.MigrateStats{}, fmt.Errorf("%w: job %s's map (epoch %d) has this node %s", errNotDrainingYet, m.Job, m.Epoch, n.State)
		}
	}
	mj := dataplane.MigrateJob{Job: m.Job, Token: m.Token, Epoch: m.Epoch, Nodes: owners(m), LeaseDeadline: d.leaseDeadline}
	st, err := d.node.Migrate(ctx, mj, d.data, migrateParallel)
	if st.Moved+st.Skipped+st.Failed+st.Dropped > 0 {
		d.log.Info("drain: moved job data", "job", m.Job, "moved", st.Moved, "bytes", st.Bytes,
			"already_there", st.Skipped, "failed", st.Failed, "no_room", st.NoSpace, "leased", st.Leased, "dropped_unconfirmed", st.Dropped)
	}
	return st, err
}

// owners are the map's nodes other than draining ones: the set clients
// place keys over during a drain (pocket/drain.go). A dead node stays in
// it, as in the clients' placement; a value it would own cannot be moved
// (the put fails), stays here, and is lost only if the node is still dead
// when the drain's deadline passes. moveJob has checked that this node is
// draining in the map, so it is never its own values' owner: sending a
// value to itself, finding it there and deleting "the old copy" would
// lose it. The mover (move.go) moves by the same set with
// dataplane.MigrateJob.Self, which keeps the values this node owns.
func owners(m *wire.PlacementMap) []placement.Node {
	var ns []placement.Node
	for _, n := range m.Nodes {
		if n.State != wire.NodeDraining {
			ns = append(ns, placement.Node{ID: n.Addr, Weight: n.Weight})
		}
	}
	return ns
}
