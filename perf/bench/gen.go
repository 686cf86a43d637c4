package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// Op is the operation a run issues.
type Op uint8

// Operations.
const (
	Get Op = iota + 1
	Put
	// Delete is the cleanup's operation (Cleanup), not a run's: ParseOp
	// and Config refuse it.
	Delete
)

func (o Op) String() string {
	switch o {
	case Get:
		return "get"
	case Put:
		return "put"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ParseOp parses "get" or "put".
func ParseOp(s string) (Op, error) {
	switch s {
	case "get", "GET":
		return Get, nil
	case "put", "PUT", "set", "SET":
		return Put, nil
	}
	return 0, fmt.Errorf("bench: op %q: want get or put", s)
}

// Config is one run of the generator.
type Config struct {
	Op       Op
	Size     int           // value size in bytes
	Conns    int           // connections, one goroutine each
	Pipeline int           // requests per batch on each connection (1: none)
	Duration time.Duration // measured time
	Warmup   time.Duration // unmeasured time before it
	Keys     int           // distinct keys (0: DefaultKeys of Size and Budget)
	// Budget is the bytes of values the default key count holds (0:
	// DefaultBudget); the command sets it from the store's free capacity
	// when it can learn it (NodeBudget), else SmallBudget for a job.
	Budget int64
	Prefix string // key prefix ("": "b<size>-")

	// ServerPID, when not 0, is a local process whose CPU time Run samples
	// as the measured window opens and closes (cpu.go): Stats.ServerCPU,
	// beside the generator's own (Stats.GenCPU).
	ServerPID int

	// Grace is how long to wait for responses after the run before
	// closing the connections to unblock a stuck server (0: 10 s).
	Grace time.Duration

	// StallLimit ends the run (or its preload) with ErrStalled when a
	// connection has had replies but no success for this long, warm-up
	// included (0: DefaultStallLimit): a run whose every request fails
	// stops early instead of spinning for its whole duration.
	StallLimit time.Duration

	// Keep leaves the keys the run wrote (a get run's preload, a put
	// run's puts) in the store. Without it Run deletes them at its end
	// (Cleanup): a run against a user's job must not leave its keys there.
	Keep bool
	// Gone, with Keep, says where the keys go when the run leaves them:
	// "with the job, deregistered" for a fresh job's run, whose
	// deregistration deletes them ("" for --keep: they stay).
	Gone string
}

// DefaultStallLimit is Config.StallLimit unless set.
const DefaultStallLimit = 15 * time.Second

func (c *Config) normalize() error {
	switch {
	case c.Op != Get && c.Op != Put:
		return fmt.Errorf("bench: op must be get or put")
	case c.Size < 0:
		return fmt.Errorf("bench: --size must not be negative")
	case c.Conns < 1 || c.Pipeline < 1:
		return fmt.Errorf("bench: --conns and --pipeline must be at least 1")
	case c.Duration <= 0 || c.Warmup < 0:
		return fmt.Errorf("bench: --duration must be positive and --warmup not negative")
	case c.StallLimit < 0:
		return fmt.Errorf("bench: --stall-limit must not be negative")
	case c.Keys < 0:
		return fmt.Errorf("bench: --keys must not be negative (0: the default)")
	}
	if c.StallLimit == 0 {
		c.StallLimit = DefaultStallLimit
	}
	if c.Keys <= 0 {
		c.Keys = DefaultKeys(int64(c.Size), c.Budget)
	}
	if c.Prefix == "" {
		c.Prefix = fmt.Sprintf("b%d-", c.Size)
	}
	if c.Grace <= 0 {
		c.Grace = 10 * time.Second
	}
	return nil
}

// Stats is what a run measured.
type Stats struct {
	Config Config
	Ops    uint64 // successful operations in the measured window
	Errors uint64 // wrong responses (ErrResponse) in the window, refusals for space (NoSpace) apart
	// Elapsed is how long the measured window lasted, which the rates
	// are over: Config.Duration for a run that went to its end, less for
	// one that ended early (EndedEarly), 0 for one that ended in its
	// warm-up.
	Elapsed time.Duration
	// EndedEarly says the run ended before its measured window closed:
	// interrupted (Interrupted: ctx ended, as a signal ends the pocket
	// command's), or stopped by its connections (all broken, a refused
	// job, a stall).
	EndedEarly  bool
	Interrupted bool
	// Refused counts the requests the store refused and the driver
	// adapted to (ErrRefused: a node's stale epoch, then adopted), over
	// the whole run, warm-up included: adoption usually happens in the
	// first milliseconds. They are not retried, nor counted in Errors.
	Refused uint64
	// NoSpace counts the puts the store refused for lack of space
	// (RefusedForSpace: "tier full", or a value larger than the tier),
	// warm-up included. They are not wrong responses (Errors): the store
	// answered as it should, and the run says what would fit (the
	// command's noSpaceHint).
	NoSpace uint64
	// FirstNoSpace is the first such refusal's message ("" when none).
	FirstNoSpace string
	// firstTooLarge: that refusal was wire.ErrTooLarge (the value's size
	// itself, whatever the store's room), not wire.ErrNoSpace.
	firstTooLarge bool

	Latency Histogram
	// FirstError is the first error seen, wrong response or broken
	// connection, for the report ("" when none).
	FirstError string
	// FirstRefusal is the first refusal's message ("" when none).
	FirstRefusal string
	// Preloaded is the number of keys a get run put before its
	// measurement (every key), Written the distinct keys the run wrote
	// in all (preload and puts), and Deleted those its cleanup deleted
	// (0 with Config.Keep); CleanupError says why it did not delete them
	// all ("" when it did, or with Keep).
	Preloaded    int
	Written      int
	Deleted      int
	CleanupError string
	// ServerCPU and GenCPU are the CPU time, user and system, of
	// Config.ServerPID and of this process over the measured window (0
	// without ServerPID); CPUError says why they are missing ("" when
	// they are not).
	ServerCPU, GenCPU time.Duration
	CPUError          string
}

// Measured is the time the rates are over: Elapsed, or Config.Duration
// for stats made by hand (Elapsed 0 and not EndedEarly).
func (s *Stats) Measured() time.Duration {
	if s.Elapsed == 0 && !s.EndedEarly {
		return s.Config.Duration
	}
	return s.Elapsed
}

// OpsPerSec is the measured throughput: the operations over the time
// measured (Measured), not the time asked for; 0 when none was measured.
func (s *Stats) OpsPerSec() float64 {
	d := s.Measured()
	if d <= 0 {
		return 0
	}
	return float64(s.Ops) / d.Seconds()
}

// MBPerSec is the value bytes moved per second, in MB (10^6 bytes).
func (s *Stats) MBPerSec() float64 {
	return s.OpsPerSec() * float64(s.Config.Size) / 1e6
}

// Run dials cfg.Conns connections and drives them for cfg.Warmup plus
// cfg.Duration. A get run first preloads every key. Unless cfg.Keep, it
// then deletes the keys it wrote (Cleanup; Stats.Deleted, CleanupError).
// It returns the stats and, if a connection broke, an error (the stats
// then cover what was measured until then). A refused job (ErrNeedsJob)
// or a connection with no success for cfg.StallLimit (ErrStalled) stops
// every connection at once: the run ends early with that error. A run
// that fails before its measurement returns no stats; its error says
// what became of the keys it wrote.
//
// A run whose ctx ends before its window closes (a signal) is
// interrupted: it stops, deletes what it wrote as any run, and returns
// the stats of the time it measured (Elapsed, Interrupted) with an error
// wrapping ErrInterrupted and ctx's error ("interrupted after 3.0s of
// 30s"); the connections it closed to stop are not failures. The rates
// of a run that ended early are over the time it measured.
func Run(ctx context.Context, cfg Config, dial Dialer) (*Stats, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	keys := NewKeyspace(cfg.Prefix, cfg.Keys)
	value := NewValue(cfg.Size)
	pre := &Stats{Config: cfg}
	if cfg.Op == Get {
		pre.Preloaded = keys.Len()
		if stored, err := preload(ctx, dial, keys, value, min(cfg.Conns, 8), cfg.StallLimit); err != nil {
			return nil, pre.cleanupAfter(ctx, dial, keys, stored, interruptedBefore(ctx, "the preload", err))
		}
	}
	conns, err := dialAll(ctx, dial, cfg.Conns)
	if err != nil {
		return nil, pre.cleanupAfter(ctx, dial, keys, preloadedKeys(pre, keys), interruptedBefore(ctx, "dialing", err))
	}
	start := time.Now()
	measure, end := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration)
	workers := make([]*worker, len(conns))
	halt := new(atomic.Bool)
	for i, c := range conns {
		var wrote keySet
		if cfg.Op == Put {
			wrote = newKeySet(keys.Len())
		}
		workers[i] = &worker{
			conn: c, keys: keys, value: value, cfg: &cfg, halt: halt, wrote: wrote, sent: make([]int, 0, cfg.Pipeline),
			rng: newRNG(uint64(i) + uint64(start.UnixNano())), measure: measure, end: end, lastOK: start, ctx: ctx,
		}
	}
	var cpu *cpuWindow
	if cfg.ServerPID != 0 {
		cpu = startCPUWindow(cfg.ServerPID, measure, end)
	}
	stopped, counted := runAll(ctx, workers, end.Add(cfg.Grace))
	st, err := collect(cfg, workers)
	st.EndedEarly = stopped.Before(end)
	st.Interrupted = st.EndedEarly && ctx.Err() != nil
	st.Elapsed = min(max(counted.Sub(measure), 0), cfg.Duration)
	if st.Interrupted {
		err = interrupted(ctx, st, err)
	}
	if cpu != nil {
		var cerr error
		if st.ServerCPU, st.GenCPU, cerr = cpu.result(); cerr != nil {
			st.CPUError = cerr.Error()
		}
	}
	st.Preloaded = pre.Preloaded
	written := preloadedKeys(pre, keys)
	for _, w := range workers {
		written.union(w.wrote)
	}
	st.cleanup(ctx, dial, keys, written)
	return st, err
}

// ErrInterrupted marks a run that its context ended (a signal, in the
// pocket command) before its measured window closed: Run's error then
// also wraps the context's (context.Canceled).
var ErrInterrupted = errors.New("bench: interrupted")

// interruptError is a run's interruption: msg says when, the errors are
// ErrInterrupted, the context's, and what failed before it (nil: none).
type interruptError struct {
	msg    string
	causes []error
}

func (e *interruptError) Error() string   { return e.msg }
func (e *interruptError) Unwrap() []error { return e.causes }

// interrupted is the error of a run that ctx interrupted after measuring
// st: "bench: interrupted after 3.0s of 30s", and when connections had
// failed before it (before, non-nil), what failed.
func interrupted(ctx context.Context, st *Stats, before error) error {
	msg := "bench: interrupted " + whenEnded(st.Elapsed, st.Config.Duration)
	causes := []error{ErrInterrupted, context.Cause(ctx)}
	if before != nil {
		msg += "; before that: " + before.Error()
		causes = append(causes, before)
	}
	return &interruptError{msg: msg, causes: causes}
}

// whenEnded says when in its measured window a run was interrupted:
// "after 3.0s of 30s", or "in the warm-up, before the 30s measurement"
// when nothing was measured.
func whenEnded(elapsed, asked time.Duration) string {
	if elapsed <= 0 {
		return fmt.Sprintf("in the warm-up, before the %v measurement", asked)
	}
	return fmt.Sprintf("after %.1fs of %v", elapsed.Seconds(), asked)
}

// interruptedBefore is err, the failure of a run's step before its
// measurement (what: "the preload"), or, when ctx ended (the step's
// connections closed under it), the run's interruption instead: not a
// failed preload nor a "context canceled".
func interruptedBefore(ctx context.Context, what string, err error) error {
	if ctx.Err() == nil {
		return err
	}
	return &interruptError{msg: "bench: interrupted during " + what + ", before the measurement",
		causes: []error{ErrInterrupted, context.Cause(ctx)}}
}

// preloadedKeys is the set of keys a run preloaded: all of keys for a
// get run, none otherwise.
func preloadedKeys(st *Stats, keys *Keyspace) keySet {
	if st.Preloaded > 0 {
		return allKeys(keys.Len())
	}
	return newKeySet(keys.Len())
}

// cleanup deletes the written keys unless the run keeps them, recording
// Written, Deleted and CleanupError. It runs on after ctx ends (an
// interrupted run cleans up too), for at most cleanupLimit.
func (st *Stats) cleanup(ctx context.Context, dial Dialer, keys *Keyspace, written keySet) {
	st.Written = written.count()
	if st.Config.Keep || st.Written == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupLimit)
	defer cancel()
	n, missing, err := Cleanup(ctx, dial, keys, written, min(st.Config.Conns, 8), st.Config.StallLimit)
	st.Deleted = n
	switch {
	case err != nil:
		st.CleanupError = err.Error()
	case missing > 0:
		st.CleanupError = notAtNodeNote(missing)
	}
}

