package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pocketstore/pocket/perf/micro"
	"github.com/pocketstore/pocket/perf/workload"
)

// The workload subcommand (`pocket bench workload ...`, routed here by
// bench.go) is a thin front end of perf/workload. Its workers are this
// same binary re-executed as the hidden `pocket worker` command, one
// process per task, reading the task on stdin, like a lambda.
func init() {
	register("worker", "", "internal: one workload worker process", runWorker)
}

// runWorkload runs `pocket bench workload` with the arguments after it.
// `pocket bench workload micro ...` runs the microbenchmark suite until
// bench.go routes `pocket bench micro` to runMicro itself.
func runWorkload(ctx context.Context, args []string) int {
	if len(args) > 0 && args[0] == "micro" {
		return runMicro(ctx, args[1:])
	}
	if helpRequested(args) {
		return externalHelp("bench workload", func(a []string, stdout, stderr io.Writer) int {
			return withHelpFile(func(f *os.File) int {
				return workload.Main(ctx, a, workload.CLI{Stdout: f, Stderr: f}) // its help goes to Stderr
			})
		})
	}
	exe, err := os.Executable()
	if err != nil {
		return fail("bench workload: cannot find this binary to start workers: %v", err)
	}
	return workload.Main(ctx, args, workload.CLI{Exe: exe, WorkerArgs: []string{"worker"}, Stdout: os.Stdout, Stderr: os.Stderr})
}

// runWorker is one worker process: a task on stdin, its result on stdout.
func runWorker(args []string) int {
	if helpRequested(args) {
		printHelp(helpOut, "worker", nil)
		return 0
	}
	if len(args) > 0 {
		return fail("worker: takes no arguments (the task comes on stdin)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := workload.ServeWorker(ctx, os.Stdin, os.Stdout); err != nil {
		return fail("worker: %v", err)
	}
	return 0
}

// runMicro runs `pocket bench micro` (perf/micro) with the arguments
// after it.
func runMicro(ctx context.Context, args []string) int {
	if helpRequested(args) {
		return externalHelp("bench micro", func(a []string, stdout, stderr io.Writer) int {
			return micro.Main(ctx, a, stdout, stderr)
		})
	}
	return micro.Main(ctx, args, os.Stdout, os.Stderr)
}

// withHelpFile runs fn with a file whose writes reach helpOut, for a
// library that writes its help to an *os.File: helpOut itself when it is
// one, else a pipe copied into it.
func withHelpFile(fn func(f *os.File) int) int {
	if f, ok := helpOut.(*os.File); ok {
		return fn(f)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fail("help: %v", err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(helpOut, r)
		r.Close()
	}()
	code := fn(w)
	w.Close()
	<-copied
	return code
}
