package controller

import (
	"errors"
	"testing"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestProfileSizeOverTheSpareRegisters (new-user trial): a job registered
// without hints whose name's profile asks for more capacity than any tier
// has spare registers, reserving the most an eligible tier has spare, as a
// default-sized job (which reserves none) would register. Before, it was
// refused "no space": a second `pocket bench --controller` run, whose first
// had filled two 256 MiB nodes, failed to register on the emptied cluster,
// and a client that ran a job of another tenant's name could have that
// tenant's hintless jobs refused. A hinted capacity over the spare is
// still refused.
func TestProfileSizeOverTheSpareRegisters(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002"} {
		mustRegister(t, c, dramNode(a, 256<<20, 8000))
	}
	c.mu.Lock()
	c.prof.record("bench", state.Run{Job: "bench-0", PeakMbps: 9000, PeakBytes: 900 << 20, Tier: kindDRAM})
	c.mu.Unlock()
	m, err := c.RegisterJob("bench", wire.JobHints{})
	if err != nil {
		t.Fatalf("a hintless job whose profile asks 990 MiB of 512 MiB: %v; want it registered", err)
	}
	c.mu.Lock()
	j := c.jobs[m.Job]
	bytes := j.allocBytes
	c.mu.Unlock()
	if bytes != 512<<20 {
		t.Errorf("allotted %d bytes; want the 512 MiB spare", bytes)
	}
	if len(m.Nodes) != 2 {
		t.Errorf("placed on %d nodes; want both", len(m.Nodes))
	}
	if _, err := c.RegisterJob("hinted", wire.JobHints{CapacityBytes: 100 << 20}); !errors.Is(err, wire.ErrNoSpace) {
		t.Errorf("a 100 MiB hint with the cluster reserved: %v; want no space", err)
	}
}

// TestProfileSizeOverTheMaximumStartsNodes: on an autoscaling cluster a
// hintless job whose profile asks for more than MaxNodes nodes hold is not
// refused: the nodes its size calls for start, up to the maximum, and the
// job reserves what they have spare. A hinted capacity as large is refused
// before any node starts (TestRefusedRegistrationStartsNoNodes).
func TestProfileSizeOverTheMaximumStartsNodes(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{MaxNodes: 3})
	r.c.mu.Lock()
	r.c.prof.record("big", state.Run{Job: "big-0", PeakMbps: 100, PeakBytes: 9 << 30, Tier: kindDRAM})
	r.c.mu.Unlock()
	m, err := r.c.RegisterJob("big", wire.JobHints{})
	if err != nil {
		t.Fatalf("a hintless job whose profile asks 9.9 GiB of at most 3 GiB: %v; want it registered", err)
	}
	if r.active() != 3 {
		t.Errorf("%d active nodes; want the maximum, 3", r.active())
	}
	r.c.mu.Lock()
	bytes := r.c.jobs[m.Job].allocBytes
	r.c.mu.Unlock()
	if bytes <= 0 || bytes > 3<<30 {
		t.Errorf("allotted %d bytes; want the spare of the 3 nodes, at most 3 GiB", bytes)
	}
}
