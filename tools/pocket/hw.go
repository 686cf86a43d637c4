package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pocketstore/pocket/perf/hw"
)

// The hw subcommand is a thin front end of perf/hw, which holds the
// measurements, the table and the profile format.
func init() {
	register("hw", "measure device, DRAM arena and loopback bandwidth (--path PATH --size SIZE [--json] [--profile FILE])", func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return hw.Main(ctx, args, os.Stdout, os.Stderr)
	})
}
