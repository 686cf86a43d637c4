package telemetry

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pocketstore/pocket/internal/units"
)

// WriteText prints a Snapshot as aligned tables for people (pocket probe,
// pocket status). Interfaces and devices that have never moved a byte are
// left out to keep the listing short; the JSON form has everything.
func WriteText(w io.Writer, snap *Snapshot) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "%s  interval %v  rss %s  cpu mean %.1f%%\n",
		snap.Time.Format(time.RFC3339), snap.Interval.Round(time.Millisecond),
		units.FormatSize(int64(snap.RSSBytes)), snap.CPUBusyMean())
	writeCPUText(tw, snap)
	writeNetText(tw, snap)
	writeDiskText(tw, snap)
	writeTierText(tw, snap)
	writeBlockText(tw, snap)
	return tw.Flush()
}

func perSec(v float64) string { return units.FormatSize(int64(v)) + "/s" }

func writeCPUText(w io.Writer, snap *Snapshot) {
	parts := make([]string, len(snap.CPU))
	for i, c := range snap.CPU {
		parts[i] = fmt.Sprintf("cpu%d %.1f%%", c.CPU, c.BusyPercent)
	}
	fmt.Fprintf(w, "  busy\t%s\n", strings.Join(parts, "  "))
}

func writeNetText(w io.Writer, snap *Snapshot) {
	fmt.Fprintln(w, "  net\trx\ttx\trx total\ttx total")
	for _, n := range snap.Net {
		if n.RxBytes+n.TxBytes == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", n.Device, perSec(n.RxBytesPerSec), perSec(n.TxBytesPerSec),
			units.FormatSize(int64(n.RxBytes)), units.FormatSize(int64(n.TxBytes)))
	}
}

func writeDiskText(w io.Writer, snap *Snapshot) {
	fmt.Fprintln(w, "  disk\tread\twrite\tread iops\twrite iops\tbusy")
	for _, d := range snap.Disks {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%.0f\t%.0f\t%.0f%%\n", d.Device, perSec(d.ReadBytesPerSec),
			perSec(d.WriteBytesPerSec), d.ReadIOPS, d.WriteIOPS, d.BusyPercent)
	}
}

func writeTierText(w io.Writer, snap *Snapshot) {
	if len(snap.Tiers) == 0 {
		return
	}
	fmt.Fprintln(w, "  tier\tused\tcapacity")
	for _, t := range snap.Tiers {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", t.Tier, units.FormatSize(int64(t.UsedBytes)), units.FormatSize(int64(t.CapacityBytes)))
	}
}

func writeBlockText(w io.Writer, snap *Snapshot) {
	if snap.BlockErr != "" {
		fmt.Fprintf(w, "  block latency (eBPF): %s\n", snap.BlockErr)
		return
	}
	if len(snap.Block) == 0 {
		return
	}
	fmt.Fprintln(w, "  block latency\top\tper sec\tmean\tp50\tp99")
	for _, b := range snap.Block {
		fmt.Fprintf(w, "  %s\t%s\t%.0f\t%v\t%v\t%v\n", b.Device, b.Op, b.PerSec,
			b.Mean.Round(time.Microsecond), b.P50.Round(time.Microsecond), b.P99.Round(time.Microsecond))
	}
}
