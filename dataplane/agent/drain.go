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
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// Metric names a draining node reports (controller.MetricDrainDone and
// controller.MetricDrainLeft; not imported, to keep the node free of the
// control plane's package).
const (
	metricDrainDone = "drain_done"
	metricDrainLeft = "drain_values_left"
)

// drainRetry is the pause between passes over the jobs while values are
// left (an owner refused, a map changed under the pass).
const drainRetry = 500 * time.Millisecond

// migrateParallel is the number of values in flight to the new owners.
const migrateParallel = 8

// drainer moves the node's data away once the controller has ordered a
// drain: pass after pass over the jobs the latest ack listed, each with a
// fresh map, until no value of those jobs is left here.
type drainer struct {
	self string // this node's address: never an owner of what it moves
	node *dataplane.Node
	ctl  *metaclient.Client
	data *client.Client

	mu   sync.Mutex
	jobs []wire.JobEpoch
	done bool
	left int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startDrainer(ctx context.Context, n *dataplane.Node, ctl *metaclient.Client, self string) *drainer {
	ctx, cancel := context.WithCancel(ctx)
	d := &drainer{self: self, node: n, ctl: ctl, data: client.New(client.Options{ConnsPerNode: 2}), cancel: cancel, left: -1}
	d.wg.Add(1)
	go d.run(ctx)
	return d
}

func (d *drainer) stop() {
	d.cancel()
	d.wg.Wait()
	_ = d.data.Close()
}

// setJobs records the jobs the controller lists for this node. A job that
// left the list was deregistered: its data is the controller's to drop.
func (d *drainer) setJobs(jobs []wire.JobEpoch) {
	d.mu.Lock()
	d.jobs = append(d.jobs[:0], jobs...)
	d.mu.Unlock()
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
	ms := []wire.Metric{{Name: metricDrainDone, Value: done}}
	if d.left >= 0 {
		ms = append(ms, wire.Metric{Name: metricDrainLeft, Value: float64(d.left)})
	}
	return ms
}

func (d *drainer) run(ctx context.Context) {
	defer d.wg.Done()
	for ctx.Err() == nil {
		d.mu.Lock()
		jobs := append([]wire.JobEpoch(nil), d.jobs...)
		d.mu.Unlock()
		left := d.pass(ctx, jobs)
		d.mu.Lock()
		d.left = left
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

// pass moves every listed job's values and returns how many are left.
func (d *drainer) pass(ctx context.Context, jobs []wire.JobEpoch) int64 {
	var left int64
	for _, je := range jobs {
		if len(je.Token) == 0 {
			left += d.node.JobValues(je.Job)
			continue
		}
		if err := d.moveJob(ctx, je); err != nil && ctx.Err() == nil {
			slog.Warn("drain: job not fully moved yet", "job", je.Job, "err", err)
		}
		left += d.node.JobValues(je.Job)
	}
	return left
}

// moveJob fetches the job's map and moves its values to their owners.
func (d *drainer) moveJob(ctx context.Context, je wire.JobEpoch) error {
	m, err := d.ctl.GetMap(ctx, je.Job, je.Token)
	if errors.Is(err, wire.ErrUnknownJob) {
		return nil // deregistered meanwhile; the drop order removes the data
	}
	if err != nil {
		return err
	}
	for _, n := range m.Nodes {
		if n.Addr == d.self && n.State != wire.NodeDraining {
			// Moving data by this map would send values where clients
			// do not look for them; wait for the controller's word.
			return fmt.Errorf("job %s's map (epoch %d) has this node %s, not draining", m.Job, m.Epoch, n.State)
		}
	}
	mj := dataplane.MigrateJob{Job: m.Job, Token: m.Token, Epoch: m.Epoch, Nodes: owners(m)}
	st, err := d.node.Migrate(ctx, mj, d.data, migrateParallel)
	if st.Moved+st.Skipped+st.Failed > 0 {
		slog.Info("drain: moved job data", "job", m.Job, "moved", st.Moved, "bytes", st.Bytes,
			"already_there", st.Skipped, "failed", st.Failed)
	}
	return err
}

// owners are the map's nodes other than draining ones: the set clients
// place keys over during a drain (pocket/drain.go). A dead node stays in
// it, as in the clients' placement; a value it would own cannot be moved
// (the put fails), stays here, and is lost only if the node is still dead
// when the drain's deadline passes. moveJob has checked that this node is
// draining in the map, so it is never its own values' owner: sending a
// value to itself, finding it there and deleting "the old copy" would
// lose it.
func owners(m *wire.PlacementMap) []placement.Node {
	var ns []placement.Node
	for _, n := range m.Nodes {
		if n.State != wire.NodeDraining {
			ns = append(ns, placement.Node{ID: n.Addr, Weight: n.Weight})
		}
	}
	return ns
}
