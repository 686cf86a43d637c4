package main

import (
	"context"
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
		if err = printSample(out, &snap, asJSON); err != nil {
			return err
		}
	}
	return nil
}

// printSample prints one sample: a line of JSON (probeView) or text.
func printSample(out io.Writer, snap *telemetry.Snapshot, asJSON bool) error {
	if asJSON {
		return writeJSONLine(out, probeView(snap))
	}
	return telemetry.WriteText(out, snap)
}

// probeJSON is telemetry.Snapshot as `pocket probe --json` prints it:
// the same fields, every one always there (the Snapshot's own JSON, which
// nodes export, omits the empty ones): lists are [] when empty, never
// null; tiers is [] (a probe runs no node, so has no tiers);
// block_latency_error is "" unless the eBPF probe was asked for and could
// not run. A field added to Snapshot fails the conversion in probeView
// until it is added here.
type probeJSON struct {
	Time     time.Time                `json:"time"`
	Interval time.Duration            `json:"interval_ns"`
	Net      []telemetry.NetRate      `json:"net"`
	Disks    []telemetry.DiskRate     `json:"disks"`
	CPU      []telemetry.CPUBusy      `json:"cpu"`
	RSSBytes uint64                   `json:"rss_bytes"`
	Tiers    []telemetry.TierUsage    `json:"tiers"`
	Block    []telemetry.BlockLatency `json:"block_latency"`
	BlockErr string                   `json:"block_latency_error"`
}

// probeView is s as --json prints it.
func probeView(s *telemetry.Snapshot) probeJSON {
	v := probeJSON(*s)
	v.Net, v.Disks, v.CPU = nonNil(v.Net), nonNil(v.Disks), nonNil(v.CPU)
	v.Tiers, v.Block = nonNil(v.Tiers), nonNil(v.Block)
	return v
}
