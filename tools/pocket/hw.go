package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pocketstore/pocket/perf/hw"
)

// The hw subcommand is a thin front end of perf/hw, which holds the
// measurements, the table and the profile format.
func init() {
	register("hw", "--path PATH", "measure device, DRAM arena and loopback bandwidth (--path PATH --size SIZE [--json] [--profile FILE])", func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if helpRequested(args) {
			return externalHelp("hw", func(a []string, stdout, stderr io.Writer) int {
				return hw.Main(ctx, a, stdout, stderr)
			})
		}
		return hw.Main(ctx, args, os.Stdout, os.Stderr)
	})
}
