// Package trace replays a trace of jobs arriving and leaving against a
// cluster through the SDK, and samples what the cluster did: nodes,
// bandwidth allocated from the jobs' hints, bandwidth the nodes measured.
// It is the elasticity demo behind `pocket trace`: Pocket's Figure-13-like
// run of a sort, then a video pipeline, then another sort, against
// `pocket up --autoscale`, reporting the node-seconds used against a
// cluster sized statically for the peak.
//
// Each job registers with its hints, drives a load at its own rate, and
// deregisters when its time is up. A sort is a shuffle: puts for the first
// half of its run, then gets of what it wrote. A video pipeline puts and
// gets steadily. Values are written with contents derived from their key
// and checked on every get, so the run also shows that no value was lost
// or corrupted while nodes came and (drained) went underneath. Key spaces
// wrap so a job's data stays within its capacity hint.
//
// Times in a JobSpec are trace seconds; Config.Timescale turns them into
// wall time (0.5 runs the trace twice as fast). Rates are wall rates.
package trace

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/pocket"
	"github.com/pocketstore/pocket/wire"
)

// Kind is a job's access pattern.
type Kind string

// Job kinds.
const (
	Sort  Kind = "sort"  // puts, then gets of what was put
	Video Kind = "video" // puts and gets at once
)

// JobSpec is one job of a trace.
type JobSpec struct {
	Name      string
	Kind      Kind
	Arrive    time.Duration // trace time of registration
	Run       time.Duration // trace time until deregistration
	Mbps      float64       // offered load, megabits per wall second
	ValueSize int           // bytes per value
	Keys      int           // key space (wraps): Keys x ValueSize bytes at most
	Hints     pocket.Hints  // what the job tells the controller
}

// Pocket returns the default trace: a sort, a video pipeline that
// overlaps its end, a quiet spell, another sort; 120 trace seconds.
func Pocket() []JobSpec {
	const size = 256 << 10
	return []JobSpec{
		{Name: "sort1", Kind: Sort, Arrive: 10 * time.Second, Run: 25 * time.Second, Mbps: 600, ValueSize: size, Keys: 256,
			Hints: pocket.Hints{PeakMbps: 600, CapacityBytes: 256 * size}},
		{Name: "video", Kind: Video, Arrive: 30 * time.Second, Run: 35 * time.Second, Mbps: 200, ValueSize: size, Keys: 128,
			Hints: pocket.Hints{PeakMbps: 200, CapacityBytes: 128 * size}},
		{Name: "sort2", Kind: Sort, Arrive: 85 * time.Second, Run: 20 * time.Second, Mbps: 600, ValueSize: size, Keys: 256,
			Hints: pocket.Hints{PeakMbps: 600, CapacityBytes: 256 * size}},
	}
}

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
	Logf    func(format string, args ...any)
}

// Point is one sample. T is trace seconds.
type Point struct {
	T         float64
	Nodes     int     // nodes running: active and draining
	Active    int     // active nodes
	Jobs      int     // registered jobs
	AllocMbps float64 // the jobs' allotments
	UsedMbps  float64 // sum over nodes of max(rx, tx) they measured
	CapMbps   float64 // bandwidth of the active nodes
}

// JobResult is what one job did.
type JobResult struct {
	Name    string
	ID      string
	Nodes   int // nodes in its map at registration
	Puts    int64
	Gets    int64
	Bytes   int64
	Errors  int64
	FirstEr string
}

// Result is a finished run.
type Result struct {
	Points    []Point
	Jobs      []JobResult
	Timescale float64
	Length    time.Duration // trace time
	// Node-seconds in trace time: used, and those of a static cluster of
	// PeakNodes for the whole trace.
	NodeSeconds       float64
	PeakNodes         int
	StaticNodeSeconds float64
	// Decisions are lines the caller adds for the report (the
	// autoscaler's decisions); Setup describes the cluster and machine.
	Decisions []string
	Setup     string
}

// Ratio is node-seconds used over static peak provisioning.
func (r *Result) Ratio() float64 {
	if r.StaticNodeSeconds == 0 {
		return 0
	}
	return r.NodeSeconds / r.StaticNodeSeconds
}

