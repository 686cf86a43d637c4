package main

import (
	"context"
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
	register("worker", "internal: one workload worker process", runWorker)
}

// runWorkload runs `pocket bench workload` with the arguments after it.
// `pocket bench workload micro ...` runs the microbenchmark suite until
// bench.go routes `pocket bench micro` to runMicro itself.
func runWorkload(args []string) int {
	if len(args) > 0 && args[0] == "micro" {
		return runMicro(args[1:])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	exe, err := os.Executable()
	if err != nil {
		return fail("bench workload: cannot find this binary to start workers: %v", err)
	}
	return workload.Main(ctx, args, workload.CLI{Exe: exe, WorkerArgs: []string{"worker"}, Stdout: os.Stdout, Stderr: os.Stderr})
}

// runWorker is one worker process: a task on stdin, its result on stdout.
func runWorker(args []string) int {
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
func runMicro(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return micro.Main(ctx, args, os.Stdout, os.Stderr)
}
