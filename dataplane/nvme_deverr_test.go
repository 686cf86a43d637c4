package dataplane_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/netio"
	"github.com/pocketstore/pocket/nvme"
	"github.com/pocketstore/pocket/telemetry/metrics"
)

// lockedBuffer is a bytes.Buffer safe for a logger on several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNVMeDeviceErrorsSeen: transfers the device fails are counted by
// direction (DeviceErrors, pocket_node_tier_device_errors_total) and
// logged at most once a second, with how many came since the last line.
// Before, a hostile trial's read-only device (every put failed) and
// shrunk device (741 of 1,696 gets failed EIO) left no line in the
// node's log and no figure.
func TestNVMeDeviceErrorsSeen(t *testing.T) {
	var f faultSwitch
	var logs lockedBuffer
	tier := newNVMe(t, 8<<20, nvme.Options{Engine: nvme.EngineSync, Fault: f.hook, BufferPool: 4 << 20},
		dataplane.NVMeOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", NVMe: tier, Net: netio.Config{Loops: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := putValue(tier, "j", "k", value(5000, 1)); err != nil {
		t.Fatal(err)
	}
	if e := tier.DeviceErrors(); e.Reads+e.Writes != 0 || !e.Last.IsZero() {
		t.Fatalf("device errors before any: %+v", e)
	}
	start := time.Now()
	f.mode.Store(faultEIO)
	for range 3 {
		if err := putValue(tier, "j", "new", value(5000, 2)); err == nil {
			t.Fatal("a put succeeded on a failing device")
		}
	}
	for range 2 {
		if _, err := getValue(tier, "j", "k"); err == nil {
			t.Fatal("a get succeeded on a failing device")
		}
	}
	f.mode.Store(faultNone)
	e := tier.DeviceErrors()
	if e.Reads != 2 || e.Writes != 3 || e.Last.Before(start) || time.Since(e.Last) > time.Minute {
		t.Errorf("device errors %+v; want 2 reads, 3 writes, the last just now", e)
	}
	if !strings.Contains(logs.String(), "device I/O errors") {
		t.Errorf("no log line of the device errors: %q", logs.String())
	}
	if time.Since(start) < time.Second {
		if lines := strings.Count(logs.String(), "device I/O errors"); lines != 1 {
			t.Errorf("%d log lines for 5 errors within a second, want 1: %s", lines, logs.String())
		}
	}
	// A second later the next error logs the ones since the first line.
	time.Sleep(1100 * time.Millisecond)
	f.mode.Store(faultEIO)
	_, err = getValue(tier, "j", "k")
	f.mode.Store(faultNone)
	if err == nil {
		t.Fatal("a get succeeded on a failing device")
	}
	if lines := strings.Split(strings.TrimSpace(logs.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[1], " errors=5 ") {
		t.Errorf("log after a second and one more error: %q; want a second line of errors=5", logs.String())
	}

	fams := scrapeOf(t, n)
	for op, want := range map[string]float64{"read": 3, "write": 3} {
		if v, _ := fams.Value(metrics.NodeTierDeviceErrors, "tier", "nvme", "op", op); v != want {
			t.Errorf("%s{op=%s} = %v, want %v", metrics.NodeTierDeviceErrors, op, v, want)
		}
	}
}
