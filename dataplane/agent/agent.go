// Package agent connects a storage node to the controller: it registers
// the node with its tiers (capacity, and bandwidth measured by `pocket hw`
// or configured), sends a heartbeat every second with the tiers' use, the
// node's own rx/tx rates and CPU, each job's own rx/tx rates and bytes
// (wire.Heartbeat.Loads), and the revision its job table is at, and
// applies what the controller answers: the node's state and the job-table
// changes since that revision (jobs registered, revoked, their map epochs;
// dataplane.Node.ApplyAck). It reports the jobs whose data the node holds
// that the controller did not list (orphans) and drops those the
// controller names (dataplane.Node.HeldJobs, DropHeld), and the ended
// jobs whose persist-after-job values it keeps, which no drain may take
// away unasked (dataplane.Node.PersistedJobs). A draining node
// refuses new puts and moves its values to their new owners (drain.go,
// dataplane.Node.Migrate), reporting its progress in its heartbeats until
// the controller retires it; Run then ends with ErrRetired (the node has
// nothing left to serve), and with ErrAddressInUse when the controller
// finds another node serving at the address this one advertises. When one job's map changes (a node joins it,
// or leaves it only), the node moves that job's values whose owner
// changed and reports what is left (move.go). When a request shows the
// node's job table behind (a map epoch newer than it holds, a job it has
// not heard of), the agent heartbeats early, at most once per
// metaclient.DefaultWakeGap, so the table catches up at once.
package agent

import (
	"context"
	"log/slog"
	"runtime"
	"sort"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/telemetry"
	"github.com/pocketstore/pocket/wire"
)

// Config is what the agent needs.
type Config struct {
	Node *dataplane.Node
	Addr string // the data-plane address clients should use
	// Controller is the client the node registers and heartbeats with:
	// of one controller, or (metaclient.New given a comma-separated list)
	// of several on etcd, following the elected one.
	Controller *metaclient.Client
	// Mbps is each tier kind's bandwidth in Mb/s (from a device profile
	// or configured); a missing kind reports 0 and the controller assumes
	// its default node bandwidth.
	Mbps map[dataplane.Kind]float64
	// Sampler, when set, supplies CPU use and extra metrics.
	Sampler *telemetry.Sampler
	// OnState is told about state changes the controller orders.
	OnState func(wire.NodeState)
	// Logger receives the agent's events, with the job as a job
	// attribute (nil: slog.Default()). The node passes its own logger,
	// which carries its address.
	Logger *slog.Logger
}

// Errors Run ends with when the controller refuses the node for good; the
// same values as metaclient's, named here for the agent's users.
var (
	// ErrRetired: the controller drained the node and retired it (its
	// data moved to the jobs' other nodes; no map names it). The node
	// should stop serving and its process exit: `pocket node` exits 0.
	ErrRetired = metaclient.ErrRetired
	// ErrAddressInUse: another node process serves at the address this
	// node advertises (Config.Addr); it needs its own address.
	// `pocket node` exits non-zero.
	ErrAddressInUse = metaclient.ErrAddressInUse
)

// Run registers and heartbeats until ctx ends (returning ctx's error), or
// until the controller refuses the node for good: an error wrapping
// ErrRetired once the controller has retired the drained node, or
// ErrAddressInUse when another node serves at cfg.Addr (both wrap the
// controller's *wire.Error, which says why). The node keeps serving after
// Run returns; closing it is the caller's choice.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Node.AwaitSync()             // its job table comes from the controller
	cfg.Node.SetAdvertised(cfg.Addr) // the controller's orders name it
	a := &agent{cfg: cfg, ctx: ctx, last: time.Now(), lastStats: cfg.Node.Stats(), lastJobs: byJob(cfg.Node.JobTraffic())}
	a.move = startMover(ctx, cfg.Node, cfg.Controller, cfg.Addr, cfg.Logger)
	defer a.move.stop()
	defer a.stopDrain()
	return cfg.Controller.RunNode(ctx, metaclient.NodeLoop{
		Register: wire.NodeRegister{Addr: cfg.Addr, Tiers: a.tiers(), Cores: uint32(runtime.NumCPU()), Incarnation: cfg.Node.Incarnation()},
		Report:   a.report,
		OnAck:    a.ack,
		Renew:    a.renew,
		Wake:     cfg.Node.SyncWanted(),
	})
}

type agent struct {
	cfg       Config
	ctx       context.Context
	last      time.Time
	lastStats dataplane.Stats
	lastJobs  map[string]dataplane.JobTraffic // the per-job counters at the last heartbeat
	state     wire.NodeState
	drain     *drainer // set once the controller orders a drain
	move      *mover   // moves values of jobs whose maps changed (nil: none)
	lapsed    bool     // the lapse of the node's lease was logged
}

