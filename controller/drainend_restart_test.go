package controller

import (
	"testing"
	"time"

	"github.com/pocketstore/pocket/wire"
)

// TestDrainEndSurvivesRestart: a drain that ran out of time, its node
// retired with values unmoved, is still listed as lost after a controller
// restart (pocket node drain, waiting, exits 1 on it), and a new process
// at the node's address is taken at once. Before, how the drain ended was
// kept in memory only: after a restart the status listed nothing (the
// waiting command read the node's leaving as a success), and the new
// process was refused for ForgetAfter.
func TestDrainEndSurvivesRestart(t *testing.T) {
	r := newRestartable(t, Config{ForgetAfter: time.Hour}, true)
	a := dramNode("127.0.0.1:7001", 1<<30, 1000)
	a.Incarnation = 7
	mustRegister(t, r.ctl, a)
	mustRegister(t, r.ctl, dramNode("127.0.0.1:7002", 1<<30, 1000))
	if m, err := r.ctl.RegisterJob("sort", wire.JobHints{PeakMbps: 2000}); err != nil || len(m.Nodes) != 2 {
		t.Fatalf("register: %+v %v", m, err)
	}
	if _, err := r.ctl.Drain(a.Addr, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r.ctl.drainTick(time.Now().Add(time.Second))
	before := r.ctl.Status().Retired
	if len(before) != 1 || !before[0].Lost {
		t.Fatalf("drain ends before the restart: %+v; want the node's, lost", before)
	}
	r.restart()
	after := r.ctl.Status().Retired
	if len(after) != 1 || after[0].Addr != a.Addr || !after[0].Lost || after[0].Why != before[0].Why || !after[0].At.Equal(before[0].At) {
		t.Fatalf("drain ends after the restart: %+v; want %+v", after, before)
	}
	fresh := dramNode(a.Addr, 1<<30, 1000)
	fresh.Incarnation = 8
	if _, err := r.ctl.RegisterNode(fresh); err != nil {
		t.Fatalf("a new process at the address of a node retired as lost, after a restart: %v", err)
	}
}
