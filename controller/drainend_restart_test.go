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

// TestRestartEndedDrainSurvivesRestart: a drain ended by its node's
// restart ("restarted while draining", lost) is still listed among the
// drains' ends after a controller restart, so a waiting `pocket node
// drain` does not take the fresh node for one still draining. Before, that
// end was kept in memory only. A new drain of the node clears it.
func TestRestartEndedDrainSurvivesRestart(t *testing.T) {
	r := newRestartable(t, Config{DeadAfter: time.Hour, ForgetAfter: time.Hour, DeadNodeGrace: time.Minute}, true)
	_, at, xb, _ := wideJob(t, r.ctl)
	if _, err := r.ctl.Drain(xb.Addr, time.Minute); err != nil {
		t.Fatal(err)
	}
	restartNode(t, r.ctl, at, xb, 12)
	before := r.ctl.Status().Retired
	if len(before) != 1 || before[0].Why != "restarted while draining" {
		t.Fatalf("drain ends before the controller's restart: %+v", before)
	}
	r.restart()
	after := r.ctl.Status().Retired
	if len(after) != 1 || after[0].Addr != xb.Addr || !after[0].Lost || after[0].Why != before[0].Why || !after[0].At.Equal(before[0].At) {
		t.Fatalf("drain ends after the controller's restart: %+v; want %+v", after, before)
	}
	if st, _ := nodeState(r.ctl, xb.Addr); st != wire.NodeActive {
		t.Fatalf("the restarted node after the controller's restart: %v, want active", st)
	}
	if _, err := r.ctl.Drain(xb.Addr, time.Minute); err != nil {
		t.Fatal(err)
	}
	r.restart()
	if got := r.ctl.Status().Retired; len(got) != 0 {
		t.Fatalf("the end of a drain before the node's latest, after a restart: %+v", got)
	}
}
