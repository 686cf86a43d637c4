package controller

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/metaclient"
	"github.com/pocketstore/pocket/wire"
)

// endHugeJob registers a job of name on c's one node at addr, has the node
// report (as a node counting per job: with its incarnation) the largest
// finite traffic the heartbeat decoder accepts for it, for a few
// heartbeats, and ends the job, so that its run is recorded (on the code
// these tests were written against; a controller may instead refuse such
// figures). It returns the deregistration's error.
func endHugeJob(t *testing.T, c *Controller, name, addr string) error {
	t.Helper()
	return endJobReporting(t, c, name, addr, 100, wire.JobLoad{RxMbps: math.MaxFloat64, Bytes: 1 << 20})
}

// endJobReporting registers a job of name on c's one node at addr (1 GiB
// of DRAM at 8000 Mb/s, 1 MiB used), has the node report rxMbps in all and
// load for the job (its Job field filled in) in 5 heartbeats 10 ms apart,
// as a node counting per job (incarnation 7), and ends the job. A
// heartbeat the decoder or the controller refuses is logged and ends the
// reports. It returns the deregistration's error.
func endJobReporting(t *testing.T, c *Controller, name, addr string, rxMbps float64, load wire.JobLoad) error {
	t.Helper()
	m, err := c.RegisterJob(name, wire.JobHints{})
	if err != nil {
		t.Fatal(err)
	}
	load.Job = m.Job
	for range 5 {
		hb := &wire.Heartbeat{Addr: addr, RxMbps: rxMbps, Incarnation: 7,
			Loads: []wire.JobLoad{load},
			Tiers: []wire.TierStat{{Kind: kindDRAM, CapacityBytes: 1 << 30, Mbps: 8000, UsedBytes: 1 << 20}}}
		if err := (&wire.Heartbeat{}).Decode(hb.Encode(newBuilder())); err != nil {
			t.Logf("the heartbeat decoder refuses the figures: %v", err)
			break // refused at the edge: nothing to record
		}
		if _, err := c.Heartbeat(hb); err != nil {
			t.Logf("the controller refuses the heartbeat: %v", err)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err = c.DeregisterJob(t.Context(), m.Job, m.Token)
	return err
}

// profileOverTCP asks c, listening on loopback, for the profile of name
// through the metaclient (within 20 s) and returns the client's error.
func profileOverTCP(t *testing.T, c *Controller, name string) error {
	t.Helper()
	a, err := c.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mc := metaclient.New(a.String(), metaclient.Options{Logger: quietLog})
	defer mc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = mc.JobProfile(ctx, name)
	return err
}

// TestHugeNodeFigureKeepsStateSaved: a node's heartbeats whose per-job
// figures the decoder accepts (finite, not negative: here the largest
// float64 Mb/s) must not stop the controller from saving its state. The
// figures of a few heartbeats are summed for the job's profile, the sum
// is +Inf, the ended job's profile holds it, and the state's JSON cannot
// encode it: every later flush fails, and with it every registration and
// map fetch of every job ("state not saved: json: unsupported value:
// +Inf"), the job's own deregistration first, until the controller
// restarts.
func TestHugeNodeFigureKeepsStateSaved(t *testing.T) {
	const node = "127.0.0.1:7001"
	c := newTest(t, Config{Store: state.NewMemory(), FirstJobSeq: 1})
	mustRegister(t, c, dramNode(node, 1<<30, 8000))
	if err := endHugeJob(t, c, "huge", node); err != nil {
		t.Fatalf("deregistering the job whose node reported huge figures: %v", err)
	}
	m, err := c.RegisterJob("next", wire.JobHints{})
	if err != nil {
		t.Fatalf("registering another job after a node reported huge figures: %v", err)
	}
	if _, err := c.GetMap(m.Job, m.Token); err != nil {
		t.Fatalf("its map: %v", err)
	}
}

// TestJobProfileOfHugeFiguresDecodes: the controller's answer to
// job-profile must be one its own client decodes. A run recorded from a
// node's accepted figures (the largest float64 Mb/s, summed to +Inf) was
// served as is, and every `pocket job profile NAME` failed with the
// client's "not a finite non-negative number" for as long as the run is
// kept.
func TestJobProfileOfHugeFiguresDecodes(t *testing.T) {
	const node = "127.0.0.1:7001"
	c := newTest(t, Config{FirstJobSeq: 1})
	mustRegister(t, c, dramNode(node, 1<<30, 8000))
	if err := endHugeJob(t, c, "huge", node); err != nil {
		t.Fatal(err)
	}
	if err := profileOverTCP(t, c, "huge"); err != nil && !errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("job profile of a name whose node reported huge figures: %v", err)
	}
}
