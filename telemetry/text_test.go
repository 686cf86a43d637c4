package telemetry

import (
	"strings"
	"testing"
	"time"
)

func TestWriteText(t *testing.T) {
	snap := Snapshot{
		Time: time.Unix(0, 0), Interval: time.Second, RSSBytes: 3 << 20,
		CPU:      []CPUBusy{{CPU: 0, BusyPercent: 12.5}, {CPU: 1, BusyPercent: 50}},
		Net:      []NetRate{{Device: "lo", RxBytes: 1, RxBytesPerSec: 2 << 20}, {Device: "ifb0"}},
		Disks:    []DiskRate{{Device: "vda", WriteIOPS: 42}},
		Tiers:    []TierUsage{{Tier: "dram", CapacityBytes: 1 << 30, UsedBytes: 1 << 29}},
		BlockErr: "blkbpf: not supported: no BTF",
	}
	var sb strings.Builder
	if err := WriteText(&sb, &snap); err != nil {
		t.Fatal(err)
	}
	out := sb.String()
	for _, want := range []string{"rss 3MiB", "cpu mean 31.2%", "cpu1 50.0%", "lo", "2MiB/s", "vda", "42",
		"dram", "512MiB", "1GiB", "not supported: no BTF"} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ifb0") {
		t.Errorf("idle interface listed:\n%s", out)
	}
}
