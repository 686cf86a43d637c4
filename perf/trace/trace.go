// Package trace replays a trace of jobs arriving and leaving against a
// cluster through the SDK, and samples what the cluster did: nodes,
// bandwidth allocated from the jobs' hints, bandwidth the nodes measured,
// and the nodes in each job's map. It is the elasticity demo behind
// `pocket trace`: Pocket's Figure-13-like run of a sort, then a video
// pipeline, then another sort, and a long job whose load rises and falls
// while it runs (Elastic), against `pocket up --autoscale`, reporting the
// node-seconds used against a cluster sized statically for the peak.
//
// Each job registers with its hints, drives a load at its own rate (or
// rates, phase by phase), and deregisters when its time is up. A sort is a
// shuffle: puts for the first half of its run, then gets of what it
// wrote. A video pipeline puts and gets at once. Values are written with
// contents derived from their key and checked on every get, and before a
// job deregisters it reads back every key it wrote and checks it, so the
// run also shows that no value was lost or corrupted while nodes came and
// (drained) went underneath or values moved between a job's nodes. Key
// spaces wrap so a job's data stays within its capacity hint.
//
// Times in a JobSpec are trace seconds; Config.Timescale turns them into
// wall time (0.5 runs the trace twice as fast). Rates are wall rates.
package trace

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// Config is a trace run.
type Config struct {
	Store *pocket.Store
	// Status reads the cluster's state for the samples.
	Status func(context.Context) (*wire.ClusterStatus, error)
	Jobs   []JobSpec
	// Timescale is wall time per trace time (1).
	Timescale float64
	// Length is the trace's length (the last job's end plus 15 s).
	Length time.Duration
	// Sample is the wall time between samples (1 s).
	Sample time.Duration
	// Workers per job (4).
	Workers int
	// Band is the share of a node's bandwidth the cluster fills before it
	// adds a node (the autoscaler's high band, 0.8): the static cluster
	// without per-job growth is sized with it, as the run's was.
	Band float64
	// NodeMbps is the bandwidth each node reports and MinNodes the
	// fewest nodes the cluster runs: with NodeMbps above 0 the result
	// carries the trace's Floor.
	NodeMbps float64
	MinNodes int
	Logf     func(format string, args ...any)
}

// JobResult is what one job did.
type JobResult struct {
	Spec    JobSpec
	Name    string
	ID      string
	Nodes   int // nodes in its map at registration
	Puts    int64
	Gets    int64
	Bytes   int64
	Errors  int64
	FirstEr string
	// Written is the number of distinct keys the job wrote; Verified how
	// many of them read back whole and right before it deregistered.
	Written, Verified int
	// PhaseMbps is the load achieved in each phase of the spec (megabits
	// of puts and gets per wall second).
	PhaseMbps []float64
	// From the samples taken while the job was registered: the fewest and
	// most nodes in its map, how many times its map's epoch changed, and
	// the node-seconds (trace time) of load beyond its nodes' bandwidth.
	MinNodes, MaxNodes, MapChanges int
	OverNodeSeconds                float64
	// NeedMbps is the most the job needed at any sample: the larger of
	// its allotment and its own measured traffic. A cluster without
	// per-job growth must hold it for the job's whole run.
	NeedMbps float64
	// Interrupted: the run ended while the job ran; it was not verified.
	Interrupted bool
}

// Result is a finished run.
type Result struct {
	Points    []Point
	Jobs      []JobResult
	Timescale float64
	Length    time.Duration // trace time
	Band      float64       // Config.Band
	// Node-seconds in trace time: used, and those of a static cluster of
	// PeakNodes (the run's own peak) for the whole trace.
	NodeSeconds       float64
	PeakNodes         int
	StaticNodeSeconds float64
	// NoGrowthNodes is the static cluster a controller without per-job
	// growth needs for the trace: each job holds its NeedMbps from
	// registration to deregistration, packed at Band of the nodes'
	// bandwidth, at the most crowded sample (and at least PeakNodes).
	// NoGrowthNodeSeconds is NoGrowthNodes for the whole trace.
	NoGrowthNodes       int
	NoGrowthNodeSeconds float64
	// PeakSeconds is how long (trace time) the cluster ran PeakNodes: a
	// brief overshoot raises the static cluster, and so lowers Ratio.
	PeakSeconds float64
	// OverNodeSeconds integrates Point.Over: the node-seconds the load
	// needed beyond the nodes that ran, had each carried only its
	// bandwidth.
	OverNodeSeconds float64
	// FloorBand and FloorFull are the trace's Floor on the run's nodes
	// (Config.NodeMbps, MinNodes): filled to Band, and filled whole. Both
	// are 0 when the run did not say its nodes' bandwidth.
	FloorBand, FloorFull float64
	// Interrupted is the trace time at which the run's context ended it
	// (0: it ran whole): the figures cover the time run, and the jobs
	// still running then were neither verified nor counted as failing.
	Interrupted float64
	// Decisions are lines the caller adds for the report (the
	// autoscaler's decisions); Setup describes the cluster and machine.
	Decisions []string
	Setup     string
}

