package agent

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/dataplane"
	"github.com/pocketstore/pocket/wire"
)

// errTier is an NVMe tier (a DRAM one underneath) reporting device errors.
type errTier struct {
	dataplane.Tier
	e dataplane.DeviceErrors
}

func (t *errTier) Kind() dataplane.Kind                 { return dataplane.KindNVMe }
func (t *errTier) DeviceErrors() dataplane.DeviceErrors { return t.e }

// TestHeartbeatReportsDeviceErrors: a tier's device errors go into the
// heartbeat's metrics, with the failing flag the controller avoids the
// tier by while the last is under dataplane.DeviceFailingFor old. Before,
// a hostile trial's failing device left the controller placing new jobs
// on it.
func TestHeartbeatReportsDeviceErrors(t *testing.T) {
	d, err := dataplane.NewDRAM(8<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := dataplane.NewDRAM(8<<20, dataplane.DRAMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	defer d2.Close()
	et := &errTier{Tier: d2}
	n, err := dataplane.NewNode(dataplane.NodeConfig{Listen: "127.0.0.1:0", DRAM: d, NVMe: et})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a := &agent{cfg: Config{Node: n, Logger: quietLog}}
	now := time.Now()
	if ms := a.deviceErrors(nil, now); len(ms) != 0 {
		t.Fatalf("metrics of a tier with no device error: %+v", ms)
	}
	et.e = dataplane.DeviceErrors{Reads: 741, Writes: 3, Last: now.Add(-time.Second)}
	ms := a.deviceErrors(nil, now)
	want := []wire.Metric{{Name: "device_errors:nvme", Value: 744}, {Name: "device_failing:nvme", Value: 1}}
	if len(ms) != 2 || ms[0] != want[0] || ms[1] != want[1] {
		t.Fatalf("metrics of a failing tier: %+v, want %+v", ms, want)
	}
	ms = a.deviceErrors(nil, now.Add(dataplane.DeviceFailingFor))
	if len(ms) != 1 || ms[0] != want[0] {
		t.Fatalf("metrics %v after the last error: %+v, want %+v", dataplane.DeviceFailingFor, ms, want[:1])
	}
}
