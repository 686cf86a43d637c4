package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pocketstore/pocket/perf/bench"
)

// The bench subcommand is a thin front end of perf/bench: flags, the load
// generator, the drivers and the report all live there.
func init() {
	register("bench", "load generator for a node or Redis (--target redis://HOST:PORT)", func(args []string) int {
		if len(args) > 0 {
			switch args[0] {
			case "workload":
				return runWorkload(args[1:])
			case "micro":
				return runMicro(args[1:])
			}
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return bench.Main(ctx, args, os.Stdout, os.Stderr)
	})
}