func (c *Config) defaults() error {
	if c.Store == nil || c.Status == nil {
		return errors.New("trace: Store and Status are required")
	}
	if c.Timescale <= 0 {
		c.Timescale = 1
	}
	if c.Sample <= 0 {
		c.Sample = time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	if c.Length <= 0 {
		for _, j := range c.Jobs {
			c.Length = max(c.Length, j.Arrive+j.Run+15*time.Second)
		}
	}
	return nil
}

// wall converts trace time to wall time.
func (c *Config) wall(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.Timescale)
}

// Run replays the trace and returns its samples and totals.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	start := time.Now()
	res := &Result{Timescale: cfg.Timescale, Length: cfg.Length, Jobs: make([]JobResult, len(cfg.Jobs))}
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
	if err := sleepUntil(ctx, start.Add(cfg.wall(cfg.Length))); err != nil {
		stopSampling()
		<-sampled
		return nil, err
	}
	stopSampling()
	res.Points = <-sampled
	res.totals()
	return res, nil
}

// totals integrates node counts over the samples (trace time).
func (r *Result) totals() {
	for i, p := range r.Points {
		r.PeakNodes = max(r.PeakNodes, p.Nodes)
		if i > 0 {
			r.NodeSeconds += float64(r.Points[i-1].Nodes) * (p.T - r.Points[i-1].T)
		}
	}
	if n := len(r.Points); n > 0 {
		r.StaticNodeSeconds = float64(r.PeakNodes) * (r.Points[n-1].T - r.Points[0].T)
	}
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

// sample reads the cluster's status every Sample until ctx ends.
func sample(ctx context.Context, cfg *Config, start time.Time) []Point {
	var pts []Point
	tick := time.NewTicker(cfg.Sample)
	defer tick.Stop()
	for {
		if st, err := cfg.Status(ctx); err == nil {
			p := point(st)
			p.T = time.Since(start).Seconds() / cfg.Timescale
			pts = append(pts, p)
		}
		select {
		case <-ctx.Done():
			return pts
		case <-tick.C:
		}
	}
}

// defaultNodeMbps is the controller's bandwidth of a node that reports
// none (controller.DefaultPolicy's NodeMbps).
const defaultNodeMbps = 8000

func point(st *wire.ClusterStatus) Point {
	var p Point
	for _, n := range st.Nodes {
		if n.State == wire.NodeDead {
			continue
		}
		p.Nodes++
		p.UsedMbps += max(n.RxMbps, n.TxMbps)
		if n.State != wire.NodeActive {
			continue
		}
		p.Active++
		bw := 0.0
		for _, t := range n.Tiers {
			bw = max(bw, t.Mbps)
		}
		if bw == 0 {
			bw = defaultNodeMbps
		}
		p.CapMbps += bw
	}
	for _, j := range st.Jobs {
		p.Jobs++
		p.AllocMbps += j.AllocMbps
	}
	return p
}

// runJob waits for the job's arrival, registers it, drives its load for
// its run, and deregisters it.
func runJob(ctx context.Context, cfg *Config, spec JobSpec, start time.Time) JobResult {
	res := JobResult{Name: spec.Name}
	if err := sleepUntil(ctx, start.Add(cfg.wall(spec.Arrive))); err != nil {
		res.FirstEr = err.Error()
		return res
	}
	job, err := cfg.Store.RegisterJob(ctx, spec.Name, spec.Hints)
	if err != nil {
		res.Errors, res.FirstEr = 1, err.Error()
		cfg.Logf("trace: %s: %v", spec.Name, err)
		return res
	}
	res.ID, res.Nodes = job.ID(), len(job.Map().Nodes)
	cfg.Logf("trace: t=%.0fs job %s registered on %d node(s)", time.Since(start).Seconds()/cfg.Timescale, res.ID, res.Nodes)
	l := &load{spec: spec, job: job, written: make([]atomic.Bool, spec.Keys)}
	end := time.Now().Add(cfg.wall(spec.Run))
	l.drive(ctx, cfg.Workers, end)
	res.Puts, res.Gets, res.Bytes, res.Errors = l.puts.Load(), l.gets.Load(), l.bytes.Load(), l.errs.Load()
	if e := l.firstErr.Load(); e != nil {
		res.FirstEr = e.(string)
	}
	dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := job.Deregister(dctx); err != nil {
		res.Errors++
		if res.FirstEr == "" {
			res.FirstEr = err.Error()
		}
	}
	cfg.Logf("trace: t=%.0fs job %s done: %d puts, %d gets, %d errors", time.Since(start).Seconds()/cfg.Timescale, res.ID, res.Puts, res.Gets, res.Errors)
	return res
}

// load is one job's traffic.
type load struct {
	spec     JobSpec
	job      *pocket.Job
	written  []atomic.Bool
	next     atomic.Int64
	puts     atomic.Int64
	gets     atomic.Int64
	bytes    atomic.Int64
	errs     atomic.Int64
	firstErr atomic.Value
}

// drive paces operations at the job's rate with workers until end. A
// pacer hands out one token per operation; tokens a busy worker cannot
// take are dropped, so the offered rate is an upper bound.
func (l *load) drive(ctx context.Context, workers int, end time.Time) {
	ops := l.spec.Mbps * 1e6 / 8 / float64(l.spec.ValueSize)
	if ops <= 0 {
		return
	}
	half := time.Until(end) / 2
	switchAt := time.Now().Add(half)
	tokens := make(chan struct{}, workers)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			buf := make([]byte, l.spec.ValueSize)
			for range tokens {
				l.op(ctx, rng, buf, time.Now().Before(switchAt))
			}
		}(int64(w) + 1)
	}
	pace(ctx, time.Duration(float64(time.Second)/ops), tokens)
	close(tokens)
	wg.Wait()
}