// notAtNodeNote is the cleanup's error for missing keys the node did not
// hold (ErrNotAtNode): where they probably went and how to reach them.
func notAtNodeNote(missing int) string {
	return fmt.Sprintf("%d not found at the node (the job's map has probably changed during the run and moved them to another node: "+
		"`pocket ls` lists them; --controller ADDR follows the job's map)", missing)
}

// cleanupAfter cleans up after a run that failed with err before its
// measurement and returns err with what became of the keys. A refused
// job wrote nothing and is not asked again.
func (st *Stats) cleanupAfter(ctx context.Context, dial Dialer, keys *Keyspace, written keySet, err error) error {
	if errors.Is(err, ErrNeedsJob) {
		return err
	}
	st.cleanup(ctx, dial, keys, written)
	if note := st.CleanupNote(); note != "" {
		return fmt.Errorf("%w (%s)", err, note)
	}
	return err
}

// CleanupNote says what became of the keys the run wrote: "" when it
// wrote none.
func (st *Stats) CleanupNote() string {
	switch {
	case st.Written == 0:
		return ""
	case st.Config.Keep && st.Config.Gone != "":
		return fmt.Sprintf("the %d key(s) it wrote went %s", st.Written, st.Config.Gone)
	case st.Config.Keep:
		return fmt.Sprintf("kept the %d key(s) it wrote", st.Written)
	case st.CleanupError != "":
		return fmt.Sprintf("deleted %d of the %d key(s) it wrote: %s; the rest are left (prefix %q)", st.Deleted, st.Written, st.CleanupError, st.Config.Prefix)
	}
	return fmt.Sprintf("deleted the %d key(s) it wrote", st.Written)
}

