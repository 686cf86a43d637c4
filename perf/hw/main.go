package hw

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pocketstore/pocket/internal/units"
	"github.com/pocketstore/pocket/nvme"
)

// Main is `pocket hw`: it parses args, runs the measurements and prints a
// table, or with --json one JSON object; --profile also writes the profile
// file. It returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { // after pocket's usage line, as the other commands' flags (before: Go's "Usage of hw:")
		fmt.Fprintf(stderr, "Flags:\n")
		fs.PrintDefaults()
	}
	path := fs.String("path", "", "block device or file to measure (a missing file is created at --size, and removed at the end)")
	size := fs.String("size", "1GiB", "bytes of the device to use, like 1GiB")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	profile := fs.String("profile", "", "also write the device profile to this file")
	dur := fs.Duration("duration", 2*time.Second, "length of each device measurement")
	engine := fs.String("engine", "auto", "I/O engine: auto, uring or sync")
	depths := fs.String("depths", "1,4,16,32,64", "queue depths of the random runs")
	noNet := fs.Bool("skip-network", false, "skip the loopback TCP measurement")
	noDRAM := fs.Bool("skip-dram", false, "skip the DRAM copy measurement")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := Config{Path: *path, Duration: *dur, SkipNetwork: *noNet, SkipDRAM: *noDRAM}
	var err error
	if cfg.Size, err = units.ParseSize(*size); err != nil {
		return usageErr(stderr, err)
	}
	if cfg.Engine, err = parseEngine(*engine); err != nil {
		return usageErr(stderr, err)
	}
	if cfg.RandDepths, err = parseDepths(*depths); err != nil {
		return usageErr(stderr, err)
	}
	if *path == "" {
		return usageErr(stderr, fmt.Errorf("--path is required"))
	}
	cfg.Progress = func(s string) { fmt.Fprintln(stderr, "hw:", s) }
	r, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "pocket hw:", err)
		return 1
	}
	if *profile != "" {
		if err := WriteProfile(*profile, NewProfile(r)); err != nil {
			fmt.Fprintln(stderr, "pocket hw:", err)
			return 1
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(r); err != nil {
			return 1
		}
		return 0
	}
	PrintTable(stdout, r)
	return 0
}

func usageErr(w io.Writer, err error) int {
	fmt.Fprintln(w, "pocket hw:", err)
	return 2
}

func parseEngine(s string) (nvme.Engine, error) {
	switch s {
	case "auto":
		return nvme.EngineAuto, nil
	case "uring", "io_uring":
		return nvme.EngineUring, nil
	case "sync":
		return nvme.EngineSync, nil
	}
	return 0, fmt.Errorf("--engine %q: want auto, uring or sync", s)
}

func parseDepths(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var d int
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%d", &d); err != nil || d <= 0 || d > 4096 {
			return nil, fmt.Errorf("--depths %q: want positive integers up to 4096", s)
		}
		out = append(out, d)
	}
	return out, nil
}

// PrintTable writes a report as an aligned table.
func PrintTable(w io.Writer, r Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.Path != "" {
		fmt.Fprintf(tw, "device\t%s (%s, %s, alignment %d)\t\n", r.Path, units.FormatSize(r.Size), r.Engine, r.Align)
		fmt.Fprintf(tw, "seq write 1 MiB QD16\t%.0f MB/s\t\n", r.SeqWriteMBps)
		fmt.Fprintf(tw, "seq read 1 MiB QD16\t%.0f MB/s\t\n", r.SeqReadMBps)
		for _, set := range []struct {
			name string
			rs   []RandResult
		}{{"rand read 4 KiB", r.RandRead}, {"rand write 4 KiB", r.RandWrite}} {
			for _, x := range set.rs {
				fmt.Fprintf(tw, "%s QD%d\t%.0f IOPS\tp50 %.1f us\tp99 %.1f us\t\n", set.name, x.Depth, x.IOPS, x.P50us, x.P99us)
			}
		}
	}
	if r.DRAMCopyGBps > 0 {
		fmt.Fprintf(tw, "dram arena copy\t%.2f GB/s\t\n", r.DRAMCopyGBps)
	}
	if r.LoopbackMBps > 0 {
		fmt.Fprintf(tw, "loopback tcp, 1 stream\t%.0f MB/s\t\n", r.LoopbackMBps)
	}
	tw.Flush()
}