// Ratio is node-seconds used over a static cluster of the run's own
// peak.
func (r *Result) Ratio() float64 {
	if r.StaticNodeSeconds == 0 {
		return 0
	}
	return r.NodeSeconds / r.StaticNodeSeconds
}

// NoGrowthRatio is node-seconds used over the static cluster a
// controller without per-job growth needs for the trace. It does not
// measure the controller that ran: a run without per-job growth, which
// overloads a job's nodes instead, is compared with the same cluster.
func (r *Result) NoGrowthRatio() float64 {
	if r.NoGrowthNodeSeconds == 0 {
		return 0
	}
	return r.NodeSeconds / r.NoGrowthNodeSeconds
}

// FloorRatio is Result.FloorBand over a static cluster of the run's own
// peak: the lowest Ratio a controller keeping its nodes within the band
// could reach on this trace (0 when the floor is unknown).
func (r *Result) FloorRatio() float64 {
	if r.StaticNodeSeconds == 0 {
		return 0
	}
	return r.FloorBand / r.StaticNodeSeconds
}

// Errors is the jobs' errors in all.
func (r *Result) Errors() int64 {
	var n int64
	for _, j := range r.Jobs {
		n += j.Errors
	}
	return n
}

// Followed returns the jobs whose nodes the report shows over time.
func (r *Result) Followed() []JobResult {
	var out []JobResult
	for _, j := range r.Jobs {
		if j.Spec.Follow {
			out = append(out, j)
		}
	}
	return out
}

func (c *Config) defaults() error {
	if c.Store == nil || c.Status == nil {
		return errors.New("trace: Store and Status are required")
	}
	c.Jobs = slices.Clone(c.Jobs)
	if err := checkJobs(c.Jobs); err != nil {
		return err
	}
	if c.Timescale <= 0 {
		c.Timescale = 1
	}
	if c.Sample <= 0 {
		c.Sample = time.Second
	}
	if !(c.Band > 0 && c.Band <= 1) { // NaN too
		c.Band = 0.8
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.Length <= 0 {
		c.Length = lengthOf(c.Jobs)
	}
	return nil
}

// lengthOf is a trace's default length: the last job's end plus 15 s.
func lengthOf(jobs []JobSpec) time.Duration {
	var l time.Duration
	for _, j := range jobs {
		l = max(l, j.Arrive+j.Run+15*time.Second)
	}
	return l
}

// wall converts trace time to wall time.
func (c *Config) wall(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.Timescale)
}

// Run replays the trace and returns its samples and totals. It fails
// before anything runs on a spec that cannot run (see JobSpec). When ctx
// ends the run it returns what ran (Result.Interrupted) with ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	start := time.Now()
	res := &Result{Timescale: cfg.Timescale, Length: cfg.Length, Band: cfg.Band, Jobs: make([]JobResult, len(cfg.Jobs))}
	sctx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan []Point, 1)
	go func() { sampled <- sample(sctx, &cfg, start) }()
	var wg sync.WaitGroup
	for i := range cfg.Jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Jobs[i] = runJob(ctx, &cfg, cfg.Jobs[i], start)
		}()
	}
	wg.Wait()
	err := sleepUntil(ctx, start.Add(cfg.wall(cfg.Length)))
	stopSampling()
	res.Points = <-sampled
	if err != nil {
		// Interrupted: the report covers the time run (a new user's
		// Ctrl-C got "256 errors" for its running job and no report).
		res.Interrupted = time.Since(start).Seconds() / cfg.Timescale
		res.Length = time.Duration(res.Interrupted * float64(time.Second))
	}
	res.totals()
	if err == nil { // the floors are the whole trace's
		res.FloorBand, _ = Floor(cfg.Jobs, cfg.Length, cfg.NodeMbps, cfg.Band, cfg.MinNodes)
		res.FloorFull, _ = Floor(cfg.Jobs, cfg.Length, cfg.NodeMbps, 1, cfg.MinNodes)
	}
	return res, err
}

