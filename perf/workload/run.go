package workload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/pocketstore/pocket/wire"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketstore/pocket/pocket"
)

// ErrUnknownWorkload: a name not in Names.
var ErrUnknownWorkload = errors.New("workload: unknown workload")

// phase is one step of a workload: tasks run at the same time.
type phase struct {
	name  string
	tasks int
	timed bool // counted in TotalSeconds and BytesMoved
}

// workload is one job kind. Its methods are pure functions of the Spec
// except run, which a worker calls for each task.
type workload interface {
	phases(s Spec) []phase
	run(ctx context.Context, be Backend, t Task) (TaskResult, error)
	// verify checks the results of every phase (by phase name); nil
	// means the output checked out.
	verify(s Spec, res map[string][]TaskResult) error
	// shuffle is the shuffle time from the phases' results; ok false when
	// the workload has no shuffle.
	shuffle(res map[string][]TaskResult) (secs float64, ok bool)
	keys(s Spec) []string
	defaults(s *Spec)
}

var workloads = map[string]workload{}

// Names lists the workloads: sort (Size: total input, 100-byte records),
// mapreduce (Size: total text), paramserver (Size: model bytes, Rounds
// iterations), statechain (Size: total input of the chain's tasks).
func Names() []string {
	var n []string
	for k := range workloads {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Options configure a run.
type Options struct {
	Launcher Launcher // default InProcess
	// Progress, when set, is told how many tasks of a phase have finished.
	Progress func(phase string, done, total int, elapsed time.Duration)
	// AfterPhase, when set, runs after each phase with a backend of the
	// run (tests use it to corrupt an output and see verification fail).
	AfterPhase func(ctx context.Context, phase string, be Backend, s Spec) error
	Keep       bool // leave the run's keys in the store
}

// PhaseResult is one phase's wall time.
type PhaseResult struct {
	Name    string  `json:"name"`
	Tasks   int     `json:"tasks"`
	Seconds float64 `json:"seconds"`
	Timed   bool    `json:"timed"`
}

// Result is the outcome of one run (the --json object).
type Result struct {
	Workload       string        `json:"workload"`
	Backend        string        `json:"backend"`
	Workers        int           `json:"workers"`
	SizeBytes      int64         `json:"size_bytes"`
	TotalSeconds   float64       `json:"total_seconds"`
	ShuffleSeconds *float64      `json:"shuffle_seconds,omitempty"`
	BytesMoved     int64         `json:"bytes_moved"`
	Verified       bool          `json:"verified"`
	VerifyError    string        `json:"verify_error,omitempty"`
	Phases         []PhaseResult `json:"phases"`
	Started        time.Time     `json:"started"`
}

// Run runs the named workload against t and checks its output. An error
// means the run could not complete; a completed run whose output did not
// check out returns a Result with Verified false and no error.
func Run(ctx context.Context, name string, t Target, s Spec, o Options) (Result, error) {
	w, ok := workloads[name]
	if !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownWorkload, name)
	}
	if s.Workers < 1 {
		return Result{}, fmt.Errorf("workload: %d workers", s.Workers)
	}
	w.defaults(&s)
	if s.Prefix == "" {
		s.Prefix = newPrefix(name)
	}
	if o.Launcher == nil {
		o.Launcher = InProcess{}
	}
	t, release, err := prepare(ctx, t, name, s)
	if err != nil {
		return Result{}, err
	}
	defer release()
	be, err := Open(ctx, t)
	if err != nil {
		return Result{}, err
	}
	defer be.Close()
	// A job registered here (prepare) goes whole with its deregistration
	// (release): its keys need no deletes, which for a sort of 4,096
	// workers (16 M keys, listed before the run) held a new user's run,
	// deaf to signals, for 11 minutes and 1.9 GB.
	if !o.Keep && (t.Kind != KindPocket || t.Controller == "") {
		defer func() { cleanup(context.WithoutCancel(ctx), be, w.keys(s)) }()
	}
	return runPhases(ctx, w, name, t, s, o, be)
}

