package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Op is the operation a run issues.
type Op uint8

// Operations.
const (
	Get Op = iota + 1
	Put
)

func (o Op) String() string {
	switch o {
	case Get:
		return "get"
	case Put:
		return "put"
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
	Keys     int           // distinct keys (0: DefaultKeys)
	Prefix   string        // key prefix ("": "b<size>-")

	// Grace is how long to wait for responses after the run before
	// closing the connections to unblock a stuck server (0: 10 s).
	Grace time.Duration

	// StallLimit ends the run (or its preload) with ErrStalled when a
	// connection has had replies but no success for this long, warm-up
	// included (0: DefaultStallLimit): a run whose every request fails
	// stops early instead of spinning for its whole duration.
	StallLimit time.Duration
}

// DefaultStallLimit is Config.StallLimit unless set.
const DefaultStallLimit = 15 * time.Second

func (c *Config) normalize() error {
	switch {
	case c.Op != Get && c.Op != Put:
		return fmt.Errorf("bench: op must be get or put")
	case c.Size < 0:
		return fmt.Errorf("bench: negative size")
	case c.Conns < 1 || c.Pipeline < 1:
		return fmt.Errorf("bench: conns and pipeline must be at least 1")
	case c.Duration <= 0 || c.Warmup < 0:
		return fmt.Errorf("bench: duration must be positive and warm-up not negative")
	case c.StallLimit < 0:
		return fmt.Errorf("bench: negative stall limit")
	}
	if c.StallLimit == 0 {
		c.StallLimit = DefaultStallLimit
	}
	if c.Keys <= 0 {
		c.Keys = DefaultKeys(int64(c.Size))
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
	Errors uint64 // wrong responses (ErrResponse) in the window
	// Refused counts the requests the store refused and the driver
	// adapted to (ErrRefused: a node's stale epoch, then adopted), over
	// the whole run, warm-up included: adoption usually happens in the
	// first milliseconds. They are not retried, nor counted in Errors.
	Refused uint64
	Latency Histogram
	// FirstError is the first error seen, wrong response or broken
	// connection, for the report ("" when none).
	FirstError string
	// FirstRefusal is the first refusal's message ("" when none).
	FirstRefusal string
}

// OpsPerSec is the measured throughput.
func (s *Stats) OpsPerSec() float64 {
	return float64(s.Ops) / s.Config.Duration.Seconds()
}

// MBPerSec is the value bytes moved per second, in MB (10^6 bytes).
func (s *Stats) MBPerSec() float64 {
	return s.OpsPerSec() * float64(s.Config.Size) / 1e6
}

// Run dials cfg.Conns connections and drives them for cfg.Warmup plus
// cfg.Duration. A get run first preloads every key. It returns the stats
// and, if a connection broke, an error (the stats then cover what was
// measured until then). A refused job (ErrNeedsJob) or a connection with
// no success for cfg.StallLimit (ErrStalled) stops every connection at
// once: the run ends early with that error.
func Run(ctx context.Context, cfg Config, dial Dialer) (*Stats, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	keys := NewKeyspace(cfg.Prefix, cfg.Keys)
	value := NewValue(cfg.Size)
	if cfg.Op == Get {
		if err := Preload(ctx, dial, keys, value, min(cfg.Conns, 8), cfg.StallLimit); err != nil {
			return nil, err
		}
	}
	conns, err := dialAll(ctx, dial, cfg.Conns)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	measure, end := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration)
	workers := make([]*worker, len(conns))
	halt := new(atomic.Bool)
	for i, c := range conns {
		workers[i] = &worker{
			conn: c, keys: keys, value: value, cfg: &cfg, halt: halt,
			rng: newRNG(uint64(i) + uint64(start.UnixNano())), measure: measure, end: end, lastOK: start,
		}
	}
	runAll(ctx, workers, end.Add(cfg.Grace))
	return collect(cfg, workers)
}

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
// return and the run cannot hang on a stuck server.
func runAll(ctx context.Context, workers []*worker, deadline time.Time) {
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
	for _, w := range workers {
		w.conn.Close()
	}
	<-done
}

// collect merges the workers' results.
func collect(cfg Config, workers []*worker) (*Stats, error) {
	st := &Stats{Config: cfg}
	var errs []error
	for _, w := range workers {
		st.Ops += w.ops
		st.Errors += w.errors
		st.Refused += w.refused
		st.Latency.Merge(&w.hist)
		if w.firstErr != nil && st.FirstError == "" {
			st.FirstError = w.firstErr.Error()
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

// persistent reports whether err ends the whole run: a refused job or a
// stalled connection, which every other connection meets too.
func persistent(err error) bool {
	return errors.Is(err, ErrNeedsJob) || errors.Is(err, ErrStalled)
}

// worker is one connection's loop and its private results.
type worker struct {
	conn         Conn
	keys         *Keyspace
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
	firstErr     error
	firstRefusal error
	fatal        error
}

func (w *worker) run() {
	for {
		t0 := time.Now()
		if !t0.Before(w.end) || w.halt.Load() {
			return
		}
		if err := w.batch(t0, !t0.Before(w.measure)); err != nil {
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
	for range w.cfg.Pipeline {
		key := w.keys.Key(w.rng.intn(w.keys.Len()))
		var err error
		if w.cfg.Op == Get {
			err = w.conn.SendGet(key)
		} else {
			err = w.conn.SendPut(key, w.value)
		}
		if err != nil {
			return err
		}
	}
	if err := w.conn.Flush(); err != nil {
		return err
	}
	for range w.cfg.Pipeline {
		err := w.conn.Recv()
		now := time.Now()
		switch {
		case err == nil:
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
		case errors.Is(err, ErrResponse):
			if measured {
				w.errors++
			}
			if w.firstErr == nil {
				w.firstErr = err
			}
		default:
			return err
		}
		if stalled := now.Sub(w.lastOK); stalled >= w.cfg.StallLimit {
			return stallError(stalled, err)
		}
	}
	return nil
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
	const depth = 32
	conns = max(1, min(conns, keys.Len()))
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for c := range conns {
		wg.Go(func() { errs[c] = preloadShare(ctx, dial, keys, value, c, conns, depth, stall) })
	}
	wg.Wait()
	// The first error only: the connections fail alike (a refused token,
	// a dead server), and one explanation reads better than N copies.
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("bench: preload: %w", err)
		}
	}
	return nil
}

// preloadShare puts keys first, first+step, ... over one connection,
// depth requests per batch. A batch with a refused put is sent again
// (puts of the same value are idempotent), for at most stall without a
// success.
func preloadShare(ctx context.Context, dial Dialer, keys *Keyspace, value []byte, first, step, depth int, stall time.Duration) error {
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() }) // unblock a stuck read
	defer stop()
	lastOK := time.Now()
	for i := first; i < keys.Len(); {
		if err := ctx.Err(); err != nil {
			return err
		}
		next, refused, err := preloadBatch(c, keys, value, i, step, depth)
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

// preloadBatch puts up to depth keys from first on, step apart, and
// returns the index after them and the first refusal (ErrRefused) among
// the replies, if any; other failures are returned as err.
func preloadBatch(c Conn, keys *Keyspace, value []byte, first, step, depth int) (next int, refused, err error) {
	n, i := 0, first
	for ; n < depth && i < keys.Len(); i += step {
		if err := c.SendPut(keys.Key(i), value); err != nil {
			return i, nil, err
		}
		n++
	}
	if err := c.Flush(); err != nil {
		return i, nil, err
	}
	for range n {
		err := c.Recv()
		switch {
		case errors.Is(err, ErrRefused):
			if refused == nil {
				refused = err
			}
		case err != nil:
			return i, nil, err
		}
	}
	return i, refused, nil
}