// totals integrates node counts over the samples (trace time) and fills
// each job's node range and map changes from them.
func (r *Result) totals() {
	for i, p := range r.Points {
		r.PeakNodes = max(r.PeakNodes, p.Nodes)
		if i > 0 {
			dt := p.T - r.Points[i-1].T
			r.NodeSeconds += float64(r.Points[i-1].Nodes) * dt
			r.OverNodeSeconds += r.Points[i-1].Over * dt
		}
	}
	if n := len(r.Points); n > 0 {
		r.StaticNodeSeconds = float64(r.PeakNodes) * (r.Points[n-1].T - r.Points[0].T)
	}
	for i := 1; i < len(r.Points); i++ {
		if r.Points[i-1].Nodes == r.PeakNodes {
			r.PeakSeconds += r.Points[i].T - r.Points[i-1].T
		}
	}
	for i := range r.Jobs {
		r.Jobs[i].fromSamples(r.Points)
	}
	r.noGrowth()
}

// noiseNodes is the share of a node by which a sum of measured needs may
// exceed a whole number of nodes and still fit them (noGrowth).
const noiseNodes = 0.02

// noGrowth sizes the static cluster without per-job growth: at each
// sample, the jobs registered then need their NeedMbps on nodes of that
// sample's per-node bandwidth filled to Band.
func (r *Result) noGrowth() {
	need := map[string]float64{}
	for _, j := range r.Jobs {
		need[j.Name] = j.NeedMbps
	}
	band := r.band()
	r.NoGrowthNodes = r.PeakNodes
	for _, p := range r.Points {
		if p.Active == 0 || p.CapMbps <= 0 {
			continue
		}
		sum := 0.0
		for name := range p.PerJob {
			sum += need[name]
		}
		perNode := band * p.CapMbps / float64(p.Active)
		// A sum within measurement noise (2 % of a node) over a whole
		// number of nodes needs that number, not one more: a sort
		// measured at 601 Mb/s beside its 600 Mb/s allotment turned 4
		// nodes into 5 (a new user's trial).
		r.NoGrowthNodes = max(r.NoGrowthNodes, int(math.Ceil(sum/perNode-noiseNodes)))
	}
	if n := len(r.Points); n > 0 {
		r.NoGrowthNodeSeconds = float64(r.NoGrowthNodes) * (r.Points[n-1].T - r.Points[0].T)
	}
}

// fromSamples fills the job's node range and map changes from the
// samples that list it. A change of the job's map (a grow, a shrink, or a
// drain of one of its nodes) bumps its epoch twice, at its start and at
// its end, so the changes are half the epochs it went through.
func (j *JobResult) fromSamples(pts []Point) {
	var first, epoch uint64
	j.MinNodes, j.MaxNodes, j.MapChanges, j.OverNodeSeconds, j.NeedMbps = 0, 0, 0, 0, 0
	seen := false
	for i, p := range pts {
		jp, ok := p.PerJob[j.Name]
		if !ok {
			continue
		}
		if i+1 < len(pts) {
			j.OverNodeSeconds += jp.Over * (pts[i+1].T - p.T)
		}
		if !seen {
			j.MinNodes, j.MaxNodes, first, epoch, seen = jp.Nodes, jp.Nodes, jp.Epoch, jp.Epoch, true
			j.NeedMbps = max(jp.AllocMbps, jp.OwnMbps)
			continue
		}
		j.MinNodes, j.MaxNodes = min(j.MinNodes, jp.Nodes), max(j.MaxNodes, jp.Nodes)
		j.NeedMbps = max(j.NeedMbps, jp.AllocMbps, jp.OwnMbps)
		epoch = max(epoch, jp.Epoch)
	}
	j.MapChanges = int((epoch - first + 1) / 2)
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
