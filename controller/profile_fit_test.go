package controller

import (
	"errors"
	"strings"
	"testing"

	"github.com/pocketstore/pocket/controller/state"
	"github.com/pocketstore/pocket/wire"
)

// TestProfileSizeOverTheSpareRegisters (new-user and hostile trials): a
// job registered without hints whose name's profile asks for more
// capacity than any tier has spare registers reserving none, as a
// default-sized job would, and leaves the cluster's room to the next jobs.
// At first such a job was refused "no space" (a second `pocket bench
// --controller` run, whose first had filled two 256 MiB nodes, failed to
// register on the emptied cluster); then, for a day, it reserved all that
// was spare, so one hintless job of a poisoned name had every hinted job
// of every other tenant refused. A profile that fits still reserves its
// size, and a hinted capacity over the spare is still refused.
func TestProfileSizeOverTheSpareRegisters(t *testing.T) {
	c := newTest(t, Config{FirstJobSeq: 1})
	for _, a := range []string{"127.0.0.1:7001", "127.0.0.1:7002"} {
		mustRegister(t, c, dramNode(a, 256<<20, 8000))
	}
	c.mu.Lock()
	c.prof.record("bench", state.Run{Job: "bench-0", PeakMbps: 9000, PeakBytes: 900 << 20, Tier: kindDRAM})
	c.prof.record("small", state.Run{Job: "small-0", PeakMbps: 100, PeakBytes: 100 << 20, Tier: kindDRAM})
	c.mu.Unlock()
	m, err := c.RegisterJob("bench", wire.JobHints{})
	if err != nil {
		t.Fatalf("a hintless job whose profile asks 990 MiB of 512 MiB: %v; want it registered", err)
	}
	if b := allocBytes(c, m.Job); b != 0 {
		t.Errorf("the job whose profile does not fit reserves %d bytes; want none", b)
	}
	// Its reply says so (before, "sized from profile" with 0 bytes and no
	// note, a new user's trial).
	if !strings.Contains(m.Note, "profile asked for 990MiB") || !strings.Contains(m.Note, "reserves no capacity") {
		t.Errorf("note %q; want it to say the profile's 990MiB was not reserved", m.Note)
	}
	if _, err := c.RegisterJob("hinted", wire.JobHints{CapacityBytes: 300 << 20}); err != nil {
		t.Errorf("a 300 MiB hint beside it: %v; want it registered", err)
	}
	s, err := c.RegisterJob("small", wire.JobHints{})
	if err != nil || allocBytes(c, s.Job) != 110<<20 || strings.Contains(s.Note, "profile asked") {
		t.Errorf("a hintless job whose profile fits: %v, %d bytes, note %q; want its 110 MiB", err, allocBytes(c, s.Job), s.Note)
	}
	if _, err := c.RegisterJob("big", wire.JobHints{CapacityBytes: 200 << 20}); !errors.Is(err, wire.ErrNoSpace) {
		t.Errorf("a 200 MiB hint with 102 MiB spare: %v; want no space", err)
	}
}

func allocBytes(c *Controller, id string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := c.jobs[id]; j != nil {
		return j.allocBytes
	}
	return -1
}

// TestProfileSizeOverTheMaximumStartsNoNodes (hostile trial): on an
// autoscaling cluster a hintless job whose profile asks for more than
// MaxNodes nodes hold registers reserving none, and starts no node for
// it. For a day it started nodes up to the maximum and kept them while
// idle; before that it was refused.
func TestProfileSizeOverTheMaximumStartsNoNodes(t *testing.T) {
	r := newScaleRig(t, 1, AutoscaleConfig{MaxNodes: 3})
	r.c.mu.Lock()
	r.c.prof.record("big", state.Run{Job: "big-0", PeakMbps: 100, PeakBytes: 9 << 30, Tier: kindDRAM})
	r.c.mu.Unlock()
	m, err := r.c.RegisterJob("big", wire.JobHints{})
	if err != nil {
		t.Fatalf("a hintless job whose profile asks 9.9 GiB of at most 3 GiB: %v; want it registered", err)
	}
	if r.active() != 1 || len(r.a.Decisions()) != 0 {
		t.Errorf("%d active nodes, decisions %+v; want the one node, none", r.active(), r.a.Decisions())
	}
	if b := allocBytes(r.c, m.Job); b != 0 {
		t.Errorf("allotted %d bytes; want none", b)
	}
}