// cleanupLimit bounds a run's cleanup.
const cleanupLimit = 2 * time.Minute

// dialAll opens n connections, closing them all if one fails.
func dialAll(ctx context.Context, dial Dialer, n int) ([]Conn, error) {
	conns := make([]Conn, 0, n)
	for range n {
		c, err := dial(ctx)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// runAll runs every worker to completion. If they are not done by the
// deadline, or ctx ends, it closes their connections so blocked reads
// return and the run cannot hang on a stuck server. It returns when the
// run stopped (the workers were done, or ctx ended, or the deadline came)
// and the end of the time its counted replies came in: the same, but for
// an interrupted run, whose workers read the replies of their batches in
// flight for up to interruptGrace more.
func runAll(ctx context.Context, workers []*worker, deadline time.Time) (stopped, counted time.Time) {
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(w.run)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-done:
	case <-ctx.Done():
	case <-timer.C:
	}
	stopped = time.Now()
	counted = stopped
	if ctx.Err() != nil {
		// Interrupted: the workers stop after the batch they are in,
		// whose replies they read, unless the store is slow to answer:
		// so the cleanup does not race the run's last puts (a put
		// sent, its connection closed, stored after the delete of its
		// key).
		select {
		case <-done:
		case <-time.After(interruptGrace):
		}
		// The replies read meanwhile are counted, so their time is too
		// (a review: rates of an interrupted run over a slow store read
		// high). A worker stuck past the grace counts it idle: the rate
		// errs low, never high.
		counted = time.Now()
	}
	for _, w := range workers {
		w.conn.Close()
	}
	<-done
	return stopped, counted
}

// interruptGrace is how long an interrupted run waits for its workers
// to read the replies of the batches they are in before it closes their
// connections.
const interruptGrace = time.Second

// collect merges the workers' results.
func collect(cfg Config, workers []*worker) (*Stats, error) {
	st := &Stats{Config: cfg}
	var errs []error
	for _, w := range workers {
		st.Ops += w.ops
		st.Errors += w.errors
		st.Refused += w.refused
		st.NoSpace += w.noSpace
		st.Latency.Merge(&w.hist)
		if w.firstErr != nil && st.FirstError == "" {
			st.FirstError = w.firstErr.Error()
		}
		if st.FirstNoSpace == "" {
			st.FirstNoSpace, st.firstTooLarge = w.firstNoSpace, w.firstTooLarge
		}
		if w.firstRefusal != nil && st.FirstRefusal == "" {
			st.FirstRefusal = w.firstRefusal.Error()
		}
		if w.fatal != nil {
			errs = append(errs, w.fatal)
		}
	}
	for _, err := range errs {
		if persistent(err) {
			// The connections fail alike: one explanation, not N.
			return st, fmt.Errorf("bench: run stopped early: %w", err)
		}
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("bench: %d of %d connections failed: %w", len(errs), len(workers), errs[0])
	}
	return st, nil
}

// RefusedForSpace reports whether err is the store's reply refusing a
// put for lack of space: wire.ErrNoSpace (the tier is full), or
// wire.ErrTooLarge (the value is larger than the tier ever holds).
// A connection's own limits (a request over the client's payload limit)
// are not replies: they are not refusals for space.
func RefusedForSpace(err error) bool {
	return errors.Is(err, ErrResponse) && (errors.Is(err, wire.ErrNoSpace) || errors.Is(err, wire.ErrTooLarge))
}

// persistent reports whether err ends the whole run: a refused job, a
// node out of the job's map or a stalled connection, which every other
// connection meets too.
func persistent(err error) bool {
	return errors.Is(err, ErrNeedsJob) || errors.Is(err, ErrNotInMap) || errors.Is(err, ErrStalled) || errors.Is(err, ErrWrongTier)
}

// worker is one connection's loop and its private results.
type worker struct {
	conn         Conn
	keys         *Keyspace
	wrote        keySet // the keys whose puts this worker's store acknowledged, or may have stored (maybeWritten)
	sent         []int  // the key indexes of the batch in flight, in order
	value        []byte
	cfg          *Config
	rng          rng
	measure      time.Time
	end          time.Time
	halt         *atomic.Bool // set by the worker that meets a persistent error: all stop
	lastOK       time.Time    // the last successful reply (the run's start before one)
	hist         Histogram
	ops          uint64
	errors       uint64
	refused      uint64
	noSpace      uint64 // puts refused for lack of space (Stats.NoSpace)
	firstErr     error
	firstNoSpace string // the first refusal for space, without ErrResponse's words
	// firstTooLarge: that refusal was wire.ErrTooLarge (Stats.firstTooLarge)
	firstTooLarge bool
	firstRefusal  error
	fatal         error
	ctx           context.Context // the run's: when it ends, the run is interrupted
}

func (w *worker) run() {
	for {
		t0 := time.Now()
		if !t0.Before(w.end) || w.halt.Load() || w.ctx.Err() != nil {
			return
		}
		if err := w.batch(t0, !t0.Before(w.measure)); err != nil {
			if w.ctx.Err() != nil {
				// The run was interrupted: runAll closed the
				// connection (or the SDK's calls saw ctx end). Not
				// a failure of the connection.
				return
			}
			w.fatal = err
			if w.firstErr == nil {
				w.firstErr = err
			}
			if persistent(err) {
				w.halt.Store(true)
			}
			return
		}
	}
}

// batch sends one pipeline of requests and reads their responses,
// recording latencies when measured is set. It returns an error only when
// the connection is unusable.
func (w *worker) batch(t0 time.Time, measured bool) error {
	w.sent = w.sent[:0]
	for range w.cfg.Pipeline {
		i := w.rng.intn(w.keys.Len())
		key := w.keys.Key(i)
		w.sent = append(w.sent, i)
		var err error
		if w.cfg.Op == Get {
			err = w.conn.SendGet(key)
		} else {
			err = w.conn.SendPut(key, w.value)
		}
		if err != nil {
			w.maybeWritten(0)
			return err
		}
	}
	if err := w.conn.Flush(); err != nil {
		w.maybeWritten(0)
		return err
	}
	var stop error // a refusal that ends the run (persistent), once the batch is read
	for k := range w.cfg.Pipeline {
		err := w.conn.Recv()
		now := time.Now()
		switch {
		case err == nil:
			// Replies come in the order sent: this one is the k-th key's.
			if w.wrote != nil {
				w.wrote.add(w.sent[k])
			}
			w.lastOK = now
			if measured {
				w.hist.Record(now.Sub(t0))
				w.ops++
			}
			continue
		case errors.Is(err, ErrRefused):
			w.refused++
			if w.firstRefusal == nil {
				w.firstRefusal = err
			}
		case RefusedForSpace(err):
			// Refused for space: the store's right answer to a put
			// it cannot hold, not a wrong response.
			w.noSpace++
			if w.firstNoSpace == "" {
				w.firstNoSpace = strings.TrimPrefix(err.Error(), ErrResponse.Error()+": ")
				w.firstTooLarge = errors.Is(err, wire.ErrTooLarge)
			}
		case errors.Is(err, ErrResponse):
			if measured {
				w.errors++
			}
			if w.firstErr == nil {
				w.firstErr = err
			}
		case errors.Is(err, ErrNeedsJob), errors.Is(err, ErrNotInMap), errors.Is(err, ErrWrongTier):
			// The store answered this request, refusing the job (or
			// this node is out of the job's map): no retry changes
			// that, and the run stops. The stream is in step: the
			// rest of the batch's replies are read, so a put the
			// store refused is not taken for written.
			if stop == nil {
				stop = err
			}
			continue
		default:
			w.maybeWritten(k)
			return cmp.Or(stop, err)
		}
		if stalled := now.Sub(w.lastOK); stop == nil && stalled >= w.cfg.StallLimit {
			w.maybeWritten(k + 1)
			return stallError(stalled, err)
		}
	}
	return stop
}

// maybeWritten counts the puts of the batch from its from-th on as
// written: their replies will not be read, so the store may have stored
// them (over any value of the user's under those keys), and the cleanup
// deletes them. A put the store answered with a refusal or an error is not
// written: the cleanup leaves its key alone.
func (w *worker) maybeWritten(from int) {
	if w.wrote == nil {
		return
	}
	for _, i := range w.sent[from:] {
		w.wrote.add(i)
	}
}

// stallError is ErrStalled after d without a success, last the last reply.
func stallError(d time.Duration, last error) error {
	return fmt.Errorf("%w for %v (every reply failed; the last: %w)", ErrStalled, d.Round(time.Millisecond), last)
}

// Preload stores value under every key, pipelined over conns connections,
// so a get run finds all its keys. A wrong response fails the preload; a
// refused batch (ErrRefused: the driver adopted a node's epoch) is sent
// again, until a connection has had no success for stall (ErrStalled).
func Preload(ctx context.Context, dial Dialer, keys *Keyspace, value []byte, conns int, stall time.Duration) error {
	_, err := preload(ctx, dial, keys, value, conns, stall)
	return err
}

// preload is Preload, also returning the keys whose puts the store
// acknowledged (all of them when it succeeds).
func preload(ctx context.Context, dial Dialer, keys *Keyspace, value []byte, conns int, stall time.Duration) (keySet, error) {
	const depth = 32
	conns = max(1, min(conns, keys.Len()))
	var wg sync.WaitGroup
	errs := make([]error, conns)
	stored := make([]keySet, conns)
	for c := range conns {
		stored[c] = newKeySet(keys.Len())
		wg.Go(func() { errs[c] = preloadShare(ctx, dial, keys, value, c, conns, depth, stall, stored[c]) })
	}
	wg.Wait()
	all := newKeySet(keys.Len())
	for _, s := range stored {
		all.union(s)
	}
	// The first error only: the connections fail alike (a refused token,
	// a dead server), and one explanation reads better than N copies.
	for _, err := range errs {
		if err != nil {
			return all, fmt.Errorf("bench: preload: %w", err)
		}
	}
	return all, nil
}

// preloadShare puts keys first, first+step, ... over one connection,
// depth requests per batch. A batch with a refused put is sent again
// (puts of the same value are idempotent), for at most stall without a
// success.
func preloadShare(ctx context.Context, dial Dialer, keys *Keyspace, value []byte, first, step, depth int, stall time.Duration, stored keySet) error {
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// Unblock a stuck read, once the batch in flight had interruptGrace
	// to be answered: a put whose connection closed under it could be
	// stored after the cleanup deleted its key.
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(interruptGrace, func() { c.Close() }) })
	defer stop()
	lastOK := time.Now()
	for i := first; i < keys.Len(); {
		if err := ctx.Err(); err != nil {
			return err
		}
		next, refused, err := preloadBatch(c, keys, value, i, step, depth, stall, stored)
		switch {
		case err != nil:
			return err
		case refused == nil:
			lastOK, i = time.Now(), next
		case time.Since(lastOK) >= stall:
			return stallError(time.Since(lastOK), refused)
		}
	}
	return nil
}

