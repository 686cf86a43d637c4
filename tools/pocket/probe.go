package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pocketstore/pocket/telemetry"
)

// The probe subcommand prints the telemetry this machine's node would send
// with its heartbeats, so an operator can check what the controller sees
// (and whether the eBPF block probe loads) without starting a node.
func init() {
	register("probe", "", "print this machine's node telemetry (--json, --interval D, --count N)", runProbe)
}

func runProbe(args []string) int {
	fs := newFlagSet("probe")
	asJSON := fs.Bool("json", false, "print one JSON object per sample, one per line")
	interval := fs.Duration("interval", time.Second, "time between samples")
	count := fs.Int("count", 3, "number of samples (0 runs until interrupted)")
	ebpf := fs.Bool("ebpf", true, "attach the eBPF block latency probe when the kernel allows it")
	if _, code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	if *interval <= 0 {
		return usageError("probe", fmt.Errorf("--interval %v: want a positive duration, like 1s", *interval))
	}
	if *count < 0 {
		return usageError("probe", fmt.Errorf("--count %d: want 0 (run until interrupted) or more", *count))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := telemetry.NewSampler(telemetry.Config{BlockLatency: *ebpf})
	if err != nil {
		return fail("probe: %v", err)
	}
	defer s.Close()
	if err := probeLoop(ctx, s, *interval, *count, *asJSON, os.Stdout); err != nil {
		return fail("probe: %v", err)
	}
	return 0
}

// probeLoop prints count samples (forever when count is 0) until ctx ends.
func probeLoop(ctx context.Context, s *telemetry.Sampler, every time.Duration, count int, asJSON bool, out io.Writer) error {
	enc := json.NewEncoder(out)
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; count == 0 || i < count; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		snap, err := s.Sample()
		if err != nil {
			fmt.Fprintf(os.Stderr, "pocket: probe: %v\n", err) // partial snapshot still printed
		}
		if asJSON {
			err = enc.Encode(&snap)
		} else {
			err = telemetry.WriteText(out, &snap)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
