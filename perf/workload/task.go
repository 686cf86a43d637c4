package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// Spec is what every task of a run knows about the run.
type Spec struct {
	Workers int    `json:"workers"`
	Size    int64  `json:"size"`   // bytes; its meaning is the workload's (see Names)
	Seed    uint64 `json:"seed"`   // makes the input deterministic
	Rounds  int    `json:"rounds"` // paramserver iterations
	Prefix  string `json:"prefix"` // of every key of the run
}

// Task is one unit of work handed to a worker: a lambda invocation.
type Task struct {
	Workload string `json:"workload"`
	Phase    string `json:"phase"`
	Index    int    `json:"index"`
	Spec     Spec   `json:"spec"`
	Target   Target `json:"target"`
}

// TaskResult is what a worker reports back. Which fields mean something
// depends on the workload and phase.
type TaskResult struct {
	Index        int     `json:"index"`
	Seconds      float64 `json:"seconds"`    // the task's own wall time
	IOSeconds    float64 `json:"io_seconds"` // time in the phase's shuffle I/O
	BytesRead    int64   `json:"bytes_read"`
	BytesWritten int64   `json:"bytes_written"`
	Sum          uint64  `json:"sum"`   // checksum of records or state
	Count        int64   `json:"count"` // records
	First        []byte  `json:"first,omitempty"`
	Last         []byte  `json:"last,omitempty"`
	Counts       []int64 `json:"counts,omitempty"` // word counts by vocabulary index
	// Bad describes what a check task found wrong (empty: all good).
	Bad string `json:"bad,omitempty"`
}

// RunTask runs one task against its own connection to the target: what a
// worker process does, and what InProcess runs in a goroutine.
func RunTask(ctx context.Context, t Task) (TaskResult, error) {
	w, ok := workloads[t.Workload]
	if !ok {
		return TaskResult{}, fmt.Errorf("%w: %q", ErrUnknownWorkload, t.Workload)
	}
	be, err := Open(ctx, t.Target)
	if err != nil {
		return TaskResult{}, err
	}
	defer be.Close()
	cb := &counting{Backend: be}
	start := time.Now()
	res, err := w.run(ctx, cb, t)
	if err != nil {
		return res, fmt.Errorf("%s %s task %d: %w", t.Workload, t.Phase, t.Index, err)
	}
	res.Index = t.Index
	res.Seconds = time.Since(start).Seconds()
	res.BytesRead, res.BytesWritten = cb.read.Load(), cb.written.Load()
	return res, nil
}

// ServeWorker is the body of a worker process: one Task as JSON on in,
// one TaskResult as JSON on out.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	var t Task
	if err := json.NewDecoder(io.LimitReader(in, 1<<20)).Decode(&t); err != nil {
		return fmt.Errorf("workload: worker: decode task: %w", err)
	}
	res, err := RunTask(ctx, t)
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(res)
}

// Launcher runs all tasks of one phase at the same time (tasks of a phase
// may wait for each other) and returns their results in task order. done
// is called as each task finishes.
type Launcher interface {
	Launch(ctx context.Context, tasks []Task, done func()) ([]TaskResult, error)
}

// InProcess runs each task in a goroutine through RunTask: the workers
// share the process but not their clients.
type InProcess struct{}

// Launch implements Launcher.
func (InProcess) Launch(ctx context.Context, tasks []Task, done func()) ([]TaskResult, error) {
	return launchAll(ctx, tasks, done, RunTask)
}

// Subprocess runs each task in a new process: Exe with Args (for the
// pocket binary, Args is ["worker"]), the task on its stdin.
type Subprocess struct {
	Exe  string
	Args []string
}

// Launch implements Launcher.
func (s Subprocess) Launch(ctx context.Context, tasks []Task, done func()) ([]TaskResult, error) {
	return launchAll(ctx, tasks, done, s.run)
}

func (s Subprocess) run(ctx context.Context, t Task) (TaskResult, error) {
	in, err := json.Marshal(t)
	if err != nil {
		return TaskResult{}, err
	}
	cmd := exec.CommandContext(ctx, s.Exe, s.Args...)
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &out, &errOut
	if err := cmd.Run(); err != nil {
		return TaskResult{}, fmt.Errorf("workload: worker %s %d: %w: %s", t.Phase, t.Index, err, bytes.TrimSpace(errOut.Bytes()))
	}
	var res TaskResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return TaskResult{}, fmt.Errorf("workload: worker %s %d: bad result: %w", t.Phase, t.Index, err)
	}
	return res, nil
}

// launchAll runs every task concurrently; the first failure cancels the
// others (a task waiting on a failed one would otherwise wait forever).
func launchAll(ctx context.Context, tasks []Task, done func(), run func(context.Context, Task) (TaskResult, error)) ([]TaskResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]TaskResult, len(tasks))
	var wg sync.WaitGroup
	for i, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := run(ctx, t)
			if err != nil {
				cancel(err)
				return
			}
			results[i] = r
			if done != nil {
				done()
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return results, nil
}