func pace(ctx context.Context, every time.Duration, tokens chan<- struct{}) {
	t := time.NewTicker(max(every, 50*time.Microsecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			select {
			case tokens <- struct{}{}:
			default:
			}
		}
	}
}

// op runs one put or get. A sort puts in its first half and gets in its
// second; a video pipeline alternates.
func (l *load) op(ctx context.Context, rng *rand.Rand, buf []byte, firstHalf bool) {
	put := firstHalf
	if l.spec.Kind == Video {
		put = rng.Intn(2) == 0
	}
	if put {
		i := int(l.next.Add(1)-1) % l.spec.Keys
		fill(buf, i)
		if err := l.job.Put(ctx, key(i), buf); err != nil {
			l.fail(ctx, err)
			return
		}
		l.written[i].Store(true)
		l.puts.Add(1)
		l.bytes.Add(int64(len(buf)))
		return
	}
	i := rng.Intn(l.spec.Keys)
	if !l.written[i].Load() {
		return
	}
	got, err := l.job.GetInto(ctx, key(i), buf)
	if err != nil {
		l.fail(ctx, err)
		return
	}
	if !check(got, i, len(buf)) {
		l.fail(ctx, fmt.Errorf("get %s: wrong contents", key(i)))
		return
	}
	l.gets.Add(1)
	l.bytes.Add(int64(len(got)))
}

// fail counts an error, unless the job's time ran out mid-operation.
func (l *load) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	l.errs.Add(1)
	l.firstErr.CompareAndSwap(nil, err.Error())
}

func key(i int) string { return fmt.Sprintf("part-%05d", i) }

// fill writes key i's contents: its index in every 8-byte word, so a
// value read back under the wrong key, or torn, is caught.
func fill(b []byte, i int) {
	for off := 0; off+8 <= len(b); off += 8 {
		binary.LittleEndian.PutUint64(b[off:], uint64(i)<<32|uint64(off))
	}
}

func check(b []byte, i, size int) bool {
	if len(b) != size {
		return false
	}
	for off := 0; off+8 <= len(b); off += 8 {
		if binary.LittleEndian.Uint64(b[off:]) != uint64(i)<<32|uint64(off) {
			return false
		}
	}
	return true
}