// preloadBatch puts up to depth keys from first on, step apart, adds those
// the store acknowledged to stored, and returns the index after them and
// the first refusal (ErrRefused) among the replies, if any; other failures
// are returned as err. A batch not answered whole within stall gets its
// connection closed (ErrStalled): before, `pocket bench --addr` at a
// service that accepts and never answers (a Redis port) waited in its
// preload past --stall-limit, for as long as the service kept the
// connection.
func preloadBatch(c Conn, keys *Keyspace, value []byte, first, step, depth int, stall time.Duration, stored keySet) (next int, refused, err error) {
	n, i := 0, first
	// The puts from the k-th on whose replies will not be read may have
	// been stored: they count as stored.
	unknown := func(k int) {
		for ; k < n; k++ {
			stored.add(first + k*step)
		}
	}
	var timedOut atomic.Bool
	t := time.AfterFunc(stall, func() { timedOut.Store(true); c.Close() })
	defer t.Stop()
	failed := func(err error) error {
		if timedOut.Load() {
			return fmt.Errorf("%w for %v (no reply to the puts)", ErrStalled, stall)
		}
		return err
	}
	for ; n < depth && i < keys.Len(); i += step {
		n++
		if err := c.SendPut(keys.Key(i), value); err != nil {
			unknown(0)
			return i, nil, failed(err)
		}
	}
	if err := c.Flush(); err != nil {
		unknown(0)
		return i, nil, failed(err)
	}
	var answered error // the first error the store answered (the put not stored)
	var stop error     // the first refusal no resend changes (a refused job, a node out of the map)
	for k := range n {
		err := c.Recv()
		switch {
		case timedOut.Load():
			unknown(k)
			return i, nil, failed(err)
		case err == nil:
			stored.add(first + k*step) // replies come in the order sent
		case errors.Is(err, ErrRefused):
			if refused == nil {
				refused = err
			}
		case errors.Is(err, ErrResponse):
			if answered == nil {
				answered = err
			}
		case errors.Is(err, ErrNeedsJob), errors.Is(err, ErrNotInMap), errors.Is(err, ErrWrongTier):
			// Answered, not stored: the rest of the batch is read
			// (the stream is in step), then the preload stops.
			if stop == nil {
				stop = err
			}
		default:
			unknown(k)
			return i, nil, cmp.Or(stop, err)
		}
	}
	if stop != nil {
		return i, nil, stop
	}
	return i, refused, answered
}

