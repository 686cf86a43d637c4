package trace

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/pocket"
)

// runJob waits for the job's arrival, registers it, drives its load for
// its run, reads back every key it wrote, and deregisters it.
func runJob(ctx context.Context, cfg *Config, spec JobSpec, start time.Time) JobResult {
	res := JobResult{Spec: spec, Name: spec.Name}
	if err := sleepUntil(ctx, start.Add(cfg.wall(spec.Arrive))); err != nil {
		res.Interrupted = true // before it arrived
		return res
	}
	job, err := cfg.Store.RegisterJob(ctx, spec.Name, spec.Hints)
	if err != nil && ctx.Err() != nil {
		res.Interrupted = true
		return res
	}
	if err != nil {
		res.Errors, res.FirstEr = 1, err.Error()
		cfg.Logf("trace: %s: %v", spec.Name, err)
		return res
	}
	now := func() float64 { return time.Since(start).Seconds() / cfg.Timescale }
	res.ID, res.Nodes = job.ID(), len(job.Map().Nodes)
	cfg.Logf("trace: t=%.0fs job %s registered on %d node(s)", now(), res.ID, res.Nodes)
	l := newLoad(spec, job)
	l.drive(ctx, cfg, cfg.Workers)
	if ctx.Err() == nil {
		vctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		res.Written, res.Verified = l.verifyAll(vctx, l.opsPerSecond(spec.readBackMbps()))
		cancel()
	} else {
		// Interrupted: not verified, and not failed for it.
		res.Written = l.writtenCount()
		res.Interrupted = true
	}
	l.results(&res)
	dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := job.Deregister(dctx); err != nil {
		res.Errors++
		if res.FirstEr == "" {
			res.FirstEr = err.Error()
		}
	}
	if res.Interrupted {
		cfg.Logf("trace: t=%.0fs job %s interrupted: %d puts, %d gets, %d keys written (not verified), %d errors",
			now(), res.ID, res.Puts, res.Gets, res.Written, res.Errors)
		return res
	}
	cfg.Logf("trace: t=%.0fs job %s done: %d puts, %d gets, %d of %d keys verified, %d errors",
		now(), res.ID, res.Puts, res.Gets, res.Verified, res.Written, res.Errors)
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
	// phase is the phase running; phaseBytes and phaseWall what each
	// phase moved and lasted.
	phase      atomic.Int32
	phaseBytes []atomic.Int64
	phaseWall  []time.Duration
	putting    atomic.Bool // a sort's first half
}

func newLoad(spec JobSpec, job *pocket.Job) *load {
	n := len(spec.phases())
	return &load{spec: spec, job: job, written: make([]atomic.Bool, spec.Keys),
		phaseBytes: make([]atomic.Int64, n), phaseWall: make([]time.Duration, n)}
}

func (l *load) results(res *JobResult) {
	res.Puts, res.Gets, res.Bytes = l.puts.Load(), l.gets.Load(), l.bytes.Load()
	res.Errors += l.errs.Load()
	if e := l.firstErr.Load(); e != nil && res.FirstEr == "" {
		res.FirstEr = e.(string)
	}
	res.PhaseMbps = make([]float64, len(l.phaseWall))
	for i, d := range l.phaseWall {
		if d > 0 {
			res.PhaseMbps[i] = float64(l.phaseBytes[i].Load()) * 8 / 1e6 / d.Seconds()
		}
	}
}

// drive runs the job's phases with workers, each phase paced at its rate
// for its wall length. A pacer hands out one token per operation; tokens
// a busy worker cannot take are dropped, so a phase's rate is an upper
// bound. A sort puts until half its run has passed, then gets.
func (l *load) drive(ctx context.Context, cfg *Config, workers int) {
	begin := time.Now()
	end := begin.Add(cfg.wall(l.spec.Run))
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	l.putting.Store(true)
	half := time.AfterFunc(cfg.wall(l.spec.Run)/2, func() { l.putting.Store(false) })
	defer half.Stop()
	tokens := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			buf := make([]byte, l.spec.ValueSize)
			for range tokens {
				l.op(ctx, rng, buf)
			}
		}(int64(w) + 1)
	}
	at := begin
	for i, ph := range l.spec.phases() {
		l.phase.Store(int32(i))
		phaseStart := time.Now()
		at = at.Add(cfg.wall(ph.For))
		pctx, pcancel := context.WithDeadline(ctx, at)
		pace(pctx, l.opsPerSecond(ph.Mbps), tokens)
		pcancel()
		l.phaseWall[i] = time.Since(phaseStart)
	}
	close(tokens)
	wg.Wait()
}

// opsPerSecond is the operation rate that offers mbps.
func (l *load) opsPerSecond(mbps float64) float64 {
	return mbps * 1e6 / 8 / float64(l.spec.ValueSize)
}

// pace offers a token opsPerSec times a second until ctx ends; at 0 it
// only waits.
func pace(ctx context.Context, opsPerSec float64, tokens chan<- struct{}) {
	if opsPerSec <= 0 {
		<-ctx.Done()
		return
	}
	every := time.Duration(float64(time.Second) / opsPerSec)
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
// second; a video pipeline alternates at random.
func (l *load) op(ctx context.Context, rng *rand.Rand, buf []byte) {
	put := l.putting.Load()
	if l.spec.Kind == Video {
		put = rng.Intn(2) == 0
	}
	if put {
		l.put(ctx, buf)
		return
	}
	l.get(ctx, rng.Intn(l.spec.Keys), buf)
}

func (l *load) put(ctx context.Context, buf []byte) {
	i := int(l.next.Add(1)-1) % l.spec.Keys
	fill(buf, i)
	if err := l.job.Put(ctx, key(i), buf); err != nil {
		l.fail(ctx, err)
		return
	}
	l.written[i].Store(true)
	l.puts.Add(1)
	l.moved(len(buf))
}

func (l *load) get(ctx context.Context, i int, buf []byte) {
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
	l.moved(len(got))
}

func (l *load) moved(n int) {
	l.bytes.Add(int64(n))
	l.phaseBytes[l.phase.Load()].Add(int64(n))
}

// verifyAll reads back every key the job wrote and checks its contents:
// all puts have finished, so each must be there, whole. It reads at most
// opsPerSec values a second (0: as fast as it can), so the read-back
// does not show on the nodes as a burst the job never offered. It
// returns the keys written and those that checked; each that did not is
// an error.
func (l *load) verifyAll(ctx context.Context, opsPerSec float64) (written, verified int) {
	buf := make([]byte, l.spec.ValueSize)
	var tick <-chan time.Time
	if opsPerSec > 0 {
		t := time.NewTicker(max(time.Duration(float64(time.Second)/opsPerSec), 50*time.Microsecond))
		defer t.Stop()
		tick = t.C
	}
	for i := range l.written {
		if !l.written[i].Load() {
			continue
		}
		written++
		if tick != nil {
			select {
			case <-ctx.Done():
			case <-tick:
			}
		}
		got, err := l.job.GetInto(ctx, key(i), buf)
		switch {
		case err != nil:
			l.count(fmt.Errorf("verify %s: %w", key(i), err))
		case !check(got, i, len(buf)):
			l.count(fmt.Errorf("verify %s: wrong contents", key(i)))
		default:
			verified++
		}
	}
	return written, verified
}

// writtenCount is the number of distinct keys the job wrote.
func (l *load) writtenCount() int {
	n := 0
	for i := range l.written {
		if l.written[i].Load() {
			n++
		}
	}
	return n
}

// fail counts an error, unless the job's time ran out mid-operation.
func (l *load) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	l.count(err)
}

func (l *load) count(err error) {
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