// renew takes an ack's lease (dataplane.Node.RenewLease), saying so when
// it ends a lapse that report logged.
func (a *agent) renew(sent time.Time, lease time.Duration) {
	a.cfg.Node.RenewLease(sent, lease)
	if a.lapsed && !a.cfg.Node.LeaseLapsed() {
		a.lapsed = false
		a.cfg.Logger.Info("agent: lease renewed: the node serves its jobs again")
	}
}

// tiers reports each tier's capacity, use and bandwidth.
func (a *agent) tiers() []wire.TierStat {
	var ts []wire.TierStat
	for _, t := range a.cfg.Node.Tiers() {
		u := t.Usage()
		ts = append(ts, wire.TierStat{Kind: uint8(t.Kind()), CapacityBytes: u.Capacity, UsedBytes: u.Used, Mbps: a.cfg.Mbps[t.Kind()]})
	}
	return ts
}

// deviceErrors appends each tier's device errors, once there are any, and
// its failing flag while the last is recent (wire.MetricDeviceFailingPrefix),
// so that the controller places no new job on a failing device. Before, a
// hostile trial's read-only and shrunk devices failed puts and gets, and
// the controller went on placing new jobs on them.
func (a *agent) deviceErrors(ms []wire.Metric, now time.Time) []wire.Metric {
	for _, t := range a.cfg.Node.Tiers() {
		de, ok := t.(interface{ DeviceErrors() dataplane.DeviceErrors })
		if !ok {
			continue
		}
		e, name := de.DeviceErrors(), t.Kind().String()
		if e.Reads+e.Writes == 0 {
			continue
		}
		ms = append(ms, wire.Metric{Name: wire.MetricDeviceErrorsPrefix + name, Value: float64(e.Reads + e.Writes)})
		if now.Sub(e.Last) < dataplane.DeviceFailingFor {
			ms = append(ms, wire.Metric{Name: wire.MetricDeviceFailingPrefix + name, Value: 1})
		}
	}
	return ms
}

// report fills a heartbeat. Rates are the node's own payload bytes over
// the interval, not the interface's: nodes that share a host (or loopback)
// would otherwise all report the host's total. So are each job's
// (hb.Loads, jobLoads). An early heartbeat (hb.Early: the node's job
// table is behind, dataplane.Node.SyncWanted) reports the same, but its
// rates, which the controller does not keep, start no new interval.
func (a *agent) report(hb *wire.Heartbeat) {
	if !a.lapsed && a.cfg.Node.LeaseLapsed() {
		a.lapsed = true
		a.cfg.Logger.Warn("agent: lease lapsed: no answer from the controller within it, so the node refuses its jobs' requests until one comes (dataplane/lease.go)")
	}
	now, st, jobs := time.Now(), a.cfg.Node.Stats(), a.cfg.Node.JobTraffic()
	hb.Incarnation = a.cfg.Node.Incarnation()
	secs := now.Sub(a.last).Seconds()
	if secs > 0 {
		hb.RxMbps = mbps(st.BytesIn-a.lastStats.BytesIn, secs)
		hb.TxMbps = mbps(st.BytesOut-a.lastStats.BytesOut, secs)
		hb.Loads = jobLoads(jobs, a.lastJobs, secs, wire.MaxJobLoads)
		hb.Metrics = append(hb.Metrics,
			wire.Metric{Name: "requests_per_sec", Value: float64(st.Requests-a.lastStats.Requests) / secs},
			wire.Metric{Name: "errors_per_sec", Value: float64(st.Errors-a.lastStats.Errors) / secs},
			wire.Metric{Name: "open_conns", Value: float64(st.Net.Open)})
	}
	if !hb.Early {
		// An early heartbeat's rates are not kept (wire.Heartbeat.Early):
		// the next heartbeat's cover the whole interval.
		a.last, a.lastStats, a.lastJobs = now, st, byJob(jobs)
	}
	hb.Since, hb.SnapRev, hb.SnapAfter = a.cfg.Node.JobSync()
	hb.Held = a.cfg.Node.HeldJobs(wire.MaxHeldJobs)
	hb.Tiers = a.tiers()
	hb.Metrics = a.deviceErrors(hb.Metrics, now)
	if a.drain != nil {
		hb.Metrics = append(hb.Metrics, a.drain.metrics()...)
	}
	// After the drain's figures: a job that ended before the drainer's
	// pass that found nothing left is listed here (a heartbeat never says
	// "done" without the values such a job keeps).
	hb.Persisted, hb.PersistedJobs, hb.PersistedBytes = a.cfg.Node.PersistedJobs(wire.MaxPersistedJobs)
	if a.move != nil {
		hb.Moves = a.move.moveReports()
	}
	if s := a.cfg.Sampler; s != nil && !hb.Early { // a sample starts the sampler's next interval
		if snap, err := s.Sample(); err == nil {
			hb.CPUPercent = snap.CPUBusyMean()
			hb.Metrics = append(hb.Metrics, wire.Metric{Name: "rss_bytes", Value: float64(snap.RSSBytes)})
			hb.Metrics = appendBlock(hb.Metrics, snap.Block)
		}
	}
}