func runPhases(ctx context.Context, w workload, name string, t Target, s Spec, o Options, be Backend) (Result, error) {
	r := Result{Workload: name, Backend: t.String(), Workers: s.Workers, SizeBytes: s.Size, Started: time.Now().UTC()}
	all := map[string][]TaskResult{}
	for _, ph := range w.phases(s) {
		res, secs, err := runPhase(ctx, o, name, ph, t, s)
		if err != nil {
			return r, err
		}
		all[ph.name] = res
		r.Phases = append(r.Phases, PhaseResult{Name: ph.name, Tasks: ph.tasks, Seconds: secs, Timed: ph.timed})
		if ph.timed {
			r.TotalSeconds += secs
			for _, x := range res {
				r.BytesMoved += x.BytesRead + x.BytesWritten
			}
		}
		if o.AfterPhase != nil {
			if err := o.AfterPhase(ctx, ph.name, be, s); err != nil {
				return r, err
			}
		}
	}
	if secs, ok := w.shuffle(all); ok {
		r.ShuffleSeconds = &secs
	}
	if err := w.verify(s, all); err != nil {
		r.VerifyError = err.Error()
	} else {
		r.Verified = true
	}
	return r, nil
}

func runPhase(ctx context.Context, o Options, name string, ph phase, t Target, s Spec) ([]TaskResult, float64, error) {
	tasks := make([]Task, ph.tasks)
	for i := range tasks {
		tasks[i] = Task{Workload: name, Phase: ph.name, Index: i, Spec: s, Target: t}
	}
	start := time.Now()
	var done func()
	if o.Progress != nil {
		var n atomic.Int64
		var mu sync.Mutex
		o.Progress(ph.name, 0, ph.tasks, 0)
		done = func() {
			k := n.Add(1)
			mu.Lock()
			o.Progress(ph.name, int(k), ph.tasks, time.Since(start))
			mu.Unlock()
		}
	}
	res, err := o.Launcher.Launch(ctx, tasks, done)
	if err != nil {
		return nil, 0, fmt.Errorf("workload: %s phase %s: %w", name, ph.name, err)
	}
	return res, time.Since(start).Seconds(), nil
}

// prepare gives the run its job: through the controller when there is one
// (released by deregistering), a fresh static job id otherwise.
func prepare(ctx context.Context, t Target, name string, s Spec) (Target, func(), error) {
	if t.Kind != KindPocket {
		return t, func() {}, nil
	}
	if t.Controller == "" {
		if t.Job == "" {
			t.Job = s.Prefix
		}
		return t, func() {}, nil
	}
	h := pocket.Hints{Lambdas: s.Workers, CapacityBytes: 3 * s.Size, LatencySensitive: t.Tier != wire.TierNVMe}
	t, release, err := RegisterJob(ctx, t, name, h)
	if err != nil {
		// The controller's advice names the job register command's hint
		// flags; this run's hints come from its own (a new user's trial
		// was told to lower --peak-mbps, which bench workload has not).
		return t, nil, fmt.Errorf("%w (bench workload hints --lambdas %d from --workers and --capacity %d bytes, three times --size: "+
			"lower --workers or --size)", err, s.Workers, 3*s.Size)
	}
	return t, func() { _ = release(context.WithoutCancel(ctx)) }, nil
}

// cleanup deletes a run's keys, a few at a time, for at most
// cleanupWait; errors are ignored (the data is ephemeral and a
// deregistered job frees it anyway).
func cleanup(ctx context.Context, be Backend, keys []string) {
	ctx, cancel := context.WithTimeout(ctx, cleanupWait)
	defer cancel()
	ch := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range ch {
				_ = be.Delete(ctx, k)
			}
		}()
	}
feed:
	for _, k := range keys {
		select {
		case ch <- k:
		case <-ctx.Done():
			break feed // before, the rest were still fed, each delete failing at once
		}
	}
	close(ch)
	wg.Wait()
}

// cleanupWait bounds a run's key cleanup.
var cleanupWait = time.Minute

// newPrefix is a fresh key prefix like "sort-3f9a1c2b".
func newPrefix(name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// key joins the run's prefix and a name.
func key(s Spec, format string, a ...any) string {
	return s.Prefix + "/" + fmt.Sprintf(format, a...)
}