// keySet is a set of key indexes of a Keyspace, a bit each.
type keySet []uint64

func newKeySet(n int) keySet { return make(keySet, (n+63)/64) }

// allKeys is the set of all n keys.
func allKeys(n int) keySet {
	s := newKeySet(n)
	for i := range n {
		s.add(i)
	}
	return s
}

func (s keySet) add(i int)      { s[i/64] |= 1 << (i % 64) }
func (s keySet) has(i int) bool { return s[i/64]&(1<<(i%64)) != 0 }
func (s keySet) union(o keySet) {
	for i := range o {
		s[i] |= o[i]
	}
}
func (s keySet) count() (n int) {
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

// Cleanup deletes the keys of set, pipelined over conns connections (each
// a Deleter; ErrNoDelete otherwise), and returns how many it deleted and,
// apart, how many the store answered were not there (ErrNotAtNode: a
// pocket node the job's map moved them off; not deleted, and not a
// failure of the cleanup's own). A refused batch is sent again, and a
// batch unanswered is given up, after stall without a success
// (ErrStalled); a wrong response or a broken connection ends the
// connection's share.
func Cleanup(ctx context.Context, dial Dialer, keys *Keyspace, set keySet, conns int, stall time.Duration) (deleted, missing int, err error) {
	var idx []int
	for i := range keys.Len() {
		if set.has(i) {
			idx = append(idx, i)
		}
	}
	conns = max(1, min(conns, len(idx)))
	var wg sync.WaitGroup
	done := make([]cleanupCount, conns)
	errs := make([]error, conns)
	for c := range conns {
		wg.Go(func() { done[c], errs[c] = cleanupShare(ctx, dial, keys, idx, c, conns, stall) })
	}
	wg.Wait()
	for _, d := range done {
		deleted += d.deleted
		missing += d.missing
	}
	for _, err := range errs {
		if err != nil {
			return deleted, missing, fmt.Errorf("bench: cleanup: %w", err)
		}
	}
	return deleted, missing, nil
}

// cleanupCount is what one connection's cleanup did: the keys it deleted,
// and those the store said were not there (ErrNotAtNode).
type cleanupCount struct{ deleted, missing int }

// ErrNoDelete is Cleanup's error for a driver that cannot delete.
var ErrNoDelete = errors.New("the store's driver cannot delete keys")

// cleanupShare deletes keys idx[first], idx[first+step], ... over one
// connection, a batch of 32 at a time, and returns how many it deleted
// and how many the store said were not there.
func cleanupShare(ctx context.Context, dial Dialer, keys *Keyspace, idx []int, first, step int, stall time.Duration) (cleanupCount, error) {
	const depth = 32
	var n cleanupCount
	c, err := dial(ctx)
	if err != nil {
		return n, err
	}
	defer c.Close()
	d, ok := c.(Deleter)
	if !ok {
		return n, ErrNoDelete
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	lastOK := time.Now()
	for i := first; i < len(idx); {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		sent, j := 0, i
		for ; sent < depth && j < len(idx); j += step {
			if err := d.SendDelete(keys.Key(idx[j])); err != nil {
				return n, err
			}
			sent++
		}
		if err := c.Flush(); err != nil {
			return n, err
		}
		missing, refused, err := recvBatch(c, sent, stall)
		if err != nil {
			return n, err
		}
		switch {
		case refused == nil:
			// A refused batch is sent again whole, so its missing keys
			// are counted only once the batch goes through.
			n.deleted += sent - missing
			n.missing += missing
			i, lastOK = j, time.Now()
		case time.Since(lastOK) >= stall:
			return n, stallError(time.Since(lastOK), refused)
		}
	}
	return n, nil
}

// recvBatch reads the replies of n deletes and returns how many keys were
// not there (ErrNotAtNode) and the first refusal among them, if any;
// other failures are returned as err. A store silent for stall gets its
// connection closed (ErrStalled): a stuck server does not hold the run's
// end for the cleanup's whole limit.
func recvBatch(c Conn, n int, stall time.Duration) (missing int, refused, err error) {
	var timedOut atomic.Bool
	t := time.AfterFunc(stall, func() { timedOut.Store(true); c.Close() })
	defer t.Stop()
	for range n {
		switch err := c.Recv(); {
		case timedOut.Load():
			return 0, nil, fmt.Errorf("%w for %v (no reply to the deletes)", ErrStalled, stall)
		case errors.Is(err, ErrNotAtNode):
			missing++
		case errors.Is(err, ErrRefused):
			if refused == nil {
				refused = err
			}
		case err != nil:
			return 0, nil, err
		}
	}
	return missing, refused, nil
}