// mbps is b bytes over secs seconds in Mb/s.
func mbps(b uint64, secs float64) float64 { return float64(b) * 8 / 1e6 / secs }

// jobLoads turns the node's per-job counters now and at the last
// heartbeat, secs seconds ago, into the heartbeat's per-job figures: each
// job's value bytes in and out over the interval in Mb/s, and the bytes
// it holds. A job counted from zero again (a new job under the id) counts
// from zero. With more than k jobs, the k busiest (the larger of rx and
// tx, then bytes held) are reported, the busiest first.
func jobLoads(now []dataplane.JobTraffic, last map[string]dataplane.JobTraffic, secs float64, k int) []wire.JobLoad {
	if len(now) == 0 || secs <= 0 {
		return nil
	}
	out := make([]wire.JobLoad, len(now))
	for i, jt := range now {
		prev := last[jt.Job]
		if jt.BytesIn < prev.BytesIn || jt.BytesOut < prev.BytesOut {
			prev = dataplane.JobTraffic{}
		}
		out[i] = wire.JobLoad{Job: jt.Job, RxMbps: mbps(jt.BytesIn-prev.BytesIn, secs),
			TxMbps: mbps(jt.BytesOut-prev.BytesOut, secs), Bytes: jt.Held}
	}
	sort.Slice(out, func(x, y int) bool {
		bx, by := max(out[x].RxMbps, out[x].TxMbps), max(out[y].RxMbps, out[y].TxMbps)
		if bx != by {
			return bx > by
		}
		if out[x].Bytes != out[y].Bytes {
			return out[x].Bytes > out[y].Bytes
		}
		return out[x].Job < out[y].Job
	})
	return out[:min(len(out), k)]
}

// byJob indexes counters by job.
func byJob(jts []dataplane.JobTraffic) map[string]dataplane.JobTraffic {
	m := make(map[string]dataplane.JobTraffic, len(jts))
	for _, jt := range jts {
		m[jt.Job] = jt
	}
	return m
}

// maxBlockMetrics bounds the block-latency figures per heartbeat (two per
// device and operation), well under wire.MaxMetrics.
const maxBlockMetrics = 32

// appendBlock adds the eBPF block latency of each device and operation
// that saw I/O in the interval, as "blk_p99_us:DEV:OP" and
// "blk_per_sec:DEV:OP", for `pocket status` and the controller.
func appendBlock(ms []wire.Metric, bl []telemetry.BlockLatency) []wire.Metric {
	added := 0
	for _, b := range bl {
		if b.PerSec <= 0 || added+2 > maxBlockMetrics {
			continue
		}
		suffix := ":" + b.Device + ":" + b.Op
		ms = append(ms,
			wire.Metric{Name: "blk_p99_us" + suffix, Value: float64(b.P99.Microseconds())},
			wire.Metric{Name: "blk_per_sec" + suffix, Value: b.PerSec})
		added += 2
	}
	return ms
}

// ack applies the controller's answer.
func (a *agent) ack(ack *wire.NodeAck) {
	a.cfg.Node.ApplyAck(ack)
	a.cfg.Node.DropHeld(ack.Drop)
	if ack.State != a.state {
		a.state = ack.State
		a.cfg.Node.SetDraining(ack.State == wire.NodeDraining)
		a.cfg.Logger.Info("agent: controller set node state", "state", ack.State.String())
		if a.cfg.OnState != nil {
			a.cfg.OnState(ack.State)
		}
	}
	if a.move != nil {
		// Before the drainer starts: the mover's check in progress ends
		// first, and none starts while the node drains.
		a.move.setDraining(ack.State == wire.NodeDraining)
		a.move.onAck(ack)
	}
	switch {
	case ack.State == wire.NodeDraining:
		if a.drain == nil {
			a.drain = startDrainer(a.ctx, a.cfg.Node, a.cfg.Controller, a.cfg.Addr, a.cfg.Logger)
		}
	case a.drain != nil:
		// The controller no longer wants the drain (it restarted and
		// knows the node as active): stop moving data.
		a.drain.stop()
		a.drain = nil
	}
}

func (a *agent) stopDrain() {
	if a.drain != nil {
		a.drain.stop()
	}
}
